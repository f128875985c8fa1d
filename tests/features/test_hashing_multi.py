import logging

import numpy as np
import pandas as pd
import pytest

from recsys.features import CategoricalFeature
from recsys.features import MultiCategoricalFeature
from recsys.features import Preprocessor
from recsys.features import multi_hash
from recsys.features import recommended_buckets
from recsys.features import stable_hash
from recsys.features.hashing import FINGERPRINT_BUCKETS
from recsys.features.hashing import canonical_strings

IDS = pd.DataFrame({"item": [f"item-{i}" for i in range(20_000)]})


def _report(num_buckets, num_hashes=1, hash_combiner="sum"):
    feature = CategoricalFeature(
        "item",
        vocabulary="hash",
        num_buckets=num_buckets,
        num_hashes=num_hashes,
        hash_combiner=hash_combiner,
    )
    return Preprocessor(features=[feature]).fit(IDS).collision_report_["item"]


def test_multi_hash_feature_keeps_a_fingerprint_per_value():
    feature = CategoricalFeature(
        "item", vocabulary="hash", num_buckets=100, num_hashes=2
    )
    pre = Preprocessor(features=[feature]).fit(IDS)
    ids = pre.transform_column("item", ["a", "b", None, 42, "42"])
    strings = canonical_strings(["a", "b"])
    np.testing.assert_array_equal(
        ids[:2], 1 + stable_hash(strings, FINGERPRINT_BUCKETS)
    )
    assert ids[2] == 0 and ids[3] == ids[4]
    assert pre.input_dim("item") == 2**31 - 1  # ids; the table has 101 rows
    assert pre.embedding_dim("item") == 20  # default rule on 101 rows


def test_multi_hash_report_counts_values_whose_rows_all_collide():
    one = _report(5000)
    two = _report(5000, num_hashes=2, hash_combiner="concat")
    # 20,000 values in 5,000 buckets: 1 - e^-4 of them share a bucket; with
    # two hashes only those sharing both (about 20,000 / 5,000^2).
    assert one["colliding_share"] == pytest.approx(1 - np.exp(-4), abs=0.01)
    assert two["colliding_share"] < 0.003
    assert two["num_hashes"] == 2 and two["buckets"] == 5000


@pytest.mark.parametrize(
    "num_hashes, hash_combiner, target",
    [(1, "sum", 0.05), (2, "sum", 0.05), (2, "concat", 0.2)],
)
def test_recommended_buckets_reach_the_target_share(
    num_hashes, hash_combiner, target
):
    buckets = recommended_buckets(
        len(IDS), target, num_hashes, unordered=hash_combiner == "sum"
    )
    report = _report(buckets, num_hashes, hash_combiner)
    assert report["colliding_share"] == pytest.approx(target, rel=0.25)


def test_collision_report_recommends_buckets_for_one_percent():
    report = _report(5000)
    assert report["target_share"] == 0.01
    assert report["recommended_buckets"] == recommended_buckets(20_000, 0.01)
    assert _report(report["recommended_buckets"])["colliding_share"] < 0.012


def test_a_collision_report_of_many_collisions_is_a_warning(caplog):
    # An INFO line, hidden by -q even where every value collided, naming no
    # setting to change.
    with caplog.at_level(logging.INFO, logger="recsys"):
        _report(10_000_000)
        _report(500)
    few, many = caplog.records[-2:]
    assert few.levelno == logging.INFO
    assert many.levelno == logging.WARNING
    assert "features.item.num_buckets = " in many.getMessage()


def test_multi_hash_of_multi_valued_column():
    feature = MultiCategoricalFeature(
        "tags", separator="|", vocabulary="hash", num_buckets=8, num_hashes=3
    )
    frame = pd.DataFrame({"tags": ["a|b", "b", None]})
    ids = Preprocessor(features=[feature]).fit(frame).transform(frame)["tags"]
    assert ids[0, 1] == ids[1, 0] and (ids[2] == 0).all()
    rows = multi_hash(ids, 8, 3)
    assert rows.shape == (3, 8, 3) and (rows[2] == 0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_hashes": 2}, 'needs vocabulary="hash"'),
        (
            {"vocabulary": "hash", "num_buckets": 9, "num_hashes": 0},
            "num_hashes",
        ),
        (
            {"vocabulary": "hash", "num_buckets": 9, "hash_combiner": "max"},
            "hash_combiner",
        ),
    ],
)
def test_multi_hash_feature_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CategoricalFeature("item", **kwargs)


def test_recommended_buckets_rejects_bad_target():
    with pytest.raises(ValueError, match="target_share"):
        recommended_buckets(100, 1.5)


def test_more_buckets_than_int32_ids_hold_are_refused():
    # From 2**31 buckets the ids wrapped to negatives, where `input_dim`
    # said 3,000,000,001.
    from recsys.features.specs import MAX_BUCKETS

    CategoricalFeature("u", vocabulary="hash", num_buckets=MAX_BUCKETS)
    with pytest.raises(ValueError, match=r"Feature 'u': `num_buckets` can be"):
        CategoricalFeature("u", vocabulary="hash", num_buckets=3 * 10**9)
