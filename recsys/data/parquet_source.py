"""A directory of Parquet shards, checked up front and read in row groups.

A row group is the unit every streaming pass reads: its size is fixed by
the writer (`recsys synth` writes 65,536 rows), so memory stays flat however
many shards there are. Every shard's schema is checked before any pass, so a
bad shard fails at once with its file and column named, not an hour into
training.
"""

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

# What each role accepts, and how to say it in an error.
_KINDS = {
    "id": (
        lambda t: (
            pa.types.is_integer(t)
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
        ),
        "integers or strings",
    ),
    "time": (
        lambda t: (
            pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_timestamp(t)
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
        ),
        "numbers, timestamps or times as text (data.time_format)",
    ),
    "number": (
        lambda t: (
            pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_boolean(t)
        ),
        "numbers",
    ),
    "text": (
        lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
        "strings",
    ),
}


class ParquetSource:
    """The Parquet shards of a directory, as a list of row groups.

    Files whose names start with `.` or `_` are skipped, as
    `pyarrow.dataset` skips them (`_synthetic.json` lives there).

    Args:
        path: str. A directory of `.parquet` files (searched recursively) or
            one `.parquet` file.
        columns: dict. Column name -> role: `"id"` (integers or strings),
            `"time"` (numbers, timestamps or text), `"number"` or `"text"`.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if it holds no Parquet file or no rows, or if a shard
            lacks a column, holds it with a wrong type, or types a column
            differently from the first shard (naming the file and column).

    Example:

    ```python
    source = ParquetSource("data/synth", {"user_id": "id", "timestamp": "time"})
    for group in range(source.num_groups):
        table = source.read(group, ["user_id"])
    ```
    """

    def __init__(self, path, columns):
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"data.path not found: {path!r}. Fix: point data.path at a "
                "directory of Parquet files (e.g. the output of `recsys "
                "synth`)."
            )
        self.path = path
        self.columns = dict(columns)
        try:
            self.files = sorted(ds.dataset(path, format="parquet").files)
        except (OSError, pa.ArrowInvalid) as error:
            # pyarrow names the unreadable file in its message.
            raise ValueError(
                f"Cannot read the Parquet files in {path!r}: {error}"
            ) from None
        if not self.files:
            raise ValueError(
                f"No Parquet files in {path!r}. Fix: write shards there "
                "(`recsys synth DIR ...` writes part-*.parquet) or fix "
                "data.path."
            )
        self.schema = None
        groups = []
        for file_index, file in enumerate(self.files):
            metadata = self._check(file)
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                if rows:
                    groups.append((file_index, group, rows))
        if not groups:
            raise ValueError(
                f"The Parquet files in {path!r} hold no rows. Fix: write "
                "interactions into them or fix data.path."
            )
        self.groups = groups
        self._open = (None, None)

    def _check(self, file):
        try:
            parquet = pq.ParquetFile(file)
        except (OSError, pa.ArrowInvalid) as error:
            raise ValueError(
                f"{file} is not a readable Parquet file: {error}"
            ) from None
        schema = parquet.schema_arrow
        for name, role in self.columns.items():
            accepts, wanted = _KINDS[role]
            if name not in schema.names:
                raise ValueError(
                    f"Column '{name}' is missing from {file}. Columns there: "
                    f"{schema.names}. Fix: rewrite the shard with the column "
                    "or set data.user / data.item / data.time and the "
                    "[features] tables to the columns it has."
                )
            found = schema.field(name).type
            if not accepts(found):
                raise ValueError(
                    f"Column '{name}' in {file} has type {found}; it must "
                    f"hold {wanted}. Fix: cast the column when writing the "
                    "shard."
                )
            if self.schema is not None:
                first = self.schema.field(name).type
                if found != first:
                    raise ValueError(
                        f"Column '{name}' is {found} in {file} but {first} in "
                        f"{self.files[0]}. Fix: write every shard with the "
                        "same type."
                    )
        if self.schema is None:
            self.schema = schema
        return parquet.metadata

    @property
    def num_groups(self):
        return len(self.groups)

    @property
    def num_rows(self):
        return sum(rows for _, _, rows in self.groups)

    def file_of(self, group):
        """The shard that holds row group `group` (for error messages)."""
        return self.files[self.groups[group][0]]

    def read(self, group, columns):
        """Reads row group `group` (an index into `groups`) as a Table."""
        file_index, row_group, _ = self.groups[group]
        if self._open[0] != file_index:
            self._open = (file_index, pq.ParquetFile(self.files[file_index]))
        return self._open[1].read_row_group(row_group, columns=list(columns))

    def time_range(self, column, time_format="ISO8601"):
        """`(min, max)` of a time column as floats (seconds if times).

        Reads only that column, one row group at a time: a cheap pass.
        `time_format` parses a column of text (`as_float`).
        """
        low, high = np.inf, -np.inf
        for group in range(self.num_groups):
            values = self.read(group, [column]).column(column)
            values = as_float(values, time_format, name=column)
            values = values[~np.isnan(values)]
            if values.size:
                low = min(low, float(values.min()))
                high = max(high, float(values.max()))
        return low, high


def as_float(values, time_format="ISO8601", *, name="time"):
    """A time or number column as float64 numpy (times in Unix seconds).

    Args:
        values: pyarrow Array or ChunkedArray: numbers, timestamps, or
            times as text in `time_format` (`data.time_format`).
        time_format: str. `"ISO8601"` or a `strftime` format.
        name: str. The column, for the error message.

    Returns:
        float64 numpy array; nulls are NaN.
    """
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        text = values.to_pandas()
        try:
            parsed = pd.to_datetime(text, format=time_format, utc=True)
        except (ValueError, TypeError, OverflowError):
            raise ValueError(
                f"Column '{name}' holds times as text that do not parse "
                f"with data.time_format = {time_format!r}, e.g. "
                f"{text.dropna().iloc[:2].tolist()}. Fix: set "
                "data.time_format to their strftime format, or store them "
                "as ISO 8601, numbers or timestamps."
            ) from None
        # Whatever unit pandas parsed into; NaT becomes NaN.
        since_epoch = parsed - pd.Timestamp(0, tz="UTC")
        return since_epoch.dt.total_seconds().to_numpy(np.float64)
    if pa.types.is_timestamp(values.type):
        unit = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[values.type.unit]
        values = values.cast(pa.int64())
        return values.to_numpy(zero_copy_only=False).astype(np.float64) / unit
    return values.to_numpy(zero_copy_only=False).astype(np.float64)
