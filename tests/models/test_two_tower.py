import keras
import numpy as np
import pytest

from recsys.models import Tower
from recsys.models import TwoTower
from tests.battery import run_serialization_battery


def _model(**kwargs):
    query = Tower(
        [
            {
                "name": "user",
                "type": "embedding",
                "input_dim": 20,
                "output_dim": 8,
            }
        ],
        8,
        normalize=False,
    )
    candidate = Tower(
        [
            {
                "name": "item",
                "type": "embedding",
                "input_dim": 30,
                "output_dim": 8,
            }
        ],
        8,
        normalize=False,
    )
    return TwoTower(query, candidate, candidate_id="item", **kwargs)


def _data(n=2048, seed=0):
    # Users 1..19 each like the items of one of 4 groups: learnable structure.
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 20, n)
    items = (users % 4) * 7 + rng.integers(1, 8, n)
    return {
        "user": users.astype("int32"),
        "item": items.astype("int32"),
        "candidate_sampling_probability": np.full(n, 1 / 28, "float32"),
    }


def test_two_tower_loss_matches_hand_computation():
    model = _model(logq_correction=False, remove_accidental_hits=False)
    x = {"user": np.array([1, 2]), "item": np.array([3, 4])}
    q, c = (keras.ops.convert_to_numpy(t) for t in model(x))
    logits = q @ c.T
    expected = sum(
        np.log(np.exp(logits[i]).sum()) - logits[i, i] for i in range(2)
    )
    loss = model.compute_loss(x, None, model(x))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loss), expected, rtol=1e-5
    )


@pytest.mark.parametrize("weight", [1.0, 2.0])
def test_two_tower_logq_correction_subtracts_log_probability(weight):
    model = _model(
        logq_correction=True, remove_accidental_hits=False, logq_weight=weight
    )
    x = {
        "user": np.array([1, 2]),
        "item": np.array([3, 4]),
        "candidate_sampling_probability": np.array([0.5, 0.25], "float32"),
    }
    q, c = (keras.ops.convert_to_numpy(t) for t in model(x))
    logits = q @ c.T - weight * np.log([0.5, 0.25])[None, :]
    expected = sum(
        np.log(np.exp(logits[i]).sum()) - logits[i, i] for i in range(2)
    )
    loss = model.compute_loss(x, None, model(x))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loss), expected, rtol=1e-5
    )


def test_two_tower_fit_learns_structure():
    keras.utils.set_random_seed(0)
    model = _model()
    model.compile(optimizer=keras.optimizers.Adagrad(0.1))
    x = _data()
    history = model.fit(x, batch_size=128, epochs=5, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.9 * losses[0]
    # Each user's best items must now come from its own group.
    users = np.arange(1, 20)
    q = keras.ops.convert_to_numpy(model.query_tower({"user": users}))
    c = keras.ops.convert_to_numpy(
        model.candidate_tower({"item": np.arange(1, 29)})
    )
    top = np.argmax(q @ c.T, axis=1) + 1
    assert np.mean((top - 1) // 7 == users % 4) >= 0.9


def test_two_tower_rejects_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        _model(temperature=0)
    with pytest.raises(ValueError, match="logq_weight"):
        _model(logq_weight=-1)
    query = Tower(
        [
            {
                "name": "user",
                "type": "embedding",
                "input_dim": 5,
                "output_dim": 4,
            }
        ],
        4,
    )
    candidate = Tower(
        [
            {
                "name": "item",
                "type": "embedding",
                "input_dim": 5,
                "output_dim": 8,
            }
        ],
        8,
    )
    with pytest.raises(ValueError, match="output_dim"):
        TwoTower(query, candidate, candidate_id="item")


def test_two_tower_needs_sampling_probability_for_logq():
    model = _model()
    x = {"user": np.array([1]), "item": np.array([2])}
    with pytest.raises(KeyError, match="candidate_sampling_probability"):
        model.compute_loss(x, None, model(x))


def test_two_tower_serialization(tmp_path):
    model = _model()
    x = {"user": np.array([1, 2]), "item": np.array([3, 4])}
    config = model.get_config()
    clone = TwoTower.from_config(config)
    assert clone.get_config() == config
    path = tmp_path / "two_tower.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    for a, b in zip(model(x), reloaded(x), strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a),
            keras.ops.convert_to_numpy(b),
            atol=1e-6,
        )
    run_serialization_battery(
        model.query_tower, {"user": np.array([1])}, tmp_path
    )


def test_two_tower_trains_on_movielens_beyond_popularity(tmp_path):
    # Runs under both backends (make test repeats tests/models under TF).
    from recsys import train
    from recsys.config import load_config

    config = load_config(
        "configs/movielens_two_tower.toml",
        [
            "train.epochs=1",
            "index.kind='brute_force'",
            "evaluate.baselines=['popularity']",
        ],
    )
    bundle, metrics = train(config, str(tmp_path / "b"), progress=False)
    assert metrics["train"]["backend"] == keras.backend.backend()
    assert metrics["test"]["hr@100_filtered"] >= 0.19
    assert metrics["test"]["hr@100"] > metrics["baseline_popularity"]["hr@100"]
