import json

import keras
import numpy as np
import pytest

from recsys.layers import AuxiliaryHead

X = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")


def test_auxiliary_head_starts_at_its_mean_and_adds_its_weighted_error():
    head = AuxiliaryHead(weight=0.5, mean=3.0)
    head.build((None, 2))
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), bias])
    estimate = keras.ops.convert_to_numpy(head(X))
    np.testing.assert_allclose(estimate, [3.0, 3.0])
    assert head.losses == []
    head(X, np.array([4.0, 1.0], "float32"))
    # 0.5 * mean((3 - 4)^2, (3 - 1)^2)
    (loss,) = head.losses
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss), 1.25)


@pytest.mark.parametrize("weight", [-1.0, "0.5", None, float("nan")])
def test_auxiliary_head_rejects_a_weight_that_is_no_number_from_0(weight):
    # A string or None was a TypeError from a comparison.
    with pytest.raises(ValueError, match="weight"):
        AuxiliaryHead(weight=weight)


def test_a_target_of_one_column_is_the_same_target():
    # `frame[["rating"]]`: (batch, 1) broadcast against the (batch,)
    # estimate to every pair of rows, a wrong loss without an error.
    target = np.array([4.0, 1.0], "float32")
    losses = []
    for shaped in (target, target[:, None]):
        head = AuxiliaryHead(weight=1.0, mean=3.0)
        head.build((None, 2))
        kernel, bias = head.get_weights()
        head.set_weights([np.full_like(kernel, 0.1), bias])
        head(X, shaped)
        losses.append(float(keras.ops.convert_to_numpy(head.losses[0])))
    np.testing.assert_allclose(losses[1], losses[0])
    with pytest.raises(ValueError, match="target"):
        AuxiliaryHead()(X, np.zeros((2, 2), "float32"))


def test_auxiliary_head_config_round_trip():
    head = AuxiliaryHead(weight=0.5, mean=3.5)
    config = head.get_config()
    clone = AuxiliaryHead.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        config, sort_keys=True
    )
