"""Fitting a `Preprocessor` from batches, in memory bounded by the vocabulary.

`Preprocessor.fit` needs the whole table; `fit_streaming` reads it batch by
batch and keeps only per-value counts (and running moments for numeric
columns), so its memory grows with the number of distinct values, never with
the rows. It learns exactly what `fit` on the concatenated batches learns:
the same vocabularies in the same order, the same collision report, and the
same numeric statistics up to floating-point rounding.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from recsys.features.hashing import canonical_strings
from recsys.features.preprocessor import FORMAT_VERSION
from recsys.features.preprocessor import Preprocessor
from recsys.features.specs import CategoricalFeature
from recsys.features.specs import NumericFeature


class ValueCounter:
    """Counts the values of one column over many batches.

    Each batch is reduced to its distinct values with Arrow's
    `value_counts`; the partial counts are merged once the new ones hold
    more than `merge_every` entries and more than the merged counts, so
    memory stays proportional to the distinct values and each entry is
    merged O(log) times. (Merging at a fixed `merge_every` alone re-merges
    all 10M distinct values of a column after every batch once there are
    more than `merge_every` of them: hours for 100M rows.)

    Example:

    ```python
    counter = ValueCounter()
    counter.update(pa.array([1, 2, 2]))
    counter.update(pa.array([2, 3]))
    values, counts = counter.result()  # [1, 2, 3], [1, 3, 1]
    ```
    """

    def __init__(self, merge_every=1 << 21):
        self.merge_every = merge_every
        self._parts = []
        self._pending = 0
        self._merged = 0
        self._strings = False

    def update(self, values):
        """Adds a pyarrow Array or ChunkedArray (nulls are not counted)."""
        values = pc.drop_null(values)
        if len(values) == 0:
            return
        counts = pc.value_counts(values)
        if isinstance(counts, pa.ChunkedArray):
            counts = counts.combine_chunks()
        part = pa.table({"value": counts.field(0), "count": counts.field(1)})
        if self._parts and part.schema != self._parts[0].schema:
            # Batches typed differently (ints here, strings there) are
            # merged under their canonical strings, as `fit` would.
            self._strings = True
            self._parts = [_as_strings(p) for p in self._parts]
        if self._strings:
            part = _as_strings(part)
        self._parts.append(part)
        self._pending += len(counts)
        if self._pending > max(self.merge_every, self._merged):
            self._merge()

    def _merge(self):
        if len(self._parts) > 1:
            merged = pa.concat_tables(self._parts).group_by("value")
            merged = merged.aggregate([("count", "sum")])
            merged = merged.rename_columns(["value", "count"])
            self._parts = [merged]
        self._merged = len(self._parts[0]) if self._parts else 0
        self._pending = 0

    def result(self):
        """`(values, counts)`: a pyarrow Array and an int64 numpy array."""
        self._merge()
        if not self._parts:
            return pa.array([]), np.zeros(0, np.int64)
        table = self._parts[0].combine_chunks()
        return table.column("value").chunk(0), np.asarray(
            table.column("count").to_numpy(), np.int64
        )


def _as_strings(part):
    values = canonical_strings(part.column("value").to_pandas())
    return part.set_column(0, "value", pa.array(values, pa.string()))


def _column(batch, name):
    if name not in batch.column_names:
        raise KeyError(
            f"Column '{name}' is missing from a batch. Available columns: "
            f"{batch.column_names}. Fix: add the column or remove feature "
            f"'{name}' from the feature spec."
        )
    return batch.column(name)


class _Moments:
    """Count, mean and sum of squared deviations, merged batch by batch."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, x):
        if x.size == 0:
            return
        n, mean = x.size, float(x.mean())
        m2 = float(((x - mean) ** 2).sum())
        delta, total = mean - self.mean, self.n + n
        self.m2 += m2 + delta**2 * self.n * n / total
        self.mean += delta * n / total
        self.n = total


