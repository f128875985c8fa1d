import keras
import numpy as np

from recsys.layers import SparseRowsEmbedding


def test_a_saved_model_with_the_layer_loads_without_custom_objects(tmp_path):
    # It was not registered: load_model could not locate the class.
    ids = keras.Input((3,), dtype="int32")
    model = keras.Model(ids, SparseRowsEmbedding(10, 4)(ids))
    x = np.array([[1, 2, 9], [0, 5, 5]])
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded(x)),
        keras.ops.convert_to_numpy(model(x)),
    )
