"""A directory of Parquet shards, checked up front and read in row groups.

A row group is the unit every streaming pass reads: its size is fixed by
the writer (`recsys synth` writes 65,536 rows), so memory stays flat however
many shards there are. Every shard's schema is checked before any pass, so a
bad shard fails at once with its file and column named, not an hour into
training.
"""

import collections
import logging
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.data.sources import check_unique_columns

logger = logging.getLogger(__name__)

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

    Only `.parquet` files are read: files and directories whose names
    start with `.` or `_` are skipped, as `pyarrow.dataset` skips them
    (`_synthetic.json` lives there), and other files (a README.txt, a
    notes.csv) are skipped with one warning naming them. A shard without
    rows is skipped unchecked: it cannot conflict with the others.

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
        self.files, skipped = _shards(path)
        shown = ", ".join(skipped[:3])
        if len(skipped) > 3:
            shown += f", ... ({len(skipped)} files)"
        if not self.files:
            held = f" (it holds {shown})" if skipped else ""
            raise ValueError(
                f"No Parquet files in {path!r}{held}. Fix: write shards "
                "there named *.parquet (`recsys synth DIR ...` writes "
                "part-*.parquet) or fix data.path."
            )
        if skipped:
            logger.warning(
                "Reading the .parquet files in %s only; skipped %s.",
                path,
                shown,
            )
        self.schema = None
        groups, self.first_rows = [], []
        for file_index, file in enumerate(self.files):
            metadata = self._check(file)
            first = 0
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                if rows:
                    groups.append((file_index, group, rows))
                    self.first_rows.append(first)
                first += rows
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
                f"Cannot read {file} as Parquet: {error}. Fix: rewrite the "
                "shard, or move it out of data.path."
            ) from None
        if parquet.metadata.num_rows == 0:
            # A shard without rows cannot conflict with the others, and
            # its columns may be typed null (`pa.table({"user_id": []})`).
            return parquet.metadata
        schema = parquet.schema_arrow
        check_unique_columns(file, schema.names)
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
                        f"{self.schema_file}. Fix: write every shard with the "
                        "same type."
                    )
        if self.schema is None:
            self.schema, self.schema_file = schema, file
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
        """Reads row group `group` (an index into `groups`) as a Table.

        Raises:
            ValueError: if the shard cannot be read (corrupt data pages
                behind an intact footer, or a file changed since it was
                checked), naming the file and its row group.
        """
        file_index, row_group, _ = self.groups[group]
        file = self.files[file_index]
        try:
            if self._open[0] != file_index:
                self._open = (file_index, pq.ParquetFile(file))
            return self._open[1].read_row_group(
                row_group, columns=list(columns)
            )
        except (OSError, pa.ArrowInvalid) as error:
            # The footer was checked up front; a data page is only read
            # here, hours into a run, and pyarrow's "Corrupt snappy
            # compressed data" names no file among hundreds of shards.
            self._open = (None, None)
            said = " ".join(str(error).split()).rstrip(".")  # one line
            raise ValueError(
                f"Cannot read row group {row_group} of {file}: {said}. Fix: "
                "rewrite the shard, or move it out of data.path."
            ) from None

    def times(self, group, values, column, time_format="ISO8601"):
        """`as_float` of the time column of row group `group`, whose errors
        name the file and row.

        Args:
            group: int. The row group `values` were read from.
            values: pyarrow Array or ChunkedArray. Its column `column`.
            column: str. The time column, for the error messages.
            time_format: str. `data.time_format`.

        Returns:
            float64 numpy array; nulls and empty text are NaN.
        """
        where = (self.file_of(group), self.first_rows[group])
        return as_float(values, time_format, name=column, where=where)

    def time_range(self, column, time_format="ISO8601"):
        """`(min, max)` of a time column as floats (seconds if times).

        Reads only that column, one row group at a time: a cheap pass.
        `time_format` parses a column of text (`as_float`).

        Raises:
            ValueError: for a time that does not parse (`as_float`), or
                rows without a time (null, empty text, NaN or infinite):
                a time split would put them in neither split.
        """
        low, high = np.inf, -np.inf
        missing = collections.Counter()
        for group in range(self.num_groups):
            values = self.read(group, [column]).column(column)
            values = self.times(group, values, column, time_format)
            finite = np.isfinite(values)
            missing[self.file_of(group)] += int(np.count_nonzero(~finite))
            if finite.any():
                low = min(low, float(values[finite].min()))
                high = max(high, float(values[finite].max()))
        for file, count in missing.items():
            if count:
                raise ValueError(
                    f"Column '{column}' in {file} has {count} null, empty, "
                    "NaN or infinite values; every interaction needs a time. "
                    "Fix: drop or fill those rows."
                )
        return low, high


def _shards(path):
    """`(shards, skipped)`: the `.parquet` files under `path`, sorted, and
    the other files there (names starting with `.` or `_` left out)."""
    if not os.path.isdir(path):
        return [path], []
    shards, skipped = [], []
    for root, folders, names in os.walk(path):
        folders[:] = [f for f in folders if not f.startswith((".", "_"))]
        for name in names:
            if not name.startswith((".", "_")):
                found = shards if name.endswith(".parquet") else skipped
                found.append(os.path.join(root, name))
    skipped = [os.path.relpath(name, path) for name in skipped]
    return sorted(shards), sorted(skipped)


def as_float(values, time_format="ISO8601", *, name="time", where=None):
    """A time or number column as float64 numpy (times in Unix seconds).

    Args:
        values: pyarrow Array or ChunkedArray: numbers, timestamps, or
            times as text in `time_format` (`data.time_format`).
        time_format: str. `"ISO8601"` or a `strftime` format.
        name: str. The column, for the error message.
        where: `(file, first_row)` of `values`, for the error message, or
            None.

    Returns:
        float64 numpy array; nulls and empty text are NaN.

    Raises:
        ValueError: naming the first time as text that does not parse, its
            file and row.
    """
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        text = values.to_pandas()
        try:
            parsed = pd.to_datetime(
                text, format=time_format, utc=True, errors="coerce"
            )
        except (ValueError, TypeError, OverflowError) as error:
            raise ValueError(
                f"data.time_format = {time_format!r} is not a time format "
                f"({error}). Fix: set it to the strftime format of column "
                f"'{name}', or to \"ISO8601\"."
            ) from None
        # Nulls and empty text are missing times (the caller counts
        # those), not a wrong format.
        written = text.notna() & (text.str.strip() != "")
        bad = np.flatnonzero(parsed.isna() & written)
        if len(bad):
            file, first = where or ("the data", 0)
            fix = (
                "set data.time_format to their strftime format, or store "
                "them as ISO 8601, numbers or timestamps"
                if len(bad) == written.sum()
                else "correct or drop those rows"
            )
            raise ValueError(
                f"Column '{name}' in {file} holds times as text that do not "
                f"parse with data.time_format = {time_format!r}: "
                f"{text.iloc[bad[0]]!r} at row {first + bad[0]} (from 0; "
                f"rows that do not parse in that row group: {len(bad)}). "
                f"Fix: {fix}."
            )
        # Whatever unit pandas parsed into; NaT becomes NaN.
        since_epoch = parsed - pd.Timestamp(0, tz="UTC")
        return since_epoch.dt.total_seconds().to_numpy(np.float64)
    if pa.types.is_timestamp(values.type):
        unit = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[values.type.unit]
        values = values.cast(pa.int64())
        return values.to_numpy(zero_copy_only=False).astype(np.float64) / unit
    return values.to_numpy(zero_copy_only=False).astype(np.float64)