def fit_streaming(features, batches):
    """Fits a `Preprocessor` on an iterable of batches.

    Args:
        features: list of feature specs (as for `Preprocessor`).
        batches: iterable of pyarrow Tables or RecordBatches (or pandas
            DataFrames) holding every feature's column.

    Returns:
        A fitted `Preprocessor`, equal to `Preprocessor(features=...)
        .fit(all rows)`.

    Raises:
        ValueError: if the batches hold no rows, or a column cannot be
            fitted (as `Preprocessor.fit` raises).

    Example:

    ```python
    batches = (source.read(g, ["userId"]) for g in range(source.num_groups))
    pre = fit_streaming([CategoricalFeature("userId")], batches)
    ```
    """
    pre = Preprocessor(features=features)  # validates the specs
    for feature in pre.features:
        if feature.kind == "bucketized" and feature.boundaries is None:
            raise ValueError(
                f"Feature '{feature.name}': streamed fitting cannot learn "
                "quantile boundaries. Fix: give the feature fixed "
                "`boundaries`."
            )
    counters = {
        f.name: ValueCounter()
        for f in pre.features
        if isinstance(f, CategoricalFeature)
    }
    moments = {
        f.name: _Moments()
        for f in pre.features
        if isinstance(f, NumericFeature)
    }
    rows = 0
    for batch in batches:
        if isinstance(batch, pd.DataFrame):
            batch = pa.Table.from_pandas(batch, preserve_index=False)
        rows += batch.num_rows
        for feature in pre.features:
            if feature.kind == "bucketized":
                continue
            column = _column(batch, feature.name)
            if isinstance(feature, NumericFeature):
                x = Preprocessor._numeric(column.to_pandas(), feature.name)
                if feature.transform == "log":
                    x = Preprocessor._log(x, feature.name)
                moments[feature.name].update(x[~np.isnan(x)])
            elif feature.kind == "categorical":
                counters[feature.name].update(column)
            else:
                # Multi-valued columns count tokens, split as `fit` splits
                # them (the tokenizer lives in the Preprocessor).
                tokens = Preprocessor._values(column.to_pandas(), feature)
                counters[feature.name].update(pa.array(tokens, pa.string()))
    if rows == 0:
        raise ValueError(
            "Cannot fit a Preprocessor on an empty input (0 rows)."
        )
    vocabularies, stats, collisions = {}, {}, {}
    for feature in pre.features:
        if feature.kind == "bucketized":
            stats[feature.name] = {"boundaries": list(feature.boundaries)}
            continue
        if isinstance(feature, NumericFeature):
            m = moments[feature.name]
            if m.n == 0:
                raise ValueError(
                    f"Column '{feature.name}' has no non-null values to fit on."
                )
            std = float(np.sqrt(m.m2 / m.n))
            stats[feature.name] = {
                "mean": m.mean,
                "std": std if std > 0 else 1.0,
            }
            continue
        values, counts = counters[feature.name].result()
        # Raw values (42, 42.0, "42") merge under their canonical string.
        counts = pd.Series(counts).groupby(
            canonical_strings(values.to_pandas()), sort=False
        )
        counts = counts.sum()
        counts = counts[counts.index != ""]
        if feature.vocabulary == "hash":
            distinct = counts.index.to_numpy(dtype=object)
            collisions[feature.name] = Preprocessor._collisions(
                distinct, feature
            )
            continue
        counts = counts[counts >= feature.min_frequency]
        # The order `fit` uses: most frequent first, ties by value.
        order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if feature.max_tokens is not None:
            order = order[: feature.max_tokens]
        vocabularies[feature.name] = [value for value, _ in order]
    return Preprocessor.from_config(
        {
            "format_version": FORMAT_VERSION,
            "features": [f.get_config() for f in pre.features],
            "vocabularies": vocabularies,
            "stats": stats,
            "collision_report": collisions,
        }
    )
