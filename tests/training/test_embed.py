import numpy as np

from recsys.bundles.two_tower import ARRAYS
from recsys.models import Tower
from recsys.models import TwoTower
from recsys.training.embed import bundle_arrays
from recsys.training.embed import embed


def _tower(name, rows):
    spec = {"name": name, "type": "embedding", "input_dim": rows}
    return Tower([{**spec, "output_dim": 4}], 3, normalize=False)


def test_embed_is_the_tower_output_as_float32():
    tower = _tower("item", 10)
    inputs = {"item": np.arange(10, dtype="int32")}
    vectors = embed(tower, inputs)
    assert vectors.dtype == np.float32
    assert vectors.shape == (10, 3)
    np.testing.assert_allclose(vectors, np.asarray(tower(inputs)), rtol=1e-6)


def test_bundle_arrays_embeds_items_and_users_under_the_bundle_names():
    model = TwoTower(_tower("user", 5), _tower("item", 10), candidate_id="item")
    items = {"item": np.arange(1, 10, dtype="int32")}
    users = {"user": np.array([1, 2, 3, 4], "int32")}
    given = {
        "item_ids": np.arange(100, 109),
        "item_popularity": np.full(9, 1 / 9, np.float32),
        "user_ids": np.array([7, 8, 9, 10]),
        "seen_indptr": np.array([0, 1, 1, 2, 3]),
        "seen_items": np.array([0, 4, 8]),
    }
    arrays = bundle_arrays(model, item_inputs=items, user_inputs=users, **given)
    assert tuple(arrays) == ARRAYS
    for name, value in given.items():
        assert arrays[name] is value
    np.testing.assert_array_equal(
        arrays["item_embeddings"], embed(model.candidate_tower, items)
    )
    np.testing.assert_array_equal(
        arrays["user_embeddings"], embed(model.query_tower, users)
    )
    assert arrays["user_embeddings"].shape == (4, 3)
