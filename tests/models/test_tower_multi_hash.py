import keras
import numpy as np

from recsys.features.hashing import multi_hash
from recsys.layers import MultiHashEmbedding
from recsys.layers import PooledEmbedding
from recsys.models import Tower
from tests.battery import run_serialization_battery

INPUTS = [
    {"name": "user", "type": "embedding", "input_dim": 4, "output_dim": 4},
    {
        "name": "item",
        "type": "embedding",
        "input_dim": 2**31 - 1,
        "output_dim": 4,
        "num_hashes": 2,
        "num_buckets": 10,
        "hash_combiner": "concat",
    },
]
BATCH = {"user": np.array([1, 2]), "item": np.array([123_456_789, 7])}


def test_tower_builds_a_multi_hash_table_for_hashed_inputs():
    tower = Tower(INPUTS, 4, combine="sum", normalize=False)
    user, item = tower.embeddings
    assert isinstance(user, PooledEmbedding)
    assert isinstance(item, MultiHashEmbedding)
    # 11 rows of 2 values (concatenated to 4), not 2**31 rows.
    assert tuple(item.embeddings.shape) == (11, 2)
    item.embeddings.assign(np.repeat(np.arange(11.0), 2).reshape(11, 2))
    user.embeddings.assign(np.zeros((4, 4)))
    out = keras.ops.convert_to_numpy(tower(BATCH))
    rows = multi_hash(BATCH["item"], 10, 2)
    np.testing.assert_allclose(out, np.repeat(rows, 2, axis=1))


def test_tower_with_multi_hash_table_serializes(tmp_path):
    run_serialization_battery(Tower(INPUTS, 4, combine="sum"), BATCH, tmp_path)
