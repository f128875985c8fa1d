"""A numeric column's transform and missing-value rule, chosen from its
training values."""

import numpy as np
import pandas as pd

from recsys.features import CategoricalFeature
from recsys.features import NumericFeature
from recsys.features.numeric_transform import choose_numeric_transform
from recsys.features.numeric_transform import with_chosen_transforms


def test_a_long_right_tail_of_non_negative_values_is_logged():
    rng = np.random.default_rng(0)
    assert choose_numeric_transform(rng.lognormal(3, 1, 1000)) == "log"
    assert choose_numeric_transform([1, 1, 2, 1, 3, 1, 400]) == "log"


def test_symmetric_negative_or_tiny_columns_are_standardized():
    rng = np.random.default_rng(0)
    assert choose_numeric_transform(rng.normal(50, 10, 1000)) == "standardize"
    assert choose_numeric_transform(rng.uniform(0, 1, 1000)) == "standardize"
    # "log" is for counts and amounts: a column with a value below 0 is
    # standardized, however long its tail.
    tail = np.append(rng.lognormal(3, 1, 1000), -1.0)
    assert choose_numeric_transform(tail) == "standardize"
    assert choose_numeric_transform([5, 5]) == "standardize"
    assert choose_numeric_transform([7.0] * 10) == "standardize"  # no skew
    assert choose_numeric_transform([True, False, False]) == "standardize"


def test_nulls_are_ignored():
    values = pd.Series([1, 1, 2, 1, 3, 1, 400, None, None])
    assert choose_numeric_transform(values) == "log"


def test_only_unwritten_numeric_transforms_are_chosen():
    frame = pd.DataFrame(
        {"price": [1, 1, 2, 1, 3, 1, 400], "cost": [1, 1, 2, 1, 3, 1, 400]}
    )
    specs = [
        NumericFeature("price"),
        NumericFeature("cost"),
        CategoricalFeature("shop"),
    ]
    tables = {
        "price": {"kind": "numeric"},
        "cost": {"kind": "numeric", "transform": "standardize"},
        "shop": {"kind": "categorical"},
    }
    chosen = with_chosen_transforms(specs, tables, frame)
    assert [s.transform for s in chosen[:2]] == ["log", "standardize"]
    assert chosen[2] is specs[2]
    assert specs[0].transform == "standardize"  # the input is not changed


def test_a_column_with_empty_training_cells_gets_a_missing_indicator():
    frame = pd.DataFrame(
        {
            "income": [10.0, None, 12.0, 11.0],
            "age": [30.0, 41.0, 52.0, 25.0],
            "debt": [1.0, None, 2.0, 3.0],
        }
    )
    specs = [NumericFeature(name) for name in frame.columns]
    tables = {
        "income": {"kind": "numeric"},
        "age": {"kind": "numeric"},
        "debt": {"kind": "numeric", "missing": "mean"},  # as written
    }
    chosen = with_chosen_transforms(specs, tables, frame)
    assert [s.missing for s in chosen] == ["indicator", "mean", "mean"]
