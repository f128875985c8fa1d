"""Stable, vectorized hashing of categorical values.

Python's built-in `hash()` is salted per process, so it cannot map a value to
the same embedding row in training and serving. Here every value is first
turned into its canonical string (integers and integral floats print without a
decimal point, so `42`, `42.0` and `"42"` are one value), then hashed with
SipHash-2-4 under the fixed key `"0123456789123456"` over its UTF-8 bytes, as
`pandas.util.hash_array` does. The result is identical across processes,
machines and runs.
"""

import numpy as np
import pandas as pd

HASH_KEY = "0123456789123456"


def canonical_strings(values):
    """Returns the canonical string form of `values`, with nulls as `None`.

    Args:
        values: array-like. A pandas Series, numpy array or list.

    Returns:
        A numpy object array of `str` (or `None` for nulls).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_float_dtype(series.dtype):
        finite = series.dropna()
        if len(finite) and bool((finite == np.floor(finite)).all()):
            series = series.astype("Int64")
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("object")
    if series.dtype == object:
        # Mixed Python values (1, "x", 2.0): element by element, so that each
        # is spelled as `canonical_string` spells it alone. Typed columns
        # take the vectorized path below.
        return np.array([canonical_string(v) for v in series], dtype=object)
    return series.astype("string").to_numpy(dtype=object, na_value=None)


def canonical_string(value):
    """The canonical string of one value (see `canonical_strings`).

    The scalar fast path for serving: no pandas objects for a single id.
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def stable_hash(values, num_buckets):
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
