"""How a table is split into training and held-out rows.

Every kind splits the same way: a held-out test set first, then, from the
training rows, a validation carve made by the same rule (`SplitRule`):

- `"user_time"` (PROTOCOL.md, the default for interactions): each user's
  latest `test_fraction` of rows (at least one), by `(time, item)`;
- `"time"`: a global time cut: rows at or after `cutoff`, or the latest
  `test_fraction` of all rows (rows tied with the first held-out time are
  held out too, so no training row is later than a test row); the
  validation carve is the latest `test_fraction` of the training rows;
- `"random"`: `test_fraction` of the rows drawn with `seed` (the carve with
  `seed + 1`);
- `"column"`: the user's own column, whose values are `"train"`,
  `"validation"` and `"test"`; the validation rows are training rows
  unless they are carved out (without any, the carve is a random
  `test_fraction` of the training rows, drawn with `seed`);
- `"none"`: every row is a training row and none is held out, for the
  bundle to ship; the validation carve (early stopping, tuning) is the one
  the table's default rule (`"auto"`'s) takes from its training part.

Texts split by the ids' suffixes (`suffix_split`) unless they ask for one of
the rules above. Interactions come back sorted by `(user, time, item)`, the
order that histories and evaluation read.
"""

import dataclasses
import fractions
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from recsys.config.common import resolved_split

# A split of a table into `(kept, held)`: `temporal_split`, `suffix_split`.
Splitter = Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]

SPLIT_METHODS = ("user_time", "time", "random", "column", "none")
COLUMN_VALUES = ("train", "validation", "test")

# What a run of `data.split = "none"` reports instead of test metrics.
NO_TEST_NOTE = (
    'data.split = "none": every row trains the model and none is held out, '
    "so there are no test metrics. Measure with the default split, then "
    "train with this one to ship."
)


def held_count(rows: int, fraction: float) -> int:
    """`ceil(rows * fraction)`, exact for decimal fractions (0.2 * 15 = 3).

    Args:
        rows: int. Number of rows.
        fraction: float. Share held out, in (0, 1).

    Returns:
        int. Rows held out.
    """
    return math.ceil(rows * _exact(fraction))


def _exact(fraction: float) -> fractions.Fraction:
    """`fraction` as the decimal it was written as (0.2 is 1/5)."""
    return fractions.Fraction(repr(fraction)).limit_denominator(10**9)


