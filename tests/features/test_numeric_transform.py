"""A numeric column's transform and missing-value rule, chosen from its
training values."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recsys.features import CategoricalFeature
from recsys.features import NumericFeature
from recsys.features import Preprocessor
from recsys.features.numeric_transform import as_numbers
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


def test_datetimes_are_read_as_unix_seconds_whatever_their_unit_or_zone():
    # Pandas' own numbers for datetimes are ticks of the column's unit: a
    # model trained on microseconds and given nanoseconds (or pyarrow's
    # timestamps, no numbers to pandas) predicted nonsense, silently.
    instants = pd.Series(pd.to_datetime(["2020-01-01", "2021-06-01", None]))
    seconds = [1577836800.0, 1622505600.0]
    frame = pd.DataFrame({"when": instants.astype("datetime64[us]")})
    pre = Preprocessor(features=[NumericFeature("when")]).fit(frame)
    expected = pre.transform(frame)["when"]
    for column in (
        instants.astype("datetime64[s]"),
        instants.astype("datetime64[ns]"),
        instants.dt.tz_localize("UTC").dt.tz_convert("Europe/Paris"),
        instants.astype(pd.ArrowDtype(pa.timestamp("us"))),
        pd.Series(seconds + [None]),  # Unix-time integers, as MovieLens'
    ):
        assert as_numbers(column).tolist()[:2] == seconds
        np.testing.assert_array_equal(
            pre.transform(pd.DataFrame({"when": column}))["when"], expected
        )
    arrow = instants.astype(pd.ArrowDtype(pa.timestamp("us", tz="UTC")))
    assert Preprocessor(features=[NumericFeature("when")]).fit(
        pd.DataFrame({"when": arrow})
    ).stats_["when"]["mean"] == pytest.approx(sum(seconds) / 2)


def test_times_as_text_in_iso_8601_read_as_unix_seconds():
    # A CSV or JSON file has no datetime type: its times are text, refused
    # at training while the Parquet bundle scored that CSV.
    import datetime

    text = pd.Series(["2020-01-01T00:00:00Z", "2021-06-01 00:00:00+00:00"])
    assert as_numbers(text).tolist() == [1577836800.0, 1622505600.0]
    objects = pd.Series([datetime.datetime(1970, 1, 2), None], dtype=object)
    assert as_numbers(objects).tolist()[0] == 86400.0
    # Numbers stay numbers; a column of dates and other text is refused.
    assert as_numbers(pd.Series(["2013", "2014"])).tolist() == [2013, 2014]
    pre = Preprocessor(features=[NumericFeature("when")])
    with pytest.raises(ValueError, match="times: write every one in ISO"):
        pre.fit(pd.DataFrame({"when": ["2020-01-01", "soon", "later"]}))
    # One impossible date among times: that one is named, with its row
    # (the message listed five good times as "non-numeric").
    dates = ["2020-01-01"] * 300 + ["2020-02-30"]
    with pytest.raises(
        ValueError, match=r"1 of its cells is .*'2020-02-30' \(row 300\)"
    ):
        pre.fit(pd.DataFrame({"when": dates}))


def test_periods_durations_and_far_dates_read_as_seconds():
    # A period was days since 1970, a duration ticks of its unit, and a
    # Parquet 9999-12-31 ("no end date") failed beyond nanoseconds' 2262.
    periods = pd.Series(pd.period_range("1970-01-02", periods=2, freq="D"))
    assert as_numbers(periods).tolist() == [86400.0, 172800.0]
    waits = pd.Series(pd.to_timedelta([1.5, 3.0], unit="s"))
    for unit in ("s", "ms", "us", "ns"):
        waits_in = waits.astype(f"timedelta64[{unit}]")
        expected = [1.0, 3.0] if unit == "s" else [1.5, 3.0]
        assert as_numbers(waits_in).tolist() == expected
    far = pd.Series(np.array(["9999-12-31", "1970-01-02"], "datetime64[us]"))
    assert as_numbers(far).tolist() == [253402214400.0, 86400.0]


def test_text_that_is_no_time_or_number_is_named_plainly():
    # "now" read as the clock's time (no two runs alike); a number column
    # with one date typed in said "0 of its cells are no time".
    assert np.isnan(as_numbers(pd.Series(["now", "2020-01-01"]))).all()
    pre = Preprocessor(features=[NumericFeature("amount")])
    with pytest.raises(
        ValueError, match=r"1 non-numeric value, e.g. '2020-01-01' \(row 2\)"
    ):
        pre.fit(pd.DataFrame({"amount": ["12", "7", "2020-01-01"]}))
    arrow = pd.Series([1_500_000, None]).astype(
        pd.ArrowDtype(pa.duration("us"))
    )
    assert as_numbers(arrow).tolist()[0] == 1.5


def test_an_impossible_day_among_times_is_not_a_date_at_its_row():
    # Before: "no time pandas can hold (years 1677-2262)" for February
    # 30th, which no year range explains.
    days = pd.date_range("2020-01-01", periods=6).strftime("%Y-%m-%d")
    column = pd.Series(days, index=range(10, 16)).astype(object)
    column[13] = "2023-02-30"
    pre = Preprocessor(features=[NumericFeature("signup")])
    with pytest.raises(ValueError) as error:
        pre.fit(pd.DataFrame({"signup": column}))
    assert (
        "1 of its cells is not a date or time, e.g. '2023-02-30' (row 13)"
        in (str(error.value))
    )
    assert "1677" not in str(error.value)
