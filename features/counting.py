"""Running counts and moments: what `Preprocessor.partial_fit` accumulates.

Both merge chunk by chunk in memory bounded by the distinct values (counts)
or constant (moments), never by the rows, so a table that does not fit in
memory can be fitted chunk by chunk (`recsys.features.streaming`).
"""

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.features.hashing import canonical_strings


class ValueCounter:
    """Counts the values of one column over many chunks.

    Each chunk is reduced to its distinct values with Arrow's
    `value_counts`; the partial counts are merged once the new ones hold
    more than `merge_every` entries and more than the merged counts, so
    memory stays proportional to the distinct values and each entry is
    merged O(log) times. (Merging at a fixed `merge_every` alone re-merges
    all 10M distinct values of a column after every chunk once there are
    more than `merge_every` of them: hours for 100M rows.)

    Args:
        merge_every: int. Pending distinct entries that trigger a merge.
            Defaults to `2**21`.

    Example:

    ```python
    counter = ValueCounter()
    counter.update(pa.array([1, 2, 2]))
    counter.update(pa.array([2, 3]))
    values, counts = counter.result()  # [1, 2, 3], [1, 3, 1]
    ```
    """

    def __init__(self, merge_every: int = 1 << 21) -> None:
        self.merge_every = merge_every
        self._parts: list[pa.Table] = []
        self._pending = 0
        self._merged = 0
        self._strings = False

    def update(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Adds the values of one chunk (nulls are not counted).

        Args:
            values: pyarrow Array or ChunkedArray.
        """
        values = pc.drop_null(values)
        if len(values) == 0:
            return
        counts = pc.value_counts(values)
        if isinstance(counts, pa.ChunkedArray):
            counts = counts.combine_chunks()
        part = pa.table({"value": counts.field(0), "count": counts.field(1)})
        if self._parts and part.schema != self._parts[0].schema:
            # Chunks typed differently (ints here, strings there) are
            # merged under their canonical strings, as `fit` would.
            self._strings = True
            self._parts = [_as_strings(p) for p in self._parts]
        if self._strings:
            part = _as_strings(part)
        self._parts.append(part)
        self._pending += len(counts)
        if self._pending > max(self.merge_every, self._merged):
            self._merge()

    def _merge(self) -> None:
        if len(self._parts) > 1:
            merged = pa.concat_tables(self._parts).group_by("value")
            merged = merged.aggregate([("count", "sum")])
            merged = merged.rename_columns(["value", "count"])
            self._parts = [merged]
        self._merged = len(self._parts[0]) if self._parts else 0
        self._pending = 0

    def result(self) -> tuple[pa.Array, np.ndarray]:
        """The counts so far.

        Returns:
            `(values, counts)`: a pyarrow Array of the distinct values and
            an int64 numpy array of their counts, in no particular order.
        """
        self._merge()
        if not self._parts:
            return pa.array([]), np.zeros(0, np.int64)
        table = self._parts[0].combine_chunks()
        return table.column("value").chunk(0), np.asarray(
            table.column("count").to_numpy(), np.int64
        )


def _as_strings(part: pa.Table) -> pa.Table:
    values = canonical_strings(part.column("value").to_pandas())
    return part.set_column(0, "value", pa.array(values, pa.string()))


class Moments:
    """Count, mean and variance of a column, merged chunk by chunk.

    Chunks merge with the pairwise update of Chan, Golub and LeVeque
    (1979), which stays accurate where summing squares would cancel. A
    single chunk gives exactly numpy's `mean()` and `std()`, so fitting in
    one chunk learns the same statistics, to the bit, as fitting in memory.

    Example:

    ```python
    moments = Moments()
    moments.update(np.array([1.0, 2.0]))
    moments.update(np.array([3.0]))
    moments.mean, moments.std  # 2.0, 0.816...
    ```
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean

    def update(self, x: np.ndarray) -> None:
        """Adds a chunk of values (finite float64; NaNs already removed).

        Args:
            x: 1-D numpy array.
        """
        if x.size == 0:
            return
        n, mean = int(x.size), float(x.mean())
        m2 = float(((x - mean) ** 2).sum())
        if self.count == 0:
            # Taken as is: the merge below would round `mean * n / n`.
            self.count, self.mean, self.m2 = n, mean, m2
            return
        delta, total = mean - self.mean, self.count + n
        self.m2 += m2 + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.count = total

    @property
    def std(self) -> float:
        """The population standard deviation (NaN before any value)."""
        if self.count == 0:
            return math.nan
        return float(np.sqrt(self.m2 / self.count))