def temporal_split(
    interactions: pd.DataFrame,
    *,
    user: str,
    item: str,
    time: str,
    fraction: float = 0.2,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits each user's last `ceil(n * fraction)` interactions off.

    Per user, rows are ordered by `(time, item)`; with `n` rows, the last
    `ceil(n * fraction)` go to the second frame (with the default, the
    integer ceil of `0.2 * n`: PROTOCOL.md's test split). Applied to the
    training part it carves out the validation split.

    Args:
        interactions: pandas DataFrame with the three columns below.
        user: str. User id column.
        item: str. Item id column.
        time: str. Timestamp column.
        fraction: float. Share of each user's rows held out. Defaults to
            `0.2`.

    Returns:
        `(train, test)` DataFrames, each sorted by `(user, time, item)`.
    """
    ordered = _ordered(interactions, user, item, time)
    users = ordered[user].to_numpy()
    # Position of each row inside its user's block, and the block sizes.
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(users)])
    position = np.arange(len(users)) - np.repeat(starts, sizes)
    n = np.repeat(sizes, sizes)
    exact = _exact(fraction)
    held = -((-n * exact.numerator) // exact.denominator)  # integer ceil
    return _parts(ordered, position >= n - held)


def _ordered(frame, user, item, time):
    missing = [c for c in (user, item, time) if c not in frame.columns]
    if missing:
        raise KeyError(
            f"Columns {missing} are missing from the interactions. Available "
            f"columns: {list(frame.columns)}"
        )
    return frame.sort_values([user, time, item], kind="stable")


def _parts(frame, held):
    return (
        frame[~held].reset_index(drop=True),
        frame[held].reset_index(drop=True),
    )


@dataclasses.dataclass(frozen=True)
class SplitRule:
    """One of the splits of the module docstring, for test and validation.

    Attributes:
        method: str. One of `SPLIT_METHODS`.
        fraction: float. Share held out (`user_time`, `time`, `random`),
            and of `"none"`'s validation carve.
        cutoff: str or number or None. The first test time of a `time`
            split, as the config gives it (`cutoff_of` reads it in the
            time column's type); None holds out the latest `fraction`.
        seed: int. The `random` split's seed.
        column: str. The `column` split's column.
        user, item, time: str. The id and time columns (`""` for texts,
            which keep their row order).
        time_format: str. `data.time_format`: a cutoff written in the time
            column's own layout is read with it.
        carve_method: str. With `method = "none"`, the rule of the
            validation carve (`"user_time"`, `"time"` or `"random"`).

    Example:

    ```python
    rule = SplitRule("random", fraction=0.1, seed=3)
    train, test = rule.hold_out(frame)
    fit, validation = rule.carve(train)
    ```
    """

    method: str = "user_time"
    fraction: float = 0.2
    cutoff: Any = None
    seed: int = 0
    column: str = ""
    user: str = ""
    item: str = ""
    time: str = ""
    time_format: str = ""
    carve_method: str = ""

    def hold_out(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
        """`(train, test)`: the test rows split off `frame` (none for
        `"none"`: `train` is every row, in the order of any split)."""
        if self.method == "none":
            if self.user:
                frame = _ordered(frame, self.user, self.item, self.time)
                return _parts(frame, np.zeros(len(frame), dtype=bool))
            return frame, frame.iloc[:0]
        return self._split(frame, validation=False)

    def carve(self, train: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
        """`(fit, validation)`: the validation rows split off `train`."""
        return self.carving._split(train, validation=True)

    @property
    def carving(self) -> "SplitRule":
        """The rule `carve` applies: this one, or `"none"`'s
        `carve_method`."""
        if self.method != "none":
            return self
        return dataclasses.replace(
            self, method=self.carve_method, carve_method=""
        )

    def describe(self) -> dict[str, Any]:
        """The rule as metrics.json records it (`metrics["split"]`)."""
        if self.method == "none":
            return {"method": "none", "validation": self.carving.describe()}
        described: dict[str, Any] = {"method": self.method}
        if self.method == "column":
            described["column"] = self.column
        elif self.method == "time" and self.cutoff is not None:
            described["cutoff"] = str(self.cutoff)
            described["validation_fraction"] = self.fraction
        else:
            described["test_fraction"] = self.fraction
        if self.method == "random":
            described["seed"] = self.seed
        return described

    def _split(self, frame, *, validation):
        if self.method == "user_time":
            return temporal_split(
                frame,
                user=self.user,
                item=self.item,
                time=self.time,
                fraction=self.fraction,
            )
        if self.user:
            frame = _ordered(frame, self.user, self.item, self.time)
        if self.method == "time":
            held = self._time_mask(frame, validation)
        elif self.method == "random":
            held = self._random_mask(frame, validation)
        elif self.method == "column":
            held = self._column_mask(frame, validation)
        else:
            raise ValueError(
                f"Unknown split {self.method!r}. Fix: use one of "
                f"{list(SPLIT_METHODS)}."
            )
        if not self.user:  # texts keep their order and index
            return frame[~held], frame[held]
        return _parts(frame, held)

    def _random_mask(self, frame, validation):
        rng = np.random.default_rng(self.seed + validation)
        held = np.zeros(len(frame), dtype=bool)
        held[rng.permutation(len(frame))[: self._count(frame)]] = True
        return held

    def _count(self, frame):
        return held_count(len(frame), self.fraction)

    def _time_mask(self, frame, validation):
        times = frame[self.time]
        if self.cutoff is not None and not validation:
            cutoff = cutoff_of(self.cutoff, times, self.time_format)
            return (times >= cutoff).to_numpy()
        if not len(frame):
            return np.zeros(0, dtype=bool)
        ordered = np.sort(times.to_numpy(), kind="stable")
        first_held = ordered[len(ordered) - self._count(frame)]
        return (times >= first_held).to_numpy()

    def _column_mask(self, frame, validation):
        if self.column not in frame.columns:
            raise KeyError(
                f"data.split_column is '{self.column}', which is not a column "
                f"of the table. Available columns: {list(frame.columns)}"
            )
        raw = frame[self.column]
        values = raw.astype(str).str.strip().str.lower()
        bad = raw[raw.isna() | ~values.isin(COLUMN_VALUES)]
        if len(bad):
            raise ValueError(
                f"Column '{self.column}' (data.split_column) holds "
                f"{len(bad)} values other than {list(COLUMN_VALUES)}, e.g. "
                f'{bad.iloc[:3].tolist()}. Fix: mark every row "train", '
                '"validation" or "test".'
            )
        held = (values == ("validation" if validation else "test")).to_numpy()
        if validation and not held.any():
            # No row marked "validation": the carve is drawn at random.
            return self._random_mask(frame, validation)
        return held


def cutoff_of(cutoff: Any, times: pd.Series, time_format: str = "") -> Any:
    """`data.split_cutoff` in the type of the time column it cuts.

    Args:
        cutoff: str or number, as the config gives it.
        times: the (parsed) time column.
        time_format: str. `data.time_format`: a cutoff in the column's own
            layout ("02/03/2000" under "%d/%m/%Y") is read with it; ISO 8601
            is read whatever the format.

    Returns:
        A `pd.Timestamp` for a datetime column (in its time zone), a float
        for a column of numbers.

    Raises:
        ValueError: naming the cutoff and the fix when it does not parse,
            or is a number for a column of times (pandas would read it as
            nanoseconds since 1970).
    """
    if pd.api.types.is_datetime64_any_dtype(times):
        example = times.dropna().iloc[:1].astype(str).tolist()
        if not isinstance(cutoff, str):
            raise ValueError(
                f"data.split_cutoff = {cutoff!r} is a number, and column "
                f"'{times.name}' holds times (e.g. {example}). Fix: write the "
                'first test time as text, e.g. "2024-03-01" or '
                '"2024-03-01T12:00:00".'
            )
        stamp = None
        if time_format:
            stamp = pd.to_datetime(cutoff, format=time_format, errors="coerce")
        try:
            stamp = stamp if pd.notna(stamp) else pd.Timestamp(cutoff)
        except (ValueError, TypeError):
            raise ValueError(
                f"data.split_cutoff = {cutoff!r} is not a time, and column "
                f"'{times.name}' holds times (e.g. {example}). Fix: write it "
                'in ISO 8601, e.g. "2024-03-01" or "2024-03-01T12:00:00"'
                + (
                    f", or as data.time_format {time_format!r} reads"
                    if time_format
                    else ""
                )
                + "."
            ) from None
        if times.dt.tz is not None and stamp.tz is None:
            return stamp.tz_localize(times.dt.tz)
        if times.dt.tz is None and stamp.tz is not None:
            return stamp.tz_convert("UTC").tz_localize(None)
        return stamp
    try:
        return float(cutoff)
    except (ValueError, TypeError):
        raise ValueError(
            f"data.split_cutoff = {cutoff!r} is not a number, and column "
            f"'{times.name}' holds numbers (e.g. {times.iloc[:2].tolist()}). "
            "Fix: give the first test time as a number in the same unit."
        ) from None


def split_record(
    rule: SplitRule, train: pd.DataFrame, held: pd.DataFrame
) -> dict[str, Any]:
    """What metrics.json says of a split: the rule and the rows per side.

    Args:
        rule: `SplitRule`. The rule that made the parts.
        train: DataFrame. The rows trained on.
        held: DataFrame. The rows evaluated (test, or validation when
            tuning).

    Returns:
        dict. `rule.describe()` with `train_rows` and `held_out_rows`.
    """
    return {
        **rule.describe(),
        "train_rows": int(len(train)),
        "held_out_rows": int(len(held)),
    }


def split_rule(data: dict, *, texts: bool = False) -> SplitRule:
    """The `SplitRule` of a config's `[data]` section.

    Keys written before the split options existed take their defaults, so
    older bundles split as they were trained; `"auto"` is
    `resolved_split`'s (`"user_time"` for a table with ids), and so is
    the validation carve of `"none"`. (Texts carve `"none"` by their ids'
    suffixes: `recsys.kinds.text.split_rows`.)

    Args:
        data: dict. The `[data]` section.
        texts: bool. A text table: no user or time column.

    Returns:
        A `SplitRule`.
    """
    where = {
        "path": data.get("path", ""),
        "user": data.get("user", "user"),
        "time": data.get("time", "time"),
    }
    method = resolved_split(data.get("split", "user_time"), **where)
    carve = resolved_split("auto", **where) if method == "none" else ""
    columns = (
        {}
        if texts
        else {"user": data["user"], "item": data["item"], "time": data["time"]}
    )
    return SplitRule(
        method=method,
        fraction=data.get("test_fraction", 0.2),
        cutoff=data.get("split_cutoff") or None,
        seed=data.get("split_seed", 0),
        column=data.get("split_column", ""),
        time_format=data.get("time_format", ""),
        carve_method=carve,
        **columns,
    )


def suffix_split(
    frame: pd.DataFrame, suffixes: list[str], *, id_column: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits off the rows whose id ends in one of `suffixes`.

    The id is the `id_column` value as text, or the index as text without
    an `id_column` (the text kind numbers its rows first, so that is the
    row number: `recsys.kinds.text.split_rows`). Both parts keep `frame`'s
    row order and index.

    Args:
        frame: pandas DataFrame.
        suffixes: list of str. Endings of the ids held out.
        id_column: str. The id column; `""` reads the index. Defaults to
            `""`.

    Returns:
        `(kept, held)` DataFrames: the rows whose id does not end in a
        suffix, and those whose id does.

    Example:

    ```python
    frame = pd.DataFrame({"id": [10, 11, 15, 16]})
    kept, held = suffix_split(frame, ["0", "5"], id_column="id")
    held["id"].tolist()  # [10, 15]
    ```
    """
    if id_column:
        ids = _id_digits(frame[id_column], id_column)
    else:
        ids = pd.Series(frame.index.astype(str), index=frame.index)
    held = ids.str.endswith(tuple(suffixes)).to_numpy()
    return frame[~held], frame[held]


# Integers above this lose digits as float64.
EXACT_FLOAT_INTEGERS = 2**53


def _id_digits(ids: pd.Series, column: str) -> pd.Series:
    """Ids as the text whose last characters `suffix_split` reads.

    Whole numbers stored as floats (a CSV id column with a blank cell is
    read as float64: `6971079756.0`, `8.15973752785793e+17`) are written as
    the integers they are; beyond 2**53 a float has lost the last digits,
    which the split reads, so it refuses them. Missing ids are refused
    whatever the dtype (`NaN`, `None`, `pd.NA` of `Int64` or `string`):
    written as text, `<NA>` ends in no digit, so the row would train.
    """
    missing = ids.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"Id column '{column}' has {int(missing.sum())} missing values "
            f"(rows {ids.index[missing][:3].tolist()}): a row without an id "
            "has no suffix to split by. Fix: drop those rows, or set "
            'data.split = "random".'
        )
    if not pd.api.types.is_float_dtype(ids):
        return ids.astype(str)
    values = ids.to_numpy()
    inexact = (values != np.floor(values)) | (
        np.abs(values) >= EXACT_FLOAT_INTEGERS
    )
    if inexact.any():
        raise ValueError(
            f"Id column '{column}' was read as floating-point numbers (e.g. "
            f"{values[inexact][:1].tolist()}): their last digits, which the "
            "split reads, are lost or not digits. Fix: store the ids as text "
            "(quoted in the CSV, or a string column), or set data.split = "
            '"random".'
        )
    return pd.Series(values.astype(np.int64).astype(str), index=ids.index)


def evaluation_split(
    frame: pd.DataFrame,
    holdout: Splitter,
    carve: Splitter,
    *,
    validation: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(train, test)`: the test set held out, or the validation carve.

    PROTOCOL.md's split for every kind: `holdout` separates the test rows;
    with `validation`, the training rows are split again by `carve` and its
    held rows are reported instead, so tuning never sees the test rows.

    Args:
        frame: pandas DataFrame. The whole table.
        holdout: callable `frame -> (kept, held)` that holds out the test
            rows (`temporal_split`, `suffix_split`).
        carve: callable `frame -> (kept, held)` that carves the validation
            rows out of the training rows.
        validation: bool. Return the carve: `(train's kept, train's held)`.
            Defaults to `False`.

    Returns:
        `(train, test)` DataFrames.

    Example:

    ```python
    by_suffix = functools.partial(suffix_split, id_column="id")
    train, test = evaluation_split(
        frame,
        functools.partial(by_suffix, suffixes=["0", "5"]),
        functools.partial(by_suffix, suffixes=["1", "6"]),
        validation=True,
    )
    ```
    """
    train, test = holdout(frame)
    if validation:
        train, test = carve(train)
    return train, test


def split_table(
    frame: pd.DataFrame, rule: SplitRule, *, validation: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(train, test)` by `rule`, refusing a split with an empty side.

    Args:
        frame: pandas DataFrame. The whole table.
        rule: `SplitRule`. How rows are held out.
        validation: bool. Split the training part again and return
            `(its training part, its validation part)`: what
            `evaluate.split = "validation"` reports. Defaults to `False`.

    Returns:
        `(train, test)` DataFrames.

    Raises:
        ValueError: if either part is empty, naming the rule and the fix
            (`"none"` has no test part: `test` is empty).
    """
    train, test = evaluation_split(
        frame, rule.hold_out, rule.carve, validation=validation
    )
    carves = (rule.method != "none") + validation
    if carves:
        check_split(train, test, frame, rule=rule.carving, carves=carves)
    return train, test


def holds_out_nothing(config: dict) -> bool:
    """Whether a run evaluates no rows: `data.split = "none"` reported on
    `evaluate.split = "test"` (its `"validation"` is a carve of every row).

    Args:
        config: dict. A validated config of any kind.

    Returns:
        bool.
    """
    return (
        config.get("data", {}).get("split") == "none"
        and config["evaluate"]["split"] == "test"
    )


def protocol_split(
    interactions: pd.DataFrame,
    *,
    user: str,
    item: str,
    time: str,
    validation: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(train, test)` of PROTOCOL.md (`split_table` of the per-user rule).

    Args:
        interactions: pandas DataFrame with the three columns below.
        user: str. User id column.
        item: str. Item id column.
        time: str. Timestamp column.
        validation: bool. Return the validation carve of the training
            part instead. Defaults to `False`.

    Returns:
        `(train, test)` DataFrames, as `temporal_split` returns them.
    """
    rule = SplitRule(user=user, item=item, time=time)
    return split_table(interactions, rule, validation=validation)


def row_count(rows: int) -> str:
    """`"1 row"`, `"1,234 rows"`: a count of rows for messages."""
    return f"{rows:,} row" + ("" if rows == 1 else "s")


def check_split(
    train: pd.DataFrame,
    test: pd.DataFrame,
    frame: pd.DataFrame,
    *,
    rule: SplitRule,
    carves: int = 1,
) -> None:
    """Raises a `ValueError` naming the fix if `train` or `test` is empty.

    Args:
        train: DataFrame. The training part.
        test: DataFrame. The held-out part.
        frame: DataFrame. The table before the split.
        rule: `SplitRule`. The rule that made the parts.
        carves: int. Splits applied to reach these parts (2 for a
            validation carve of the training part). Defaults to `1`.
    """
    if len(train) and len(test):
        return
    empty = "training" if not len(train) else "held-out"
    twice = " (twice with a validation carve)" if carves > 1 else ""
    rows = row_count(len(frame))
    start = f"The {rule.method} split of {rows} leaves no {empty} rows"
    if rule.method == "user_time":
        raise ValueError(
            f"The per-user temporal split of {rows} leaves no "
            f"{empty} rows: each user's latest share "
            f"(data.test_fraction = {rule.fraction}), at least one row, is "
            f"held out{twice}, so a user needs at least {carves + 1} rows for "
            "any to be trained on. Fix: use a table with more interactions "
            'per user, or a global split (data.split = "time" or "random").'
        )
    if rule.method == "column":
        wanted = "test" if carves == 1 or empty == "training" else "validation"
        raise ValueError(
            f"{start}: no row of column '{rule.column}' (data.split_column) "
            f'is marked "{wanted}" among the rows it splits. Fix: mark some '
            f'rows "{wanted}" and keep some "train".'
        )
    if rule.method == "time" and rule.cutoff is not None and carves == 1:
        times = frame[rule.time]
        raise ValueError(
            f"{start}: data.split_cutoff = {rule.cutoff!r} is outside the "
            f"times of column '{rule.time}' ({times.min()} to {times.max()}). "
            "Fix: choose a cutoff inside that range."
        )
    if rule.method == "time" and len(frame):
        counts = frame[rule.time].value_counts()
        if counts.iloc[0] == len(frame):
            why = "every row has the same time"
        else:
            why = (
                f"one time, {counts.index[0]}, holds {counts.iloc[0]:,} of "
                "them, and rows of one time are never split"
            )
        raise ValueError(
            f"{start}{twice}: it holds out the latest data.test_fraction = "
            f"{rule.fraction} of the rows by '{rule.time}', but {why}. Fix: "
            'set data.split = "random", or name a finer time column.'
        )
    raise ValueError(
        f"{start}{twice}: the table is too small to hold out "
        f"data.test_fraction = {rule.fraction} of it. Fix: use a larger "
        "table or another data.test_fraction."
    )
