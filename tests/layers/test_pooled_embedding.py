import keras
import numpy as np
import pytest

from recsys.layers import PooledEmbedding
from tests.battery import run_serialization_battery


def _layer(combiner="mean"):
    layer = PooledEmbedding(5, 2, combiner=combiner)
    layer.build((None,))
    # Row i of the table is [i, 10 * i]: a lookup table we can read.
    layer.embeddings.assign(
        np.array([[i, 10 * i] for i in range(5)], dtype="float32")
    )
    return layer


def test_pooled_embedding_lookup_is_row_of_table():
    out = keras.ops.convert_to_numpy(_layer()(np.array([3, 1])))
    np.testing.assert_allclose(out, [[3, 30], [1, 10]])


@pytest.mark.parametrize(
    "combiner, expected",
    [("mean", [[2, 20], [4, 40], [0, 0]]), ("sum", [[4, 40], [4, 40], [0, 0]])],
)
def test_pooled_embedding_masks_padding(combiner, expected):
    ids = np.array([[1, 3, 0], [4, 0, 0], [0, 0, 0]])
    out = keras.ops.convert_to_numpy(_layer(combiner)(ids))
    np.testing.assert_allclose(out, expected)


def test_pooled_embedding_weight_shapes():
    layer = _layer()
    assert [tuple(w.shape) for w in layer.weights] == [(5, 2)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_dim": 0, "output_dim": 2}, "input_dim"),
        ({"input_dim": 5, "output_dim": 0}, "output_dim"),
        ({"input_dim": 5, "output_dim": 2, "combiner": "max"}, "combiner"),
    ],
)
def test_pooled_embedding_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PooledEmbedding(**kwargs)


def test_pooled_embedding_serialization(tmp_path):
    run_serialization_battery(
        _layer(), np.array([[1, 2, 0], [3, 0, 0]]), tmp_path
    )
