"""Model inputs for two-tower retrieval, derived from an interactions frame.

Three views of the same data feed the model:
- the *catalog*: one row per item (its first row's attributes), sorted by
  item id, which is also the candidate order of the evaluation protocol;
- *training inputs*: one row per interaction, with the user's query features,
  the item's candidate features gathered from the catalog, the user's
  previous items (`"history"`) and the item's sampling probability;
- *user states*: per known user, the query features of their latest row and
  their latest items, which is what a recommendation is made from.
"""

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from recsys.config.common import NO_TIME
from recsys.data.history import last_items
from recsys.data.history import previous_items
from recsys.data.history import profile_items
from recsys.data.history import profiles
from recsys.data.sources import closest_columns
from recsys.data.split import EXACT_FLOAT_INTEGERS
from recsys.features.hashing import canonical_string
from recsys.names import HISTORY
from recsys.names import SAMPLING_PROBABILITY

logger = logging.getLogger(__name__)


def check_columns(frame, columns, what="interactions"):
    """Raises a `KeyError` naming every missing column."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(
            f"Columns {missing} are missing from the {what}. Available "
            f"columns: {list(frame.columns)}."
            f"{closest_columns(missing, frame.columns)} Fix: rename the "
            "columns or set data.user / data.item / data.time and the "
            "[features] tables."
        )


def positive_rows(frame: pd.DataFrame, data: dict) -> pd.DataFrame:
    """The rows of `frame` that are interactions to learn from.

    With `data.positive_column` set, a row is kept when that column is at
    least `data.positive_min` (a rating of 4 or more) or is one of
    `data.positive_values` (an event type of `"purchase"`); the others
    (and rows where it is empty) are dropped before anything else.

    Args:
        frame: DataFrame. The whole table.
        data: dict. The config's `[data]` section.

    Returns:
        DataFrame: `frame` itself without `positive_column`, else its kept
        rows.

    Raises:
        KeyError: for a column the table lacks.
        ValueError: for `positive_min` on a column of text, or when no row
            is kept.
    """
    column = data.get("positive_column", "")
    if not column:
        return frame
    if column not in frame.columns:
        raise KeyError(
            f"data.positive_column = '{column}' is not a column of the data. "
            f"Its columns: {list(frame.columns)}. Fix: set "
            "data.positive_column to the column of ratings or event types, "
            "or leave it out to learn from every row."
        )
    values = frame[column]
    if isinstance(values.dtype, pd.CategoricalDtype) and (
        pd.api.types.is_numeric_dtype(values.cat.categories)
    ):
        # Ratings read as a category are still numbers to compare (as
        # floats: an empty cell has no int).
        values = values.astype(np.float64)
    if data.get("positive_values"):
        wanted = list(data["positive_values"])
        if pd.api.types.is_numeric_dtype(values):
            # 5 counts for a rating of 5.0 ("5" too, as TOML text).
            numbers = pd.to_numeric(pd.Series(wanted), errors="coerce")
            keep = values.isin(numbers.dropna())
        else:
            keep = values.astype(str).isin([str(v) for v in wanted])
        keep &= values.notna()
        rule = f"{column} in {wanted}"
    else:
        if not pd.api.types.is_numeric_dtype(values):
            raise ValueError(
                f"data.positive_min compares numbers, and column '{column}' "
                f"holds text, e.g. {values.dropna().unique()[:5].tolist()}. "
                "Fix: list the values that count in data.positive_values."
            )
        keep = values >= data["positive_min"]
        rule = f"{column} >= {data['positive_min']}"
    # A nullable column (`Int64`, `boolean`) compares its missing cells
    # as missing: those rows are not positive, as NaN's are not.
    keep = keep.fillna(False).to_numpy(dtype=bool)
    kept = int(keep.sum())
    if not kept:
        # The values the column holds: ["yes"] on a column of Yes / No.
        held = pd.Series(values.dropna().unique())
        shown = held.head(10).tolist()
        more = f" and {len(held) - 10:,} more" if len(held) > 10 else ""
        raise ValueError(
            f"No row is positive ({rule}) among the {len(frame):,} rows; "
            f"column '{column}' holds {shown}{more}. Fix: check "
            "data.positive_column and the values that count."
        )
    logger.info("Learning from %d of %d rows (%s).", kept, len(frame), rule)
    return frame[keep].reset_index(drop=True)


def check_interactions(
    frame: pd.DataFrame,
    *,
    user: str,
    item: str,
    time: str,
    time_format: str = "ISO8601",
) -> pd.DataFrame:
    """Validates the id and time columns of an interactions frame.

    Args:
        frame: DataFrame. The interactions.
        user, item, time: str. Its id and time columns.
        time_format: str. How a time column of text is parsed
            (`data.time_format`): `"ISO8601"` (the default: `2024-03-01`,
            `2024-03-01T12:00:00`, with or without a UTC offset) or a
            `strftime` format such as `"%d/%m/%Y %H:%M"`.

    Returns:
        DataFrame. `frame` itself when its time column holds numbers or
        datetimes; otherwise a copy whose time column is parsed into
        datetimes (`frame` is left as it was).

    Raises:
        KeyError: for a missing column.
        ValueError: for an empty table, null ids or times, or a time column
            that is neither numbers, datetimes nor text in `time_format`;
            the message names the column, a bad value and the fix.
    """
    if time not in frame.columns and user in frame and item in frame:
        raise KeyError(
            f"The time column '{time}' (data.time) is missing from the "
            f"interactions. Available columns: {list(frame.columns)}. Fix: "
            'set data.time to the column of times, or data.time = "" for a '
            "table without times (its rows then split at random)."
        )
    check_columns(frame, [user, item, time])
    if len(frame) == 0:
        raise ValueError(
            "The interactions table (data.source) is empty: 0 rows, a "
            "header at most. Fix: point data.source at a table of (user, "
            "item) rows."
        )
    for column in (user, item, time):
        nulls = int(frame[column].isna().sum())
        if nulls:
            raise ValueError(
                f"Column '{column}' has {nulls} null values; every "
                "interaction needs a user, an item and a time. Fix: drop or "
                "fill those rows, or set data.drop_missing = true."
            )
    for column in (user, item):
        _check_one_type(frame[column])
    frame = _whole_number_ids(frame, [user, item])
    return parse_times(frame, time, time_format)


def _whole_number_ids(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """`frame` with its float id columns of whole numbers as integers.

    A Parquet or CSV id column with an empty cell is read as float64; once
    those rows are dropped its ids are whole numbers, and as floats they
    came back from `recommend` as text ("5"), which joins to the table's
    floats no more than to its integers. A column with a few other values
    (3.5, 1e20) stays floats, its ids text ("3", "3.5"): a warning names
    one, most likely a typo.

    Raises:
        ValueError: for an infinite float, which is no id.
    """
    whole = {}
    for column in columns:
        values = frame[column]
        if not pd.api.types.is_float_dtype(values):
            continue
        numbers = values.to_numpy(np.float64)
        infinite = np.isinf(numbers)
        if infinite.any():
            row = int(np.argmax(infinite))
            raise ValueError(
                f"Column '{column}' holds {numbers[row]} (row "
                f"{values.index[row]}), which is no id. Fix: correct that "
                "cell, or drop its row."
            )
        exact = (numbers == np.floor(numbers)) & (
            np.abs(numbers) < EXACT_FLOAT_INTEGERS
        )
        if exact.all():
            whole[column] = numbers.astype(np.int64)
        elif exact.any():
            row = int(np.argmin(exact))
            odd = int((~exact).sum())
            logger.warning(
                "Column '%s' holds whole numbers but for %s of its %s "
                "values, e.g. %r (row %s): its ids are read as text ('%d' "
                "and '%s' are ids), not as the integers they would be "
                "without them. Fix: correct those cells, or drop their rows.",
                column,
                f"{odd:,}",
                f"{len(numbers):,}",
                float(numbers[row]),
                values.index[row],
                int(numbers[np.argmax(exact)]),
                canonical_string(numbers[row]),
            )
    return frame.assign(**whole) if whole else frame


def _check_one_type(values: pd.Series) -> None:
    """Raises `ValueError` for ids of numbers and text in one column (a
    DataFrame's object column): they cannot be ordered into a catalog."""
    if values.dtype != object or pd.api.types.infer_dtype(
        values, skipna=True
    ) not in ("mixed", "mixed-integer"):
        return
    is_text = values.map(lambda value: isinstance(value, str))
    if is_text.all() or not is_text.any():
        return  # no text among them (booleans, bytes): as before
    raise ValueError(
        f"Column '{values.name}' mixes text and other ids, e.g. "
        f"{values[is_text].iloc[0]!r} and {values[~is_text].iloc[0]!r}. Fix: "
        f"one type for the column: frame['{values.name}'] = "
        f"frame['{values.name}'].astype(str) (42 and '42' are then one id)."
    )


def with_time_column(frame: pd.DataFrame, data: dict) -> pd.DataFrame:
    """`frame` with the one time of a table without times.

    A two-tower config's `data.time = ""` becomes `NO_TIME`; the table
    gets that column, 0 on every row (all rows concurrent), when it is read.

    Args:
        frame: DataFrame. The interactions.
        data: dict. The config's `[data]` section.

    Returns:
        DataFrame. `frame` itself unless the column was added.
    """
    if data.get("time") != NO_TIME or NO_TIME in frame.columns:
        return frame
    return frame.assign(**{NO_TIME: 0})


# Layouts of dates as text besides ISO 8601, tried in order; the first that
# reads every sampled value becomes `data.time_format`. Month first before
# day first: a table whose days never pass 12 cannot tell them apart.
DATE_FORMATS = (
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d.%m.%y",
    "%B %d, %Y",  # November 16, 2018
    "%b %d, %Y",  # Nov 16, 2018
    "%d %B %Y",  # 16 November 2018
    "%d %b %Y",  # 16 Nov 2018
)
TIME_FORMATS = tuple(
    date + clock
    for date in DATE_FORMATS
    for clock in ("", " %H:%M", " %H:%M:%S")
)


# The fewest digits a date written as digits alone has (`20240131`).
DATE_DIGITS = 8


# The share of a column's values a layout may leave unread and still be
# the column's (`few_unparsed_times`): one impossible date (31/02) among
# 1,846, or 2% of them, made a column named `date` no time at all (a
# random split), and training's fix was a format the times already had.
UNPARSED_SHARE = 0.1


def guess_time_format(series: pd.Series) -> str | None:
    """How a column holds times: `"ISO8601"` (or datetimes), a strftime
    layout of `TIME_FORMATS` for dates as other text, or None.

    A layout that reads every value comes first; else one that reads all
    but `UNPARSED_SHARE` of them (training then names those values)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return "ISO8601"
    if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
        return None
    present = series.dropna()
    if not len(present):
        return None
    # Spread over the column: a table sorted by its dates put its 5% of
    # "0000-00-00" first, and a sample of its first 50 read none.
    spread = np.unique(np.linspace(0, len(present) - 1, 50).astype(int))
    sample = present.iloc[spread].astype(str)
    short = rf"\d{{1,{DATE_DIGITS - 1}}}"
    if sample.str.strip().str.fullmatch(short).any():
        # Digits alone, shorter than `20240131`: pandas reads "0001" (a
        # zero-padded household id of Ecdat's Cracker) or "2024" as a year.
        return None
    # In UTC: times whose offsets differ (`+01:00` in winter, `+02:00` in
    # summer) are one column of times, as training reads them.
    iso = pd.to_datetime(sample, errors="coerce", format="ISO8601", utc=True)
    if iso.notna().all():
        return "ISO8601"
    # Distinct values, so a later day past the 12th can rule a layout out.
    values = series.dropna().astype(str).drop_duplicates().head(2000)
    unread = {}
    for layout in ("ISO8601", *TIME_FORMATS):
        read = pd.to_datetime(sample, errors="coerce", format=layout, utc=True)
        if read.isna().mean() > 2 * UNPARSED_SHARE:
            continue
        bad = pd.to_datetime(
            values, errors="coerce", format=layout, utc=True
        ).isna()
        if not bad.any():
            return layout
        unread[layout] = bad.to_numpy()
    if not unread:
        return None
    # Each value weighed by its rows: one bad date of 1,846 rows is one of
    # three distinct values in a table of three days.
    rows = series.astype(str).value_counts().reindex(values).to_numpy()
    shares = {
        layout: rows[bad].sum() / rows.sum() for layout, bad in unread.items()
    }
    tolerated = [
        layout for layout in unread if shares[layout] <= UNPARSED_SHARE
    ]
    return min(tolerated, key=shares.__getitem__) if tolerated else None


def parse_times(
    frame: pd.DataFrame, time: str, time_format: str = "ISO8601"
) -> pd.DataFrame:
    """`frame` with its time column as numbers or datetimes.

    Args:
        frame: DataFrame. Holds the column `time`, without nulls.
        time: str. The time column.
        time_format: str. Format of a text column (`pandas.to_datetime`'s
            `format`): `"ISO8601"` or a `strftime` format.

    Returns:
        DataFrame. `frame` itself when the column already holds numbers or
        datetimes, else a copy with the column parsed.

    Raises:
        ValueError: naming the column and a value that does not parse.

    Example:

    ```python
    frame = pd.DataFrame({"t": ["2024-03-01", "2024-03-02T12:00:00"]})
    parse_times(frame, "t")["t"].dt.day.tolist()  # [1, 2]
    ```
    """
    column, types = frame[time], pd.api.types
    if types.is_numeric_dtype(column) or types.is_datetime64_any_dtype(column):
        return frame
    if not (types.is_string_dtype(column) or types.is_object_dtype(column)):
        raise ValueError(
            f"Column '{time}' must hold numbers or datetimes to order "
            "interactions by, or times as text. Received dtype "
            f"{column.dtype}, e.g. {column.iloc[:3].tolist()}"
        )
    try:
        parsed = _to_datetime(column, time_format)
    except (ValueError, TypeError, OverflowError):
        bad = _unparsed(column, time_format)
        few = _few(bad, column)
        if few:
            # The format is right: a date that does not exist (31/02).
            raise ValueError(
                f"Column '{time}' holds times in the format {time_format!r} "
                f"but for {few}. Fix: correct or drop those rows."
            ) from None
        # The layout that reads them, where one of `TIME_FORMATS` does (a
        # fixed example, "%d/%m/%Y %H:%M", read no "24/12/2010").
        found = guess_time_format(column)
        example = (
            f'data.time_format = "{found}", which reads them'
            if found and found != time_format
            else 'e.g. data.time_format = "%d/%m/%Y %H:%M" (strftime codes)'
        )
        first = (
            f"; {bad.iloc[0]!r} (row {bad.index[0]}) is not" if len(bad) else ""
        )
        raise ValueError(
            f"Column '{time}' must hold numbers or datetimes to order "
            f"interactions by, or times as text in the format "
            f"{time_format!r}{first}. Fix: "
            f"set data.time_format to the format of these times, {example}; "
            'or store them as ISO 8601 ("2024-03-01" or '
            '"2024-03-01T12:00:00") or as numbers.'
        ) from None
    return frame.assign(**{time: parsed})


def _to_datetime(column: pd.Series, time_format: str) -> pd.Series:
    try:
        return pd.to_datetime(column, format=time_format)
    except ValueError as error:
        # Times with different UTC offsets (`+01:00` in winter, `+02:00`
        # in summer) are one instant scale once converted to UTC.
        if "utc=True" not in str(error):
            raise
        return pd.to_datetime(column, format=time_format, utc=True)


def few_unparsed_times(column: pd.Series, time_format: str) -> str:
    """`"1 value: '31/02/2024' (row 9)"` where `time_format` reads all but
    at most `UNPARSED_SHARE` of `column`'s values; else `""`."""
    return _few(_unparsed(column, time_format), column)


def _unparsed(column: pd.Series, time_format: str) -> pd.Series:
    """The cells of `column` that `time_format` does not read (none where
    pandas refuses the format itself)."""
    try:
        parsed = pd.to_datetime(
            column, format=time_format, errors="coerce", utc=True
        )
    except (ValueError, TypeError, OverflowError):
        return column.iloc[:0]
    return column[parsed.isna() & column.notna()]


def _few(bad: pd.Series, column: pd.Series) -> str:
    """`bad`, three of them shown with their rows, where they are at most
    `UNPARSED_SHARE` of `column`'s values; else `""`."""
    if not len(bad) or len(bad) > UNPARSED_SHARE * column.notna().sum():
        return ""
    values = "1 value" if len(bad) == 1 else f"{len(bad):,} values"
    shown = ", ".join(
        f"{value!r} (row {row})" for row, value in bad.iloc[:3].items()
    )
    return f"{values}: {shown}"


def catalog(interactions, item):
    """One row per item, sorted by item id (the candidate order)."""
    return (
        interactions.drop_duplicates(item)
        .sort_values(item, kind="stable")
        .reset_index(drop=True)
    )


def values_per_item(frame, item, columns, *, dropna=True):
    """How many distinct values each column holds within each item.

    Above one, `catalog` keeps the item's first row and the others go
    unread (a price paid, a pet's name where the items are breeds). Text
    cells are compared as written, a list cell (a Python list, an array
    read from Parquet, a `pd.ArrowDtype` list) by its spelling.

    Args:
        frame: DataFrame of interactions.
        item: str. The item id column.
        columns: list of str. The columns to count.
        dropna: bool. Empty cells are not values; `False` counts them as
            one more value. Defaults to `True`.

    Returns:
        DataFrame indexed by item id, one count column per column.
    """

    def countable(column):
        # Numbers are counted as they are (faster than spelling them); a
        # list cannot be hashed, and an Arrow list has no kernel to count.
        nested = isinstance(column.dtype, pd.ArrowDtype) and (
            pa.types.is_nested(column.dtype.pyarrow_dtype)
        )
        if column.dtype == object or nested:
            return column.astype(str).where(column.notna())
        return column

    values = frame[list(columns)].apply(countable)
    groups = values.groupby(frame[item].to_numpy(), sort=False)
    return groups.nunique(dropna=dropna)


def item_inputs(preprocessor, items, candidate_features):
    """Candidate-tower inputs of every catalog item."""
    return {
        name: preprocessor.transform_column(name, items[name])
        for name in candidate_features
    }


def training_inputs(
    preprocessor,
    train,
    items,
    items_x,
    *,
    user,
    item,
    query_features,
    history_length,
    history="latest",
    time="",
):
    """Builds one input row per training interaction.

    Args:
        preprocessor: fitted `features.Preprocessor`.
        train: interactions, grouped by user and time-ordered (as
            `temporal_split` returns them).
        items: the catalog frame; items_x: its candidate inputs.
        user, item: id column names.
        query_features: list of query feature names.
        history_length: int. Previous items per row (0 for none).
        history: str. `"latest"`: the user's items before the row, most
            recent first; `"profile"`: the user's other items, in no order
            (`recsys.data.history.profile_items`). Defaults to `"latest"`.
        time: str. The time column: a `"latest"` history then holds only
            items of an earlier time than the row's (`previous_items`);
            `""` takes the rows before it. Defaults to `""`.

    Returns:
        dict of numpy arrays, ready for `TwoTower.fit`.
    """
    x = {
        name: preprocessor.transform_column(name, train[name])
        for name in query_features
    }
    position = pd.Index(items[item]).get_indexer(train[item])
    for name, values in items_x.items():
        x[name] = values[position]
    counts = np.bincount(position, minlength=len(items))
    x[SAMPLING_PROBABILITY] = (counts[position] / len(train)).astype(np.float32)
    if history_length:
        item_ids = preprocessor.transform_column(item, train[item])
        users = train[user].to_numpy()
        if history == "profile":
            x[HISTORY] = profile_items(users, item_ids, history_length)
        else:
            times = train[time].to_numpy() if time else None
            x[HISTORY] = previous_items(users, item_ids, history_length, times)
    return x


def user_states(
    preprocessor,
    train,
    items,
    *,
    user,
    item,
    query_features,
    history_length,
    history="latest",
):
    """Query inputs and seen items of every user in `train`.

    Args:
        history: str. `"latest"` (the user's latest items) or `"profile"`
            (their items in no order, `recsys.data.history.profiles`), as
            in `training_inputs`. Defaults to `"latest"`.

    Returns:
        dict with `"users"` (ids, first-appearance order), `"inputs"` (query
        inputs from each feature's latest value among the user's rows, the
        latest filled one, and their latest items), and
        `"seen_indptr"` / `"seen_items"`: CSR of catalog positions of the
        items each user interacted with.
    """
    by_user = train[user].to_numpy()
    last = np.r_[by_user[1:] != by_user[:-1], True]
    users = by_user[last]
    # Each feature's latest value a user's rows give: an empty cell on
    # their latest row (a country left blank once, given on 22 other
    # rows) served them as of no country.
    inputs = {
        name: preprocessor.transform_column(
            name, train[name].groupby(by_user, sort=False).ffill()[last]
        )
        for name in query_features
    }
    if history_length:
        item_ids = preprocessor.transform_column(item, train[item])
        users_of = profiles if history == "profile" else last_items
        _, inputs[HISTORY] = users_of(by_user, item_ids, history_length)
    positions = pd.Index(items[item]).get_indexer(train[item])
    counts = np.diff(np.r_[0, np.flatnonzero(last) + 1])
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    indptr, seen = distinct_per_user(indptr, positions.astype(np.int64))
    return {
        "users": users,
        "inputs": inputs,
        "seen_indptr": indptr,
        "seen_items": seen,
    }


def distinct_per_user(
    indptr: np.ndarray, items: np.ndarray, chunk: int = 1 << 24
) -> tuple[np.ndarray, np.ndarray]:
    """A CSR of items per user with each user's repeats left out.

    A user's seen list is a set (what recommendations exclude), but was
    written one entry per training row: 7.6 entries per distinct item on
    a table of repeated lab tests, each asked of the index beside `k`.

    Args:
        indptr: int array `(num_users + 1,)`. Row starts of `items`.
        items: int array. Non-negative item rows, user after user.
        chunk: int. Entries sorted at once (bounds the memory of a
            streamed run's hundreds of millions of rows).

    Returns:
        `(indptr, items)`: each user's distinct items in the order of
        their last row (a list in time order stays one, its latest item
        last), in the dtype of `items`.
    """
    width = int(items.max()) + 1 if len(items) else 1
    parts, counts = [], []
    first = 0
    while first < len(indptr) - 1:
        # Whole users up to `chunk` entries (one user may exceed it).
        last = int(np.searchsorted(indptr, indptr[first] + chunk, "right"))
        last = min(max(last - 1, first + 1), len(indptr) - 1)
        start, stop = indptr[first], indptr[last]
        sizes = np.diff(indptr[first : last + 1])
        users = np.repeat(np.arange(last - first, dtype=np.int64), sizes)
        keys = users * width + items[start:stop]
        # Each pair's last row: its first in the reversed block.
        _, from_end = np.unique(keys[::-1], return_index=True)
        kept = np.sort(len(keys) - 1 - from_end)
        parts.append(items[start:stop][kept])
        counts.append(np.bincount(users[kept], minlength=last - first))
        first = last
    counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    return (
        np.r_[0, np.cumsum(counts)].astype(np.int64),
        np.concatenate(parts) if parts else items[:0],
    )
