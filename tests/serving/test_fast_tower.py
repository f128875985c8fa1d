import numpy as np
import pytest

from recsys.models import Tower
from recsys.serving.fast_tower import NumpyTower
from recsys.serving.service import RetrievalService


@pytest.fixture(scope="module")
def bundle(trained_bundle):
    return trained_bundle[0]


def _inputs(tower, batch, seed=0):
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in tower.inputs_config:
        if spec["type"] == "numeric":
            inputs[spec["name"]] = rng.normal(size=batch).astype(np.float32)
        elif spec["name"] == "history":
            ids = rng.integers(0, spec["input_dim"], (batch, 10))
            ids[:, 6:] = 0  # padding at the end, as requests send it
            ids[0] = 0  # a row of padding only
            ids[1, 2] = 0  # an unknown item in the middle
            inputs["history"] = ids.astype(np.int32)
        else:
            inputs[spec["name"]] = rng.integers(0, spec["input_dim"], batch)
    return inputs


def test_numpy_tower_equals_the_bundles_keras_tower(bundle):
    # The default config: user id + pooled history, summed, no projection.
    tower = bundle.query_tower
    fast = NumpyTower.from_keras(tower)
    assert fast is not None
    inputs = _inputs(tower, 16)
    np.testing.assert_allclose(
        fast(inputs), np.asarray(tower(inputs)), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("combiner", ["mean", "sum", "sqrtn"])
def test_numpy_tower_equals_keras_with_dense_layers(combiner):
    tower = Tower(
        [
            {
                "name": "user",
                "type": "embedding",
                "input_dim": 50,
                "output_dim": 8,
            },
            {
                "name": "history",
                "type": "embedding",
                "input_dim": 30,
                "output_dim": 6,
                "combiner": combiner,
            },
            {"name": "age", "type": "numeric"},
        ],
        output_dim=4,
        hidden_units=[12],
        normalize=True,
    )
    fast = NumpyTower.from_keras(tower)
    inputs = _inputs(tower, 8)
    np.testing.assert_allclose(
        fast(inputs), np.asarray(tower(inputs)), rtol=1e-5, atol=1e-6
    )


def test_unsupported_towers_stay_with_keras():
    tower = Tower(
        [
            {
                "name": "user",
                "type": "embedding",
                "num_hashes": 2,
                "num_buckets": 64,
                "output_dim": 4,
            },
        ],
        output_dim=4,
    )
    assert NumpyTower.from_keras(tower) is None
    fast = NumpyTower.from_keras(
        Tower(
            [
                {
                    "name": "u",
                    "type": "embedding",
                    "input_dim": 5,
                    "output_dim": 4,
                }
            ],
            output_dim=4,
        )
    )
    # Ids outside the table go to Keras, which answers as it always did.
    assert fast.supports({"u": np.array([4])})
    assert not fast.supports({"u": np.array([5])})


def _latest(bundle, user):
    """The user's training items, latest first: the history their stored
    vector was computed from at training time."""
    seen = bundle.item_ids[bundle.seen(bundle.user_rows([user])[0])]
    return [str(i) for i in seen[::-1][:10]]


def test_feature_queries_equal_keras_and_the_bundle(bundle):
    fast = RetrievalService(bundle, precompute_depth=0)
    keras_path = RetrievalService(bundle, precompute_depth=0, fast_tower=False)
    assert fast.tower_kind == "numpy" and keras_path.tower_kind == "keras"
    for user in bundle.user_ids[:5]:
        features = {"userId": str(user), "history": _latest(bundle, user)}
        expected_ids, expected = bundle.recommend(
            [user], k=10, exclude_seen=False
        )
        for service in (fast, keras_path):
            ids, scores, _ = service.retrieve(
                features=features, k=10, exclude_seen=False
            )
            np.testing.assert_array_equal(ids, expected_ids[0])
            np.testing.assert_allclose(
                scores, expected[0], rtol=1e-5, atol=1e-6
            )
    features = [
        {"userId": "1", "history": ["1", "260"]},
        {"history": []},
        {"userId": "no-such-user", "history": ["no-such-item", "1196"]},
    ]
    np.testing.assert_allclose(
        fast.embed(features), keras_path.embed(features), rtol=1e-5, atol=1e-6
    )
