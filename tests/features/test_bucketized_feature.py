import numpy as np
import pandas as pd
import pytest

from recsys.features import BucketizedFeature
from recsys.features import Preprocessor
from recsys.features import feature_from_config


def test_bucketized_quantile_boundaries_and_ids():
    frame = pd.DataFrame({"year": [1990, 1991, 1992, 1993, None, 2000]})
    pre = Preprocessor(features=[BucketizedFeature("year", num_bins=2)])
    pre.fit(frame)
    # The median of the five known years is 1992.
    assert pre.stats_["year"]["boundaries"] == [1992.0]
    ids = pre.transform(frame)["year"]
    np.testing.assert_array_equal(ids, [1, 1, 2, 2, 0, 2])
    assert ids.dtype == np.int32
    assert pre.input_dim("year") == 3


def test_bucketized_fixed_boundaries_need_no_data_and_round_trip():
    feature = BucketizedFeature("age", boundaries=[18, 65])
    pre = Preprocessor(features=[feature]).fit(pd.DataFrame({"age": [1.0]}))
    frame = pd.DataFrame({"age": [3, 18, 40, 65, 90]})
    np.testing.assert_array_equal(pre.transform(frame)["age"], [1, 2, 2, 3, 3])
    again = Preprocessor.from_config(pre.get_config())
    np.testing.assert_array_equal(
        again.transform(frame)["age"], pre.transform(frame)["age"]
    )
    assert feature_from_config(feature.get_config()) == feature


def test_bucketized_repeated_quantiles_merge():
    frame = pd.DataFrame({"n": [0] * 90 + list(range(1, 11))})
    pre = Preprocessor(features=[BucketizedFeature("n", num_bins=10)])
    boundaries = pre.fit(frame).stats_["n"]["boundaries"]
    assert boundaries == sorted(set(boundaries))
    assert len(boundaries) < 9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_bins": 0}, "num_bins"),
        ({"num_bins": 10**11}, "num_bins. must be at most 100,000"),
        ({"boundaries": [3, 1]}, "boundaries"),
        ({"boundaries": []}, "boundaries"),
        ({"boundaries": ["a"]}, "boundaries"),
    ],
)
def test_bucketized_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BucketizedFeature("x", **kwargs)


def test_bucketized_names_a_non_numeric_column():
    pre = Preprocessor(features=[BucketizedFeature("year")])
    with pytest.raises(ValueError, match="Column 'year' must be numeric"):
        pre.fit(pd.DataFrame({"year": ["1990", "nineteen"]}))
