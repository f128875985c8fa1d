"""Choosing a numeric column's transform and missing-value rule from its
training values.

A numeric feature table that does not name its `transform` leaves the
choice to the data (the tabular kind asks this module): a column of
non-negative values with a long right tail (amounts, incomes, prices,
counts) is log-transformed before it is standardized, so that a few huge
values do not squeeze every other row into a sliver around the mean;
anything else is standardized as it is. A column with empty cells among
the training rows gets a 0/1 "missing" input beside it (`missing =
"indicator"`), as an empty cell often says something of the row.
"""

import contextlib
import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from recsys.features.specs import FeatureSpec
from recsys.features.specs import NumericFeature

# Sample skewness above which a non-negative column is log-transformed. A
# normal or uniform column has ~0, an exponential 2; incomes and prices in
# public tables are 2.5-10. Chosen on the validation carve of
# configs/examples/credit_data.toml (AUC 0.8211 -> 0.8268 with its two
# columns above it logged), never on a test split.
SKEW_FOR_LOG = 2.0


# Text that says no number in a column of numbers, read as missing there
# (stripped): a request's `"age": ""`, a CSV's "None" (`recsys.data.sources`).
NO_NUMBER = ("", "None")


def as_numbers(values: Any) -> pd.Series:
    """`values` as numbers; what is not a number becomes NaN.

    Datetimes (any resolution, time zone or backend; periods, by their
    start; or a column of text or Python datetimes that all read as ISO
    8601 times) become Unix seconds, and durations seconds:
    pandas' own numbers for them are ticks of the column's resolution (the
    same instant is 1e9 times larger as `datetime64[ns]` than as
    `datetime64[s]`), and pyarrow's timestamps are no numbers to it at
    all. Seconds also match a table's Unix-time integers (MovieLens'
    `timestamp`), so a model trained on either reads the other.

    Args:
        values: array-like.

    Returns:
        Series of numbers, NaN where a value is missing or not a number.

    Example:

    ```python
    as_numbers(pd.to_datetime(["1970-01-02"]))   # [86400.0]
    ```
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(series.dtype, pd.PeriodDtype):
        # A period as the instant it starts (pandas' numbers: days or
        # months since 1970, by the period's frequency).
        series = series.dt.to_timestamp()
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        # Naive times are taken as UTC, as pandas' ticks took them.
        return _seconds(pd.to_datetime(series, utc=True))
    if isinstance(series.dtype, pd.ArrowDtype) and pa.types.is_duration(
        series.dtype.pyarrow_dtype
    ):
        series = series.astype(
            f"timedelta64[{series.dtype.pyarrow_dtype.unit}]"
        )
    if pd.api.types.is_timedelta64_dtype(series.dtype):
        # Durations in seconds, whatever their unit's ticks.
        return pd.Series(series.dt.total_seconds(), index=series.index)
    numbers = pd.to_numeric(series, errors="coerce")
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        # A CSV or JSON column of times is text (or Python datetimes): as
        # datetimes when every value reads as one and none as a number.
        given = series.notna()
        # Times start with a digit: pandas reads "now" and "today" as the
        # clock's time, which no two runs share.
        dated = series[given].astype(str).str.match(r"\s*\d").all()
        if given.any() and dated and not numbers.notna().any():
            with contextlib.suppress(ValueError, TypeError, OverflowError):
                stamps = pd.to_datetime(
                    series, format="ISO8601", utc=True, errors="coerce"
                )
                if not (stamps.isna() & given).any():
                    return _seconds(stamps)
    return numbers


def _seconds(stamps: pd.Series) -> pd.Series:
    """UTC datetimes as Unix seconds.

    In numpy's units of the column's own resolution: pandas' subtraction
    would go through nanoseconds, which end in 2262 (a Parquet file's
    9999-12-31, a common "no end date", is a microsecond timestamp).
    """
    unit, _ = np.datetime_data(stamps.dt.tz_localize(None).dtype)
    ticks = stamps.dt.tz_localize(None).to_numpy(f"datetime64[{unit}]")
    epoch = np.array(0, dtype=f"datetime64[{unit}]")
    seconds = (ticks - epoch) / np.timedelta64(1, "s")
    return pd.Series(seconds, index=stamps.index)


def choose_numeric_transform(values: Any) -> str:
    """`"log"` for a heavy-tailed column of non-negative numbers, else
    `"standardize"`.

    Args:
        values: array-like of numbers (nulls ignored).

    Returns:
        str. A `NumericFeature.transform`.

    Example:

    ```python
    choose_numeric_transform([1, 2, 3, 2, 1])           # "standardize"
    choose_numeric_transform([1, 1, 2, 1, 3, 1, 400])   # "log"
    ```
    """
    x = as_numbers(values).dropna().astype(np.float64)
    if len(x) < 3 or bool((x < 0).any()):
        return "standardize"
    skew = float(x.skew())
    return "log" if np.isfinite(skew) and skew > SKEW_FOR_LOG else "standardize"


def with_chosen_transforms(
    specs: list[FeatureSpec], tables: dict[str, dict], frame: pd.DataFrame
) -> list[FeatureSpec]:
    """`specs` with each unset numeric transform and missing-value rule
    chosen from `frame`.

    Args:
        specs: list of feature specs.
        tables: dict. The config's `[features.<name>]` tables as written:
            a numeric feature whose table has a `transform` (or `missing`)
            key keeps it.
        frame: DataFrame. The training rows (never the held-out ones).

    Returns:
        A new list; the specs not chosen for are the same objects.
    """
    chosen = []
    for spec in specs:
        if isinstance(spec, NumericFeature) and spec.name in frame:
            table = tables.get(spec.name, {})
            column = frame[spec.name]
            if "transform" not in table:
                transform = choose_numeric_transform(column)
                spec = dataclasses.replace(spec, transform=transform)
            if "missing" not in table and bool(column.isna().any()):
                spec = dataclasses.replace(spec, missing="indicator")
        chosen.append(spec)
    return chosen
