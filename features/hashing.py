"""Stable, vectorized hashing of categorical values.

Python's built-in `hash()` is salted per process, so it cannot map a value to
the same embedding row in training and serving. Here every value is first
turned into its canonical string (integers and integral floats print without a
decimal point, so `42`, `42.0` and `"42"` are one value), then hashed with
SipHash-2-4 under the fixed key `"0123456789123456"` over its UTF-8 bytes, as
`pandas.util.hash_array` does. The result is identical across processes,
machines and runs.
"""

import math
from typing import Any

import numpy as np
import pandas as pd

HASH_KEY = "0123456789123456"


def canonical_strings(values: Any) -> np.ndarray:
    """Returns the canonical string form of `values`, with nulls as `None`.

    Args:
        values: array-like. A pandas Series, numpy array or list.

    Returns:
        A numpy object array of `str` (or `None` for nulls).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_float_dtype(series.dtype):
        return _float_strings(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("object")
    if series.dtype == object:
        # Mixed Python values (1, "x", 2.0): element by element, so that each
        # is spelled as `canonical_string` spells it alone. Typed columns
        # take the vectorized path below.
        return np.array([canonical_string(v) for v in series], dtype=object)
    return series.astype("string").to_numpy(dtype=object, na_value=None)


def canonical_string(value: Any) -> str | None:
    """The canonical string of one value (see `canonical_strings`).

    The scalar fast path for serving: no pandas objects for a single id.
    """
    # pandas' missing values too: an object column read from Parquet holds
    # `pd.NA`, which would otherwise be the category "<NA>".
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)) and value != value:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and _is_whole(float(value)):
        return str(int(value))
    return str(value)


# Whole floats below this magnitude are spelled as the integers they hold
# (2.0 -> "2", so a float column of ids matches its int spelling); larger
# ones, infinities and fractions keep their float spelling ("1e+300").
WHOLE_FLOAT_LIMIT = 2.0**63


def _is_whole(value: float) -> bool:
    return abs(value) < WHOLE_FLOAT_LIMIT and value.is_integer()


def _float_strings(series: pd.Series) -> np.ndarray:
    """`canonical_strings` of a float Series, vectorized."""
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    present = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        whole = (
            present
            & (np.abs(values) < WHOLE_FLOAT_LIMIT)
            & (values == np.floor(values))
        )
    strings = series.astype("string").to_numpy(dtype=object, na_value=None)
    if whole.any():
        strings[whole] = values[whole].astype(np.int64).astype(str)
    return strings


def stable_hash(values: Any, num_buckets: int) -> np.ndarray:
    """Hashes values into `[0, num_buckets)`, stably across processes.

    Args:
        values: array-like of canonical strings (see `canonical_strings`);
            `None` entries hash like the empty string.
        num_buckets: int. Number of buckets.

    Returns:
        An int64 numpy array of bucket indices.

    Example:

    ```python
    stable_hash(canonical_strings([1, 2, 1]), 1000)
    ```
    """
    if num_buckets < 1:
        raise ValueError(
            f"`num_buckets` must be a positive integer. "
            f"Received: num_buckets={num_buckets}"
        )
    array = np.asarray(values, dtype=object)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    array = np.where(pd.isna(array), "", array)
    hashed = pd.util.hash_array(array, hash_key=HASH_KEY, categorize=True)
    return (hashed % np.uint64(num_buckets)).astype(np.int64)


# -- multi-hash ids -----------------------------------------------------------
#
# A multi-hash feature keeps one id per value (a 31-bit SipHash fingerprint,
# so that no two values are merged before the table) and the embedding layer
# maps that id to `num_hashes` rows of a shared table. The layer computes the
# rows with `keras.ops` on int32; this numpy version is the reference the
# layer is tested against, and what the collision report uses. Each hash XORs
# the id with its own salt and mixes it with Thomas Mueller's integer hash
# (`x ^= x >>> 16; x *= 0x45d9f3b`, twice, then `x ^= x >>> 16`), using
# wrapping int32 products (XLA, TensorFlow and numpy all wrap) and a masked
# arithmetic shift for the logical one. Affine hashes modulo primes were
# tried first: on consecutive ids their collision rates strayed from a
# random function's by up to 0.4; this mixer's stay within 0.01.

FINGERPRINT_BUCKETS = 2**31 - 2
MIX_MULTIPLIER = 0x45D9F3B


def multi_hash_salts(num_hashes: int, seed: int = 0) -> np.ndarray:
    """The salt of each hash function: an int32 array `(num_hashes,)`."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, 2**31 - 1, num_hashes).astype(np.int32)


