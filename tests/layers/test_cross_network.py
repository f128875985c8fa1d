import keras
import numpy as np
import pytest

from recsys.layers import CrossNetwork
from tests.battery import run_serialization_battery

X = np.array([[1.0, 3.0], [2.0, 0.5]], "float32")


def test_cross_network_by_hand():
    # Each layer: x0 * (W x + b) + x; with W = 1 and b = 0 the first gives
    # x1 = x0 * sum(x0) + x0, the second x0 * sum(x1) + x1.
    layer = CrossNetwork(num_layers=2)
    layer.build((None, 2))
    for cross in layer.crosses:
        cross.set_weights([np.ones((2, 2), "float32"), np.zeros(2, "float32")])
    x1 = X * X.sum(1, keepdims=True) + X
    expected = X * x1.sum(1, keepdims=True) + x1
    out = keras.ops.convert_to_numpy(layer(X))
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "projection_dim, shapes",
    [
        (None, [(4, 4), (4,)] * 2),
        (2, [(4, 2), (2, 4), (4,)] * 2),
    ],
)
def test_cross_network_has_all_its_weights_once_built(projection_dim, shapes):
    layer = CrossNetwork(num_layers=2, projection_dim=projection_dim)
    layer.build((None, 4))
    assert [tuple(w.shape) for w in layer.weights] == shapes


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_layers": 0}, "num_layers"),
        ({"num_layers": 1.5}, "num_layers"),
        ({"projection_dim": 0}, "projection_dim"),
    ],
)
def test_cross_network_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrossNetwork(**kwargs)


def test_cross_network_serialization(tmp_path):
    layer = CrossNetwork(num_layers=2, projection_dim=1)
    layer.build((None, 2))
    run_serialization_battery(layer, X, tmp_path)
