import keras
import numpy as np
import pytest

from recsys.models import Tower
from tests.battery import run_serialization_battery

INPUTS = [
    {"name": "user", "type": "embedding", "input_dim": 4, "output_dim": 3},
    {"name": "genres", "type": "embedding", "input_dim": 5, "output_dim": 3},
]
BATCH = {"user": np.array([1, 2]), "genres": np.array([[1, 2], [3, 0]])}


def test_tower_sum_adds_feature_vectors():
    tower = Tower(INPUTS, 3, combine="sum", normalize=False)
    for table, scale in zip(tower.embeddings, (1.0, 100.0), strict=True):
        table.embeddings.assign(
            np.arange(table.input_dim * 3, dtype="float32").reshape(-1, 3)
            * scale
        )
    out = keras.ops.convert_to_numpy(tower(BATCH))
    # user 1 -> [3, 4, 5]; genres mean of rows 1 and 2 -> 100 * [4.5, 5.5, 6.5].
    np.testing.assert_allclose(out[0], [453, 554, 655])
    np.testing.assert_allclose(out[1], [6 + 900, 7 + 1000, 8 + 1100])


def test_tower_normalize_gives_unit_vectors():
    out = keras.ops.convert_to_numpy(Tower(INPUTS, 3, combine="concat")(BATCH))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_tower_weight_shapes():
    tower = Tower(INPUTS + [{"name": "age", "type": "numeric"}], 4)
    shapes = sorted(tuple(w.shape) for w in tower.weights)
    assert shapes == [(4,), (4, 3), (5, 3), (7, 4)]


def test_tower_single_table_is_a_plain_lookup():
    tower = Tower(INPUTS[:1], 3, normalize=False)
    assert tower.projection is None
    table = keras.ops.convert_to_numpy(tower.embeddings[0].embeddings)
    out = keras.ops.convert_to_numpy(tower({"user": np.array([2])}))
    np.testing.assert_allclose(out[0], table[2])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"inputs": [], "output_dim": 3}, "at least one"),
        ({"inputs": INPUTS, "output_dim": 0}, "output_dim"),
        ({"inputs": INPUTS, "output_dim": 3, "combine": "max"}, "combine"),
        (
            {"inputs": INPUTS, "output_dim": 4, "combine": "sum"},
            'combine="sum"',
        ),
        ({"inputs": [{"name": "x", "type": "image"}], "output_dim": 3}, "type"),
        (
            # NaN cells, which only a tabular model reads.
            {
                "inputs": [{"name": "age", "type": "numeric", "missing": True}],
                "output_dim": 3,
            },
            r'missing = "mean" in \[features.age\]',
        ),
    ],
)
def test_tower_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Tower(**kwargs)


def test_tower_missing_input_names_it():
    with pytest.raises(KeyError, match="genres"):
        Tower(INPUTS, 3)({"user": np.array([1])})


@pytest.mark.parametrize("combine", ["sum", "concat"])
def test_tower_serialization(combine, tmp_path):
    run_serialization_battery(
        Tower(INPUTS, 3, combine=combine), BATCH, tmp_path
    )
