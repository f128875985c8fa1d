import keras
import numpy as np
import pandas as pd
import pytest

from recsys.features import BucketizedFeature
from recsys.features import CategoricalFeature
from recsys.features import MultiCategoricalFeature
from recsys.features import NumericFeature
from recsys.features import Preprocessor
from recsys.models import Tower
from recsys.models.inputs import history_spec
from recsys.models.inputs import input_specs
from recsys.names import HISTORY
from recsys.training.memory import check_table_memory

FRAME = pd.DataFrame(
    {
        "user": ["a", "b", "c", "a"],
        "item": [10, 11, 12, 10],
        "tags": ["x|y", "y", "z", "x"],
        "age": [20.0, 30.0, 40.0, 50.0],
        "price": [1.0, 2.0, 3.0, 4.0],
    }
)


def _preprocessor(item_hashes=1):
    item = CategoricalFeature("item", embedding_dim=6)
    if item_hashes > 1:
        item = CategoricalFeature(
            "item",
            vocabulary="hash",
            num_buckets=50,
            num_hashes=item_hashes,
            hash_combiner="concat",
            embedding_dim=6,
        )
    features = [
        CategoricalFeature("user", embedding_dim=4),
        item,
        MultiCategoricalFeature(
            "tags", separator="|", combiner="sum", embedding_dim=3
        ),
        NumericFeature("age"),
        BucketizedFeature("price", num_bins=2, embedding_dim=5),
    ]
    return Preprocessor(features=features).fit(FRAME)


def test_specs_take_each_feature_own_size_and_combiner():
    pre = _preprocessor()
    specs = input_specs(pre, ["user", "tags", "age", "price"])
    assert specs == [
        {
            "name": "user",
            "type": "embedding",
            "input_dim": pre.input_dim("user"),
            "output_dim": 4,
            "combiner": "mean",
        },
        {
            "name": "tags",
            "type": "embedding",
            "input_dim": pre.input_dim("tags"),
            "output_dim": 3,
            "combiner": "sum",
        },
        {"name": "age", "type": "numeric"},
        {
            "name": "price",
            "type": "embedding",
            "input_dim": pre.input_dim("price"),
            "output_dim": 5,
            "combiner": "mean",
        },
    ]
    # 3 users + 1 out-of-vocabulary row + padding.
    assert specs[0]["input_dim"] == 5


def test_output_dim_sets_every_embedding_and_zero_means_unset():
    pre = _preprocessor()
    names = ["user", "item", "age"]
    fixed = input_specs(pre, names, output_dim=8)
    assert [s.get("output_dim") for s in fixed] == [8, 8, None]
    # A config's `embedding_dim = 0` falls back to each feature's own size.
    assert input_specs(pre, names, output_dim=0) == input_specs(pre, names)


def test_multi_hash_feature_gets_its_table_options():
    pre = _preprocessor(item_hashes=2)
    (spec,) = input_specs(pre, ["item"])
    assert spec["num_hashes"] == 2
    assert spec["num_buckets"] == 50
    assert spec["hash_combiner"] == "concat"
    # One hash: no multi-hash keys, so single-hash specs (and the configs
    # saved with the models) stay as they were.
    (plain,) = input_specs(_preprocessor(), ["item"])
    assert "num_hashes" not in plain


def test_history_uses_the_item_table():
    pre = _preprocessor()
    spec = history_spec(pre, "item", output_dim=16)
    assert spec == {
        "name": HISTORY,
        "type": "embedding",
        "input_dim": pre.input_dim("item"),
        "output_dim": 16,
        "combiner": "mean",
    }
    assert history_spec(pre, "item")["output_dim"] == 6
    hashed = history_spec(_preprocessor(item_hashes=2), "item")
    assert hashed["num_hashes"] == 2


def test_tower_builds_from_the_specs():
    pre = _preprocessor()
    names = ["user", "tags", "age"]
    specs = input_specs(pre, names) + [history_spec(pre, "item")]
    tower = Tower(specs, 8)
    x = {name: pre.transform_column(name, FRAME[name]) for name in names}
    x[HISTORY] = np.stack([pre.transform_column("item", FRAME["item"])] * 2, 1)
    out = keras.ops.convert_to_numpy(tower(x))
    assert out.shape == (4, 8)


def test_tables_beyond_the_memory_are_refused_by_name():
    specs = input_specs(_preprocessor(), ["user", "item", "age"], output_dim=8)
    rows = {spec["name"]: spec["input_dim"] for spec in specs[:2]}
    # Weights, two working copies and Adam's two slots: 5 float32 copies,
    # in 90% of the memory.
    needed = sum(rows.values()) * 8 * 4 * 5
    enough = int(needed / 0.9) + 1
    check_table_memory(specs, optimizer="adam", memory_bytes=enough)
    largest = max(rows, key=rows.get)
    with pytest.raises(
        ValueError,
        match=rf"the largest is '{largest}', {rows[largest]} rows x 8\. "
        "Fix: lower model.embedding_dim",
    ):
        check_table_memory(specs, optimizer="adam", memory_bytes=enough - 2)
    # Plain SGD keeps no slots: 3 copies.
    check_table_memory(specs, optimizer="sgd", memory_bytes=enough * 3 // 5 + 1)
