import json

import keras
import numpy as np
import pytest

from recsys.layers import DLRMInteraction

A = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")
B = np.array([[5.0, 6.0], [7.0, 8.0]], "float32")


def _out(layer, inputs):
    return keras.ops.convert_to_numpy(layer(inputs))


def test_dlrm_interaction_is_the_pairwise_dot_product():
    layer = DLRMInteraction(input_dims=[2, 2], dot_dim=2)
    np.testing.assert_allclose(
        _out(layer, ([A, B], []))[:, 0], (A * B).sum(1), rtol=1e-6
    )
    assert layer.output_dim == 1


def test_dlrm_interaction_projects_and_appends_the_bottom_vector():
    layer = DLRMInteraction(input_dims=[3, 2], num_numeric=1, dot_dim=2)
    layer.build()
    (projection,) = [p for p in layer.projections if p is not None]
    projection.set_weights([np.eye(3, 2, dtype="float32")])
    (bottom,) = layer.bottom
    bottom.set_weights([np.ones((1, 2), "float32"), np.zeros(2, "float32")])
    a = np.array([[1.0, 2.0, 9.0]], "float32")
    b = np.array([[5.0, 6.0]], "float32")
    age = np.array([[2.0]], "float32")
    out = _out(layer, ([a, b], [age]))
    # Vectors [1, 2], [5, 6], relu([2, 2]): three pairs, then the bottom.
    np.testing.assert_allclose(out, [[17.0, 6.0, 22.0, 2.0, 2.0]])
    assert out.shape[1] == layer.output_dim


def test_dlrm_interaction_weights():
    layer = DLRMInteraction([2, 4], num_numeric=3, dot_dim=4, bottom_units=[8])
    layer.build()
    # One projection (2 -> 4), the bottom layers 3 -> 8 -> 4.
    assert [tuple(w.shape) for w in layer.weights] == [
        (2, 4),
        (3, 8),
        (8,),
        (8, 4),
        (4,),
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_dims": [2]}, "two vectors"),
        ({"input_dims": [2, 2], "dot_dim": 0}, "dot_dim"),
        ({"input_dims": [2, 2], "bottom_units": [0]}, "bottom_units"),
        # These were accepted, then failed in the first call.
        ({"input_dims": [4, -4]}, "input_dims"),
        ({"input_dims": [4, 4.5]}, "input_dims"),
        ({"input_dims": [4, 4], "num_numeric": 1.5}, "num_numeric"),
        ({"input_dims": [4, 4], "num_numeric": -1}, "num_numeric"),
    ],
)
def test_dlrm_interaction_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DLRMInteraction(**kwargs)


def test_dlrm_interaction_config_round_trip():
    layer = DLRMInteraction([2, 3], num_numeric=2, dot_dim=2, bottom_units=[4])
    config = layer.get_config()
    clone = DLRMInteraction.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        config, sort_keys=True
    )
