import numpy as np
import pytest

from recsys.data.interaction_batches import InteractionBatches

GROUP_ROWS = [5, 0, 7, 3, 9, 4]
STARTS = np.r_[0, np.cumsum(GROUP_ROWS)]


def load(group):
    rows = np.arange(STARTS[group], STARTS[group + 1])
    return {"row": rows, "double": 2 * rows}


def epoch(batches):
    out = [batches[i] for i in range(len(batches))]
    batches.on_epoch_end()
    return out


def test_interaction_batches_cover_each_row_once_per_epoch():
    batches = InteractionBatches(load, GROUP_ROWS, batch_size=4, window=2)
    assert len(batches) == 28 // 4
    first = epoch(batches)
    for batch in first:
        assert len(batch["row"]) == 4
        np.testing.assert_array_equal(batch["double"], 2 * batch["row"])
    rows = np.concatenate([b["row"] for b in first])
    assert len(np.unique(rows)) == 28 and set(rows) <= set(range(28))
    second = np.concatenate([b["row"] for b in epoch(batches)])
    assert len(np.unique(second)) == 28
    assert not np.array_equal(rows, second)  # reshuffled


def test_interaction_batches_same_seed_same_order():
    a = InteractionBatches(load, GROUP_ROWS, batch_size=3, seed=5, window=3)
    b = InteractionBatches(load, GROUP_ROWS, batch_size=3, seed=5, window=3)
    for x, y in zip(epoch(a), epoch(b), strict=True):
        np.testing.assert_array_equal(x["row"], y["row"])
    # Random access gives the same batch as a pass in order.
    np.testing.assert_array_equal(a[4]["row"], epoch(b)[4]["row"])


def test_interaction_batches_bad_arguments():
    with pytest.raises(ValueError, match="fewer than one batch"):
        InteractionBatches(load, [2, 1], batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        InteractionBatches(load, GROUP_ROWS, batch_size=0)
    with pytest.raises(IndexError):
        InteractionBatches(load, GROUP_ROWS, batch_size=4)[7]


def test_fit_reads_each_row_group_once_per_epoch():
    # `fit` must take the batches in order: Keras shuffling their order
    # would reload a window of row groups for nearly every batch.
    import keras

    from recsys.config import DEFAULT_CONFIG
    from recsys.models import Tower
    from recsys.models import TwoTower
    from recsys.training.two_tower import fit_two_tower

    rng = np.random.default_rng(0)
    loads = []

    def load_ids(group):
        loads.append(group)
        n = 64
        return {
            "u": rng.integers(1, 50, n),
            "i": rng.integers(1, 50, n),
            "candidate_sampling_probability": np.full(n, 0.02, "float32"),
        }

    batches = InteractionBatches(load_ids, [64] * 16, batch_size=16, window=2)

    def tower(name):
        spec = {
            "name": name,
            "type": "embedding",
            "input_dim": 50,
            "output_dim": 4,
        }
        return Tower([spec], 4)

    model = TwoTower(tower("u"), tower("i"), candidate_id="i")
    model.compile(keras.optimizers.Adagrad(0.1))
    config = {"train": {**DEFAULT_CONFIG["train"], "epochs": 2}}
    fit_two_tower(model, batches, config, progress=False)
    # 16 groups per epoch, plus one window (2 groups) that Keras reads to
    # learn the input shapes; shuffled batch order would load ~2 groups
    # for each of the 64 batches of an epoch.
    assert len(loads) <= 2 * 16 + 2
