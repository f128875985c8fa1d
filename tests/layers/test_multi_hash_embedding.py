import keras
import numpy as np
import pytest

from recsys.features.hashing import multi_hash
from recsys.layers import MultiHashEmbedding
from tests.battery import run_serialization_battery


def _layer(hash_combiner="sum", combiner="mean", output_dim=2):
    layer = MultiHashEmbedding(
        7,
        output_dim,
        num_hashes=2,
        hash_combiner=hash_combiner,
        combiner=combiner,
    )
    layer.build((None,))
    # Row r of the table is [r, 10 * r] (or [r] for concat): readable sums.
    width = layer.embeddings.shape[1]
    table = np.array([[r, 10 * r][:width] for r in range(8)], "float32")
    layer.embeddings.assign(table)
    return layer


def test_multi_hash_embedding_rows_match_numpy_reference():
    ids = np.array([0, 1, 2, 3, 12_345, 2**31 - 1, 987_654_321], "int32")
    layer = MultiHashEmbedding(1000, 4, num_hashes=3, seed=5)
    rows = keras.ops.convert_to_numpy(layer.hash_rows(ids))
    np.testing.assert_array_equal(rows, multi_hash(ids, 1000, 3, seed=5))
    assert (rows[0] == 0).all() and (rows[1:] >= 1).all()


def test_multi_hash_embedding_sum_of_hashed_rows():
    layer = _layer("sum")
    ids = np.array([5, 0, 9])
    rows = multi_hash(ids, 7, 2)
    out = keras.ops.convert_to_numpy(layer(ids))
    np.testing.assert_allclose(out[:, 0], rows.sum(axis=1))
    np.testing.assert_allclose(out[:, 1], 10 * rows.sum(axis=1))
    np.testing.assert_allclose(out[1], [0, 0])  # id 0 -> row 0 twice


def test_multi_hash_embedding_concat_of_hashed_rows():
    layer = _layer("concat")
    ids = np.array([5, 9])
    out = keras.ops.convert_to_numpy(layer(ids))
    np.testing.assert_allclose(out, multi_hash(ids, 7, 2))


@pytest.mark.parametrize("combiner", ["mean", "sum"])
def test_multi_hash_embedding_pools_and_masks_padding(combiner):
    layer = _layer("sum", combiner)
    ids = np.array([[5, 9, 0], [0, 0, 0]])
    rows = multi_hash(ids, 7, 2).sum(axis=-1)  # (2, 3), 0 for padding
    out = keras.ops.convert_to_numpy(layer(ids))
    pooled = rows[0, :2].sum() / (2 if combiner == "mean" else 1)
    np.testing.assert_allclose(out[0], [pooled, 10 * pooled], rtol=1e-6)
    np.testing.assert_allclose(out[1], [0, 0])


def test_multi_hash_embedding_weight_shapes():
    assert [tuple(w.shape) for w in _layer("sum").weights] == [(8, 2)]
    layer = MultiHashEmbedding(100, 32, num_hashes=4, hash_combiner="concat")
    layer.build((None,))
    assert [tuple(w.shape) for w in layer.weights] == [(101, 8)]


def test_multi_hash_embedding_merges_fewer_ids_than_one_hash():
    # 20,000 ids into 5,000 rows: one hash leaves nearly every id sharing its
    # row (1 - e^-4 = 98%), two hashes merge an id with another only when
    # both rows agree (about 20,000 / 5,000^2 = 0.08%, twice that summed).
    ids = np.arange(1, 20_001)
    layer = MultiHashEmbedding(5000, 8, num_hashes=2)
    rows = keras.ops.convert_to_numpy(layer.hash_rows(ids))

    def share(keys):
        _, inverse, counts = np.unique(
            keys, axis=0, return_inverse=True, return_counts=True
        )
        return (counts[inverse.reshape(-1)] > 1).mean()

    assert 0.97 < share(rows[:, :1]) < 0.99
    assert share(np.sort(rows, axis=1)) < 0.005


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_buckets": 0, "output_dim": 2}, "num_buckets"),
        ({"num_buckets": 5, "output_dim": 0}, "output_dim"),
        ({"num_buckets": 5, "output_dim": 2, "num_hashes": 0}, "num_hashes"),
        (
            {"num_buckets": 5, "output_dim": 2, "hash_combiner": "max"},
            "hash_combiner",
        ),
        ({"num_buckets": 5, "output_dim": 2, "combiner": "max"}, "combiner"),
        (
            {
                "num_buckets": 5,
                "output_dim": 5,
                "num_hashes": 2,
                "hash_combiner": "concat",
            },
            "multiple of `num_hashes`",
        ),
    ],
)
def test_multi_hash_embedding_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHashEmbedding(**kwargs)


@pytest.mark.parametrize("hash_combiner", ["sum", "concat"])
def test_multi_hash_embedding_serialization(tmp_path, hash_combiner):
    run_serialization_battery(
        _layer(hash_combiner), np.array([[1, 2, 0], [3, 0, 0]]), tmp_path
    )


def test_multi_hash_embedding_trains():
    # Ids 11 and 22 share no row (checked), so their targets can both be met.
    assert not set(multi_hash([11], 50, 2)[0]) & set(multi_hash([22], 50, 2)[0])
    keras.utils.set_random_seed(0)
    layer = MultiHashEmbedding(50, 4, num_hashes=2)
    model = keras.Sequential([layer, keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    x = np.array([11, 22] * 16)
    y = np.array([1.0, -1.0] * 16)
    model.fit(x, y, batch_size=8, epochs=30, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.01


def test_multi_hash_embedding_refuses_ids_of_three_dimensions():
    # It answered (batch, 3, dim) while saying (batch, dim) to a model.
    layer = MultiHashEmbedding(num_buckets=100, output_dim=8)
    with pytest.raises(ValueError, match="input_shape"):
        layer(np.ones((2, 3, 4), "int32"))
    with pytest.raises(ValueError, match="input_shape"):
        layer(keras.Input((3, 4), dtype="int32"))
