"""The keras-rs style battery every recsys layer and model goes through."""

import json
import os

import keras
import numpy as np


def run_serialization_battery(obj, inputs, tmp_path):
    """Config round trip (compared as JSON) and `.keras` save -> same output.

    Args:
        obj: a built Keras layer or model.
        inputs: a sample input.
        tmp_path: a temporary directory.
    """
    config = obj.get_config()
    clone = obj.__class__.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        config, sort_keys=True
    )
    expected = keras.ops.convert_to_numpy(obj(inputs))
    model = obj if isinstance(obj, keras.Model) else keras.Sequential([obj])
    model(inputs)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(inputs)), expected, atol=1e-6
    )
