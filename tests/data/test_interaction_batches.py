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