def _shift_right(x: np.ndarray, bits: int) -> np.ndarray:
    """Logical right shift of int32 values (`>>` is arithmetic)."""
    return (x >> bits) & np.int32((1 << (32 - bits)) - 1)


def multi_hash(
    ids: Any, num_buckets: int, num_hashes: int, seed: int = 0
) -> np.ndarray:
    """Maps ids to `num_hashes` rows each of a table of `num_buckets + 1`.

    Args:
        ids: int array-like of ids in `[0, 2**31)`; `0` is padding.
        num_buckets: int. Shared rows (row `0` is kept for padding).
        num_hashes: int. Rows per id.
        seed: int. Picks the hash functions.

    Returns:
        int64 array shaped `ids.shape + (num_hashes,)`, rows in
        `[1, num_buckets]`, and `0` where the id is `0`.

    Example:

    ```python
    multi_hash([0, 7, 8], num_buckets=100, num_hashes=2)   # shape (3, 2)
    ```
    """
    ids = np.asarray(ids, dtype=np.int32)[..., None]
    x = ids ^ multi_hash_salts(num_hashes, seed)
    for _ in range(2):
        x = (x ^ _shift_right(x, 16)) * np.int32(MIX_MULTIPLIER)
    x = (x ^ _shift_right(x, 16)) & np.int32(0x7FFFFFFF)
    rows = 1 + x.astype(np.int64) % num_buckets
    return np.where(ids == 0, 0, rows)


def colliding_share(rows: np.ndarray, unordered: bool = False) -> float:
    """Share of values whose row (or tuple of rows) another value shares.

    Args:
        rows: int array `(values,)` or `(values, num_hashes)`, one row per
            distinct value.
        unordered: bool. Compare the tuples as sets (a summed multi-hash
            embedding cannot tell `(3, 5)` from `(5, 3)`).

    Returns:
        float in `[0, 1]`.
    """
    rows = np.asarray(rows)
    if rows.size == 0:
        return 0.0
    rows = rows.reshape(len(rows), -1)
    if unordered:
        rows = np.sort(rows, axis=1)
    _, inverse, counts = np.unique(
        rows, axis=0, return_inverse=True, return_counts=True
    )
    return float((counts[inverse.reshape(-1)] > 1).mean())


def recommended_buckets(
    distinct_values: int,
    target_share: float = 0.01,
    num_hashes: int = 1,
    unordered: bool = False,
) -> int:
    """Buckets that keep the colliding share of values near `target_share`.

    With `n` values hashed uniformly into `m ** k` possible row tuples, a
    value shares its tuple with another with probability
    `1 - exp(-(n - 1) / m ** k)`; this solves that for `m`. Unordered tuples
    (a summed multi-hash embedding) count `m ** k / k!` tuples.

    Args:
        distinct_values: int. Distinct values of the column.
        target_share: float in `(0, 1)`. Acceptable colliding share.
            Defaults to `0.01`.
        num_hashes: int. Rows per value. Defaults to `1`.
        unordered: bool. Tuples compared as sets. Defaults to `False`.

    Returns:
        int. The smallest bucket count meeting the target.

    Example:

    ```python
    recommended_buckets(1_000_000, 0.01)                 # 99,499,063
    recommended_buckets(1_000_000, 0.01, num_hashes=2)   # 9,975
    ```
    """
    if not 0 < target_share < 1:
        raise ValueError(
            "`target_share` must be in (0, 1). "
            f"Received: target_share={target_share}"
        )
    if not isinstance(num_hashes, int) or num_hashes < 1:
        raise ValueError(
            "`num_hashes` must be a positive integer. "
            f"Received: num_hashes={num_hashes}"
        )
    tuples = max(distinct_values - 1, 0) / -np.log1p(-target_share)
    if unordered:
        tuples *= math.factorial(num_hashes)
    return max(1, math.ceil(tuples ** (1 / num_hashes)))
