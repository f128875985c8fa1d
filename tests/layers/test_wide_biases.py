import json

import keras
import numpy as np

from recsys.layers import WideBiases

INPUTS = [
    {"name": "user", "input_dim": 5},
    {"name": "tags", "input_dim": 4, "combiner": "sum"},
]


def test_wide_biases_look_up_one_number_per_value():
    wide = WideBiases(INPUTS)
    wide.build()
    # Zeros at first: the biases start neutral.
    assert all(not np.any(w) for w in wide.get_weights())
    wide.tables[0].set_weights([np.arange(5, dtype="float32")[:, None]])
    wide.tables[1].set_weights([np.arange(4, dtype="float32")[:, None]])
    user, tags = wide(
        {"user": np.array([1, 3]), "tags": np.array([[1, 2], [3, 0]])}
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(user), [[1], [3]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tags), [[3], [3]])
    assert [tuple(w.shape) for w in wide.weights] == [(5, 1), (4, 1)]


def test_wide_biases_config_round_trip():
    wide = WideBiases(INPUTS, embeddings_regularizer=keras.regularizers.L2(0.1))
    config = wide.get_config()
    clone = WideBiases.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        config, sort_keys=True
    )
