"""`Preprocessor`: columns in, model-ready numpy arrays out.

The same fitted object turns training data, batch-scoring data and serving
requests into ids and values, so it follows the scikit-learn estimator
contract: keyword-only constructor, `fit` learns attributes ending in `_` and
returns `self`, `transform` refuses to run before `fit`. It saves to JSON.
"""

import collections
import datetime
import json
import logging
import math
import os
import stat
from collections.abc import Iterable
from typing import Any
from typing import TypeAlias
from typing import TypeGuard

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys.features.counting import Moments
from recsys.features.counting import ValueCounter
from recsys.features.hashing import FINGERPRINT_BUCKETS
from recsys.features.hashing import canonical_strings
from recsys.features.hashing import colliding_share
from recsys.features.hashing import multi_hash
from recsys.features.hashing import recommended_buckets
from recsys.features.hashing import stable_hash
from recsys.features.numeric_transform import NO_NUMBER
from recsys.features.numeric_transform import as_numbers
from recsys.features.specs import BucketizedFeature
from recsys.features.specs import CategoricalFeature
from recsys.features.specs import FeatureSpec
from recsys.features.specs import MultiCategoricalFeature
from recsys.features.specs import NumericFeature
from recsys.features.specs import TextFeature
from recsys.features.specs import default_embedding_dim
from recsys.features.specs import feature_from_config
from recsys.storage.atomic_write import write_text_atomically

logger = logging.getLogger(__name__)

# What `fit`, `partial_fit` and `transform` take: a pandas DataFrame, a
# pyarrow Table (or RecordBatch) or a dict of columns.
Columns: TypeAlias = pd.DataFrame | pa.Table | pa.RecordBatch | dict[str, Any]

FORMAT_VERSION = 1
# Largest preprocessor.json read by `Preprocessor.load` (vocabularies).
MAX_JSON_BYTES = 2**30
# The collision report recommends a bucket count for this colliding share.
TARGET_COLLISION_SHARE = 0.01
# Above this share of colliding values the report is a warning.
WARNED_COLLISION_SHARE = 0.1


class NotFittedError(ValueError, AttributeError):
    """Raised when a `Preprocessor` is used before `fit`.

    An `AttributeError` too, as scikit-learn's: `hasattr(pre,
    "vocabularies_")` is False before `fit`.
    """


def _as_chunk(data: Columns) -> Columns:
    """`data` as a DataFrame, Arrow Table or dict (a RecordBatch: a Table)."""
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if not isinstance(data, (pa.Table, pd.DataFrame, dict)):
        raise TypeError(
            "Expected a pandas DataFrame, a pyarrow Table or RecordBatch, "
            f"or a dict of columns. Received: {type(data).__name__}"
        )
    return data


def _raw_column(data: Columns, name: str) -> Any:
    """Column `name` as the input holds it (Arrow column, Series, list)."""
    data = _as_chunk(data)
    # A lookup in the frame's columns, not in a list of them: a table of
    # 10,000 features made fit quadratic in its columns.
    if isinstance(data, pa.Table):
        present = bool(data.schema.get_all_field_indices(name))
    else:
        present = name in data
    if not present:
        columns = (
            data.column_names if isinstance(data, pa.Table) else list(data)
        )
        raise KeyError(
            f"Column '{name}' is missing from the input. Available columns: "
            f"{columns}. Fix: add the column or remove feature '{name}' "
            "from the feature spec."
        )
    if isinstance(data, pa.Table):
        return data.column(name)
    return data[name]


def _column(data: Columns, name: str) -> pd.Series:
    """Returns column `name` of a DataFrame, Arrow table or dict as a Series."""
    column = _raw_column(data, name)
    if isinstance(column, pa.ChunkedArray):
        return column.to_pandas()
    return column if isinstance(column, pd.Series) else pd.Series(column)


def _shown(value: Any) -> str:
    """A cell's repr for a message, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _rows(cells: pd.Series) -> str:
    """The first five `cells`, each with its row: `'3%' (row 7), ...`."""
    return ", ".join(
        f"{_shown(v)} (row {i})" for i, v in cells.iloc[:5].items()
    )


def _what_time_is_not(cells: pd.Series) -> str:
    """What the `cells` of a column of times are not: mostly no date at
    all (February 30th, month 13, hour 25), which the years pandas holds
    do not explain; else a time beyond them."""
    try:
        for cell in cells:
            datetime.datetime.fromisoformat(str(cell).strip())
    except ValueError:
        return "not a date or time"
    return "no time pandas can hold (years 1677-2262 at nanosecond precision)"


def _raise_not_numeric(bad: pd.Series, name: str, fitted: bool) -> None:
    """Raises `ValueError` naming the cells of a numeric column that are no
    number; in a column of times, the cells that are no time. `fitted`:
    the rows are transformed for a fitted model (`recsys score`), whose
    columns' kinds are set: the cells are to mend, not the config."""
    stamps = pd.to_datetime(
        bad.astype(str), format="ISO8601", utc=True, errors="coerce"
    )
    odd = bad[stamps.isna()]
    if stamps.notna().mean() >= 0.5 and len(odd):
        # Times all but a few: those few are the ones to show (the
        # column is read as times only when every one is one).
        raise ValueError(
            f"Column '{name}' holds times, read as Unix seconds, but "
            f"{len(odd):,} of its cells {'is' if len(odd) == 1 else 'are'} "
            f"{_what_time_is_not(odd.iloc[:5])}, e.g. {_rows(odd)}. Fix: "
            "correct or empty those cells."
        )
    if fitted:
        raise ValueError(
            f"Column '{name}' holds {len(bad):,} "
            f"{'value that is' if len(bad) == 1 else 'values that are'} no "
            f"number, e.g. {_rows(bad)} (rows from 0): the model reads "
            f"'{name}' as a number, as its training rows held. Fix: write "
            "those cells as numbers (no units or % signs), or empty them "
            "(read as missing, as in training)."
        )
    raise ValueError(
        f"Column '{name}' must be numeric, but it holds {len(bad):,} "
        f"non-numeric {'value' if len(bad) == 1 else 'values'}, e.g. "
        f"{_rows(bad)} (rows from 0). Fix: clean the column or declare it as a "
        "categorical feature (times: write every one in ISO 8601, e.g. "
        "2013-01-01T06:00:00Z, read as Unix seconds)."
    )


def check_numbers(series: pd.Series, name: str) -> None:
    """Raises the `ValueError` fitting would raise for a cell of column
    `name` that is no number (among times, no time), naming its row.

    Called on a table as read, before any row is dropped or split, the row
    is the file's (fitting sees the training split's rows, numbered
    afresh: a bad date at file row 2500 was named at row 1276).
    """
    Preprocessor._numeric(series, name)


def _num_rows(data: Columns) -> int:
    data = _as_chunk(data)
    if isinstance(data, (pa.Table, pd.DataFrame)):
        return len(data)
    return len(next(iter(data.values()))) if data else 0


def _canonical_counts(counter: ValueCounter) -> pd.Series:
    """A counter's counts by canonical string, the empty string left out."""
    values, counts = counter.result()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        # Strings are their own canonical spelling.
        keys = values.to_numpy(zero_copy_only=False)
    else:
        keys = canonical_strings(values.to_pandas())
    # Raw values (42, 42.0, "42") merge under their canonical string.
    merged = pd.Series(counts).groupby(keys, sort=False).sum()
    return merged[merged.index != ""]


# The "text" tokenizer (see `TextFeature`), as Arrow regex replacements.
_TEXT_RULES = (
    (r"(https?://|www\.)\S+", " xxurl "),
    (r"\d+([.,]\d+)*", " xxnum "),
    (r"([^\w\s])", r" \1 "),
)


def _check_float32_range(x: np.ndarray, raw: pd.Series, name: str) -> None:
    """Refuses transformed numbers beyond float32's range: the model's
    input would be infinite and its output NaN (`1e300` in a column of
    years scored empty, without a word).

    Raises:
        ValueError: naming the column, an example and the fix.
    """
    beyond = np.abs(x) > np.finfo(np.float32).max
    if beyond.any():
        example = raw[beyond].iloc[0]
        if isinstance(example, np.generic):  # 1e+300, not np.float64(...)
            example = example.item()
        raise ValueError(
            f"Column '{name}' holds {int(beyond.sum()):,} values too large "
            f"for the model, e.g. {example!r} (beyond float32's +-3.4e38 "
            "once scaled). Fix: replace them with numbers of the column's "
            "range, or empty those cells (missing values are filled as in "
            "training)."
        )


def _is_sequence(feature: FeatureSpec) -> bool:
    return isinstance(feature, (MultiCategoricalFeature, TextFeature))


def _with_ngrams(
    words: pa.ListArray, ngrams: int, char_ngrams: list | None
) -> pa.ListArray:
    """Each row's words, then its word n-grams, then its character n-grams
    (see `TextFeature`)."""
    rows: list[list[str] | None] = []
    for tokens in words.to_pylist():
        if tokens is None:
            rows.append(None)
            continue
        # Splitting leaves empty strings at the ends; they are no words.
        tokens = [token for token in tokens if token]
        extra = [
            " ".join(tokens[i : i + n])
            for n in range(2, ngrams + 1)
            for i in range(len(tokens) - n + 1)
        ]
        if char_ngrams:
            low, high = char_ngrams
            for token in tokens:
                marked = f"<{token}>"
                extra.extend(
                    marked[i : i + n]
                    for n in range(low, high + 1)
                    for i in range(len(marked) - n + 1)
                )
        rows.append(tokens + extra)
    return pa.array(rows, type=pa.list_(pa.string()))


# Non-null cells of an object column looked at for lists.
LIST_SAMPLE = 1000


def _is_arrow_list(dtype: Any) -> bool:
    """Whether `dtype` is a `pd.ArrowDtype` of lists."""
    if not isinstance(dtype, pd.ArrowDtype):
        return False
    kind = dtype.pyarrow_dtype
    return bool(
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind)
    )


def joined_lists(series: pd.Series, separator: str) -> pd.Series:
    """`series` with its list cells (JSON arrays, Parquet lists) written as
    text: their values joined by `separator`, as a multi-valued column of
    text holds them. Other cells are kept; a column without lists among
    its first `LIST_SAMPLE` values is returned as it is.

    Example:

    ```python
    joined_lists(pd.Series([["a", "b"], "c", None]), "|")  # "a|b", "c", None
    ```
    """
    if _is_arrow_list(series.dtype):
        # `pd.read_parquet(..., dtype_backend="pyarrow")`'s list column: as
        # objects its cells are arrays, read as any list cell.
        series = series.astype(object)
    if series.dtype != object:
        return series

    def is_list(value):
        return isinstance(value, (list, tuple, np.ndarray))

    # A column of text (the common case) is told by its first cells, not
    # by a Python call on each of millions.
    if not series.dropna().head(LIST_SAMPLE).map(is_list).any():
        return series
    listed = series.map(is_list)
    joined = series.copy()
    joined[listed] = [
        separator.join(s for s in canonical_strings(list(v)) if s is not None)
        for v in series[listed]
    ]
    return joined


def _tokens(series: pd.Series, feature: Any) -> pa.ListArray:
    """Splits a multi-valued column into an Arrow list array of strings
    (list cells are lists of values already: `joined_lists`)."""
    if feature.tokenizer != "text":
        series = joined_lists(series, feature.separator or " ")
    if feature.tokenizer == "text" and series.dtype == object:
        bad = series.map(lambda v: not isinstance(v, str) and pd.notna(v))
        if bool(bad.any()):
            examples = series[bad].unique()[:5].tolist()
            raise ValueError(
                f"Text column '{feature.name}' must hold strings, but it holds "
                f"{examples}. Fix: convert the column to text or clean it."
            )
    strings = pa.array(canonical_strings(series), type=pa.string())
    if feature.tokenizer == "text":
        strings = pc.utf8_lower(strings)
        for pattern, replacement in _TEXT_RULES:
            strings = pc.replace_substring_regex(strings, pattern, replacement)
        words = pc.utf8_split_whitespace(strings)
        ngrams = getattr(feature, "ngrams", 1)
        char_ngrams = getattr(feature, "char_ngrams", None)
        if ngrams > 1 or char_ngrams:
            return _with_ngrams(words, ngrams, char_ngrams)
        return words
    if feature.tokenizer == "words":
        strings = pc.utf8_lower(strings)
        strings = pc.replace_substring_regex(strings, r"[^\w]+", " ")
        strings = pc.utf8_trim_whitespace(strings)
        return pc.split_pattern(strings, " ")
    return pc.split_pattern(strings, feature.separator)


class _FitState:
    """What `Preprocessor.partial_fit` has accumulated so far.

    Per feature: a `ValueCounter` (categorical, multi-valued and text), a
    `Moments` (numeric) or the finite values seen (bucketized features
    that learn quantile boundaries, which need every value).
    """

    def __init__(self, features: list[FeatureSpec]) -> None:
        self.rows = 0
        self.counters: dict[str, ValueCounter] = {}
        self.moments: dict[str, Moments] = {}
        self.samples: dict[str, list[np.ndarray]] = {}
        for feature in features:
            if isinstance(feature, NumericFeature):
                self.moments[feature.name] = Moments()
            elif isinstance(feature, BucketizedFeature):
                if feature.boundaries is None:
                    self.samples[feature.name] = []
            else:
                self.counters[feature.name] = ValueCounter()

    def add(self, rows: int, parts: dict[str, Any]) -> None:
        """Adds one chunk's parts (see `Preprocessor._chunk_parts`)."""
        self.rows += rows
        for name, part in parts.items():
            if name in self.moments:
                self.moments[name].update(part)
            elif name in self.samples:
                self.samples[name].append(part)
            elif name in self.counters:
                self.counters[name].update(part)


class Preprocessor:
    """Fits vocabularies and statistics, then transforms columns to arrays.

    Args:
        features: list of feature specs (`CategoricalFeature`,
            `MultiCategoricalFeature`, `TextFeature`, `NumericFeature`,
            `BucketizedFeature`), one per column.

    Attributes (after `fit`, or `partial_fit`):
        vocabularies_: dict. Feature name -> list of canonical strings
            (exact vocabularies).
        stats_: dict. Feature name -> `{"mean", "std"}` (numeric features)
            or `{"boundaries"}` (bucketized features).
        collision_report_: dict. Feature name -> `{"distinct_values",
            "buckets", "num_hashes", "colliding_share", "target_share",
            "recommended_buckets"}` for hashed features: the share of
            distinct values that share their bucket (all their buckets,
            for several hashes) with another value, and the bucket count
            that would bring it to `target_share` (1%).

    Example:

    ```python
    pre = Preprocessor(features=[CategoricalFeature("userId")])
    arrays = pre.fit(df).transform(df)   # {"userId": int32 array}
    ```
    """

    def __init__(self, *, features: Iterable[FeatureSpec]) -> None:
        features = list(features)
        counts = collections.Counter(f.name for f in features)
        duplicates = sorted(name for name, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(
                "Feature names must be unique. Received duplicates: "
                f"{duplicates}"
            )
        for feature in features:
            if not isinstance(
                feature,
                (CategoricalFeature, NumericFeature, BucketizedFeature),
            ):
                raise TypeError(
                    "Each feature must be a CategoricalFeature, "
                    "MultiCategoricalFeature, NumericFeature or "
                    "BucketizedFeature. "
                    f"Received: {feature!r}"
                )
        self.features: list[FeatureSpec] = features
        # What `partial_fit` accumulated (None after `fit` or a load, which
        # keep no counts), and the learned attributes: learned from the
        # counts when first read, so chunks cost no re-sorting each.
        self._fit_state: _FitState | None = None
        self._learned: dict[str, dict[str, Any]] | None = None
        self._indexes: dict[Any, Any] = {}

    # -- learned state ---------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        """Whether `fit` or `partial_fit` ran (or the state was loaded)."""
        return self._learned is not None or self._fit_state is not None

    @property
    def vocabularies_(self) -> dict[str, list[str]]:
        return self._learned_state()["vocabularies"]

    @property
    def stats_(self) -> dict[str, dict[str, Any]]:
        return self._learned_state()["stats"]

    @property
    def collision_report_(self) -> dict[str, dict[str, Any]]:
        return self._learned_state()["collision_report"]

    def _learned_state(self) -> dict[str, dict[str, Any]]:
        learned = self._learned
        if learned is None:
            if self._fit_state is None:
                raise NotFittedError(
                    "This Preprocessor is not fitted yet. Call `fit(data)` "
                    "first."
                )
            learned = self._learn(self._fit_state)
            self._set_learned(learned)
        return learned

    def _set_learned(self, learned: dict[str, dict[str, Any]] | None) -> None:
        self._learned = learned
        self._indexes = {}  # lookups cached from the previous state

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                "This Preprocessor is not fitted yet. Call `fit(data)` first."
            )

    def feature(self, name: str) -> FeatureSpec:
        """Returns the spec of feature `name`."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(
            f"Unknown feature '{name}'. Known features: "
            f"{[f.name for f in self.features]}"
        )

    def input_dim(self, name: str) -> int:
        """Rows of the embedding table for categorical feature `name`."""
        self._check_fitted()
        feature = self.feature(name)
        if isinstance(feature, NumericFeature):
            raise ValueError(f"Feature '{name}' is numeric: it has no table.")
        if isinstance(feature, BucketizedFeature):
            return 2 + len(self.stats_[name]["boundaries"])
        assert isinstance(feature, CategoricalFeature)  # noqa: S101 (mypy)
        if feature.vocabulary == "hash":
            if feature.num_hashes > 1:
                return 1 + FINGERPRINT_BUCKETS  # ids, not table rows
            return 1 + feature.num_buckets
        return 1 + feature.num_oov_buckets + len(self.vocabularies_[name])

    def embedding_dim(self, name: str) -> int:
        """The embedding size of `name`: its spec's, or the default rule."""
        feature = self.feature(name)
        if feature.embedding_dim is not None:
            return feature.embedding_dim
        hashes = getattr(feature, "num_hashes", 1)
        if hashes > 1:
            # The table has `num_buckets + 1` rows; concatenated rows must
            # split the size evenly.
            dim = default_embedding_dim(feature.num_buckets + 1)
            return -(-dim // hashes) * hashes
        return default_embedding_dim(self.input_dim(name))

    # -- fit ---------------------------------------------------------------

    def fit(self, data: Columns) -> "Preprocessor":
        """Learns vocabularies and statistics from `data`.

        Replaces any earlier fit; on error the earlier fit is kept.

        Args:
            data: pandas DataFrame, pyarrow Table or RecordBatch, or dict of
                columns.

        Returns:
            `self`.
        """
        data = _as_chunk(data)
        if _num_rows(data) == 0:
            raise ValueError(
                "Cannot fit a Preprocessor on an empty input (0 rows)."
            )
        state = _FitState(self.features)
        state.add(_num_rows(data), self._chunk_parts(data))
        learned = self._learn(state)
        # The counts are dropped: a fitted preprocessor holds only what it
        # learned, as one loaded from JSON does.
        self._fit_state = None
        self._set_learned(learned)
        return self

    def partial_fit(self, data: Columns) -> "Preprocessor":
        """Learns from one more chunk of the data.

        Chunk after chunk, `partial_fit` keeps per-value counts and running
        moments, so memory grows with the distinct values, never with the
        rows (except for bucketized features that learn quantile
        boundaries, which keep every value: give those fixed `boundaries`
        for tables larger than memory). The learned attributes cover every
        chunk so far and equal those `fit` learns on the chunks
        concatenated: the same vocabularies in the same order, the same
        boundaries and collision report, and the same numeric statistics up
        to floating-point rounding (identical for one chunk).

        Args:
            data: pandas DataFrame, pyarrow Table or RecordBatch, or dict of
                columns: one chunk, possibly empty.

        Returns:
            `self`.

        Raises:
            ValueError: if the preprocessor was fitted with `fit` or loaded
                (neither keeps counts to add to), or a column cannot be
                fitted (as `fit` raises). The chunk is then not added.

        Example:

        ```python
        pre = Preprocessor(features=[CategoricalFeature("userId")])
        for chunk in pd.read_csv(path, chunksize=1_000_000):
            pre.partial_fit(chunk)
        pre.vocabularies_["userId"]
        ```
        """
        data = _as_chunk(data)
        parts = self._chunk_parts(data)  # validates the whole chunk first
        if self._fit_state is None:
            if self._learned is not None:
                raise ValueError(
                    "This Preprocessor was fitted with `fit` or loaded, "
                    "which keep no counts: `partial_fit` cannot add to it. "
                    "Fix: call `partial_fit` on a new Preprocessor for every "
                    "chunk, or `fit` on all the data."
                )
            self._fit_state = _FitState(self.features)
        self._fit_state.add(_num_rows(data), parts)
        self._set_learned(None)
        return self

    def _chunk_parts(self, data: Columns) -> dict[str, Any]:
        """Per feature, what one chunk adds to the counts and moments."""
        parts: dict[str, Any] = {}
        for feature in self.features:
            name = feature.name
            if isinstance(feature, BucketizedFeature):
                if feature.boundaries is None:
                    x = self._numeric(_column(data, name), name)
                    parts[name] = x[~np.isnan(x)]
                else:
                    _raw_column(data, name)  # required, as by `transform`
            elif isinstance(feature, NumericFeature):
                x = self._numeric(_column(data, name), name)
                if feature.transform == "log":
                    x = self._log(x)
                parts[name] = x[~np.isnan(x)]
            elif _is_sequence(feature):
                tokens = _tokens(_column(data, name), feature)
                parts[name] = pc.list_flatten(tokens)
            elif isinstance(data, pa.Table):
                # Counted as they are: each distinct value is spelled once,
                # when the vocabulary is learned (spelling 100M ids costs
                # more than counting them).
                parts[name] = _raw_column(data, name)
            else:
                strings = canonical_strings(_column(data, name))
                parts[name] = pa.array(strings, pa.string())
        return parts

    def _learn(self, state: _FitState) -> dict[str, dict[str, Any]]:
        """The learned attributes, from what `state` accumulated."""
        if state.rows == 0:
            raise ValueError(
                "Cannot fit a Preprocessor on an empty input (0 rows)."
            )
        vocabularies, stats, collisions = {}, {}, {}
        for feature in self.features:
            name = feature.name
            if isinstance(feature, NumericFeature):
                moments = state.moments[name]
                if moments.count == 0:
                    raise ValueError(
                        f"Column '{name}' has no non-null values to fit on."
                    )
                std = moments.std
                stats[name] = {
                    "mean": moments.mean,
                    "std": std if std > 0 else 1.0,
                }
                continue
            if isinstance(feature, BucketizedFeature):
                stats[name] = {
                    "boundaries": self._boundaries(
                        feature, state.samples.get(name, [])
                    )
                }
                continue
            assert isinstance(feature, CategoricalFeature)  # noqa: S101
            counts = _canonical_counts(state.counters[name])
            if feature.vocabulary == "hash":
                distinct = counts.index.to_numpy(dtype=object)
                collisions[name] = self._collisions(distinct, feature)
                continue
            counts = counts[counts >= feature.min_frequency]
            # Most frequent first, ties by value: deterministic and stable.
            order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            if feature.max_tokens is not None:
                order = order[: feature.max_tokens]
            vocabularies[name] = [value for value, _ in order]
        for name, report in collisions.items():
            # A warning where many collide: `-q` hid a table in which every
            # user shared a row with others.
            share = report["colliding_share"]
            logger.log(
                logging.WARNING
                if share > WARNED_COLLISION_SHARE
                else logging.INFO,
                "Hashed feature '%s': %d distinct values in %d buckets "
                "(%d hashes), %.2f%% collide; features.%s.num_buckets = %d "
                "would keep 1%%.",
                name,
                report["distinct_values"],
                report["buckets"],
                report["num_hashes"],
                100 * share,
                name,
                report["recommended_buckets"],
            )
        return {
            "vocabularies": vocabularies,
            "stats": stats,
            "collision_report": collisions,
        }

    @staticmethod
    def _collisions(
        distinct: np.ndarray, feature: CategoricalFeature
    ) -> dict[str, Any]:
        hashes = feature.num_hashes
        if hashes > 1:
            ids = 1 + stable_hash(distinct, FINGERPRINT_BUCKETS)
            rows = multi_hash(ids, feature.num_buckets, hashes)
        else:
            rows = stable_hash(distinct, feature.num_buckets)
        unordered = hashes > 1 and feature.hash_combiner == "sum"
        return {
            "distinct_values": int(len(distinct)),
            "buckets": int(feature.num_buckets),
            "num_hashes": int(hashes),
            # Values whose rows (all of them, for several hashes) another
            # value shares: the model cannot tell those apart.
            "colliding_share": colliding_share(rows, unordered),
            "target_share": TARGET_COLLISION_SHARE,
            "recommended_buckets": recommended_buckets(
                len(distinct), TARGET_COLLISION_SHARE, hashes, unordered
            ),
        }

    @staticmethod
    def _numeric(
        series: pd.Series, name: str, fitted: bool = False
    ) -> np.ndarray:
        if pd.api.types.is_bool_dtype(series.dtype):
            return series.to_numpy(dtype=np.float64)
        numbers = as_numbers(series)
        bad = numbers.isna() & series.notna()
        if bool(bad.any()):
            text = series[bad].astype(str).str.strip()
            bad[bad] = ~text.isin(NO_NUMBER).to_numpy()
        if bool(bad.any()):
            _raise_not_numeric(series[bad], name, fitted)
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(values)
        if infinite.any():
            # A mean or a scale of infinity would make every value NaN.
            raise ValueError(
                f"Column '{name}' holds {int(infinite.sum()):,} infinite "
                f"values, e.g. {sorted(set(values[infinite].tolist()))}. Fix: "
                "replace them with numbers, or empty those cells (missing "
                "values are filled as in training)."
            )
        return values

    @staticmethod
    def _boundaries(
        feature: BucketizedFeature, samples: list[np.ndarray]
    ) -> list[float]:
        if feature.boundaries is not None:
            return list(feature.boundaries)
        values = np.concatenate(samples) if samples else np.zeros(0)
        if values.size == 0:
            raise ValueError(
                f"Column '{feature.name}' has no non-null values to fit on."
            )
        inner = np.linspace(0, 1, feature.num_bins + 1)[1:-1]
        # Repeated quantiles (a value held by many rows) would make empty
        # buckets; they merge instead.
        return np.unique(np.quantile(values, inner)).tolist()

    @staticmethod
    def _log(values: np.ndarray) -> np.ndarray:
        # Mirrored below 0: a column whose training rows were all >= 0 (so
        # "log" was chosen) may hold a negative value in later rows (a
        # refund, a correction); it is scored, not refused.
        return np.sign(values) * np.log1p(np.abs(values))

    # -- transform -----------------------------------------------------------

    def transform(self, data: Columns) -> dict[str, np.ndarray]:
        """Turns columns into model inputs.

        Args:
            data: pandas DataFrame, pyarrow Table or dict of columns holding
                every feature's column (extra columns are ignored).

        Returns:
            dict. Feature name -> numpy array: `int32` ids of shape `(n,)`
            for categorical features, `(n, max_length)` for multi-valued ones
            (0 = padding), `float32` of shape `(n,)` for numeric features
            (NaN where a value is missing, for `missing="indicator"`).
        """
        self._check_fitted()
        return {
            feature.name: self._transform(feature, _column(data, feature.name))
            for feature in self.features
        }

    def transform_column(self, name: str, values: Any) -> np.ndarray:
        """Transforms the values of one feature (see `transform`)."""
        self._check_fitted()
        return self._transform(self.feature(name), values)

    def _transform(self, feature: FeatureSpec, values: Any) -> np.ndarray:
        """`transform_column` of `feature`'s spec: `transform` looks no
        feature up by name, which made it quadratic in the features."""
        name = feature.name
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        if isinstance(feature, BucketizedFeature):
            x = self._numeric(series, name, fitted=True)
            edges = np.asarray(self.stats_[name]["boundaries"], np.float64)
            ids = 1 + np.searchsorted(edges, x, side="right")
            return np.where(np.isnan(x), 0, ids).astype(np.int32)
        if isinstance(feature, NumericFeature):
            x = self._numeric(series, name, fitted=True)
            if feature.transform == "log":
                x = self._log(x)
            if feature.transform != "none":
                stats = self.stats_[name]
                x = (x - stats["mean"]) / stats["std"]
            if feature.missing == "mean":
                x = np.nan_to_num(x, nan=0.0)
            _check_float32_range(x, series, name)
            return x.astype(np.float32)
        if _is_sequence(feature):
            lists = _tokens(series, feature)
            flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
            ids = self._lookup(feature, np.asarray(flat, dtype=object))
            lengths = pc.fill_null(pc.list_value_length(lists), 0)
            lengths = lengths.to_numpy(zero_copy_only=False).astype(np.int64)
            rows = np.repeat(np.arange(len(series)), lengths)
            # Empty tokens (id 0) are dropped so kept values stay left-aligned;
            # a value's position is its rank among its row's kept values.
            keep = ids > 0
            rows, ids = rows[keep], ids[keep]
            positions = np.arange(len(rows)) - np.searchsorted(rows, rows)
            inside = positions < feature.max_length
            out = np.zeros((len(series), feature.max_length), np.int32)
            out[rows[inside], positions[inside]] = ids[inside]
            return out
        if feature.vocabulary == "exact" and series.dtype.kind in "iu":
            # A nullable integer column (`Int64`, from Parquet) may hold
            # missing values: id 0, as in every other column.
            missing = series.isna().to_numpy()
            ids = self._lookup_ints(
                feature,
                series.fillna(0).to_numpy()
                if missing.any()
                else series.to_numpy(),
            )
            ids[missing] = 0
            return ids
        return self._lookup(feature, canonical_strings(series))

    def tokenize(self, name: str, values: Any) -> list[list[str]]:
        """The tokens of a text or multi-valued feature, before id lookup.

        Useful to train word vectors on exactly the tokens the model sees
        (e.g. gensim's Word2Vec, whose words then match the vocabulary).

        Args:
            name: str. A text or multi-categorical feature.
            values: list, array or Series of its raw values.

        Returns:
            list of lists of token strings, one list per value.

        Example:

        ```python
        pre.tokenize("text", ["Great rally!"])  # [["great", "rally", "!"]]
        ```
        """
        feature = self.feature(name)
        if not _is_sequence(feature):
            raise ValueError(
                f"Feature '{name}' is {feature.kind}, not a text or "
                "multi-valued feature: it has no tokens."
            )
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        # Missing values have no tokens; splitting leaves empty strings at
        # the edges, which `transform` drops too.
        return [
            [token for token in tokens or () if token]
            for tokens in _tokens(series, feature).to_pylist()
        ]

    def _lookup_ints(
        self, feature: CategoricalFeature, values: np.ndarray
    ) -> np.ndarray:
        """`_lookup` of an integer column, without spelling every value.

        The ids are those of the canonical strings (`"42"` for `42`), read
        from an index of the vocabulary's integer entries; only values
        outside it are spelled, for their OOV hash. Streamed training
        transforms every row of every epoch, and spelling 10M-user ids
        costs more than the training step (benchmarks/RESULTS.md).
        """
        key = ("ints", feature.name)
        cached = self._indexes.get(key)
        if cached is None:
            vocabulary = pd.Series(
                self.vocabularies_[feature.name], dtype=object
            )
            # Canonical spellings of integers; up to 18 digits always fit
            # int64, 19-digit ones are kept where they do.
            whole = vocabulary.str.fullmatch(r"-?(0|[1-9][0-9]{0,18})")
            positions = np.flatnonzero(whole.fillna(False).to_numpy(bool))
            whole_ints = [int(v) for v in vocabulary.iloc[positions]]
            fits = np.array([-(2**63) <= v < 2**63 for v in whole_ints], bool)
            ints = np.array(
                [v for v, ok in zip(whole_ints, fits, strict=True) if ok],
                np.int64,
            )
            cached = (pd.Index(ints), positions[fits])
            self._indexes[key] = cached
        index, positions = cached
        if values.dtype == np.uint64 and values.size and values.max() >= 2**63:
            return self._lookup(feature, canonical_strings(values))
        found = index.get_indexer(values.astype(np.int64))
        ids = np.zeros(len(values), np.int64)
        inside = found >= 0
        ids[inside] = 1 + feature.num_oov_buckets + positions[found[inside]]
        if not inside.all():
            ids[~inside] = 1 + stable_hash(
                canonical_strings(values[~inside]), feature.num_oov_buckets
            )
        return ids.astype(np.int32)

    def _lookup(
        self, feature: CategoricalFeature, strings: np.ndarray
    ) -> np.ndarray:
        """Maps canonical strings to ids (0 for null / empty)."""
        missing = pd.isna(strings) | (strings == "")
        if feature.vocabulary == "hash":
            if feature.num_hashes > 1:
                # A fingerprint: the model hashes it into the shared table.
                ids = 1 + stable_hash(strings, FINGERPRINT_BUCKETS)
            else:
                ids = 1 + stable_hash(strings, feature.num_buckets)
        else:
            index = self._indexes.get(feature.name)
            if index is None:
                index = pd.Index(self.vocabularies_[feature.name], dtype=object)
                self._indexes[feature.name] = index
            positions = index.get_indexer(strings)
            oov = positions < 0
            ids = 1 + feature.num_oov_buckets + positions
            if oov.any():
                ids[oov] = 1 + stable_hash(
                    strings[oov], feature.num_oov_buckets
                )
        ids = np.where(missing, 0, ids)
        return ids.astype(np.int32)

    # -- persistence ---------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The spec and the learned state, as plain JSON-able data."""
        config = {
            "format_version": FORMAT_VERSION,
            "features": [f.get_config() for f in self.features],
        }
        if self.is_fitted:
            config["vocabularies"] = self.vocabularies_
            config["stats"] = self.stats_
            config["collision_report"] = self.collision_report_
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Preprocessor":
        version = config.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"Unsupported preprocessor format_version {version!r}; this "
                f"version of recsys reads format_version {FORMAT_VERSION}."
            )
        pre = cls(features=[feature_from_config(f) for f in config["features"]])
        if "vocabularies" in config:
            _check_learned(
                pre.features, config["vocabularies"], config["stats"]
            )
            pre._set_learned(
                {
                    "vocabularies": config["vocabularies"],
                    "stats": config["stats"],
                    "collision_report": config.get("collision_report", {}),
                }
            )
        return pre

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the preprocessor to `path` as JSON, atomically.

        The JSON goes to a new temporary file beside `path`, is flushed to
        disk and renamed over `path`; the directory entry is flushed too
        (`recsys.storage.atomic_write.write_text_atomically`).

        Args:
            path: str. The `.json` file to write (replaced if it exists).
        """
        write_text_atomically(os.fspath(path), json.dumps(self.get_config()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Preprocessor":
        """Reads a preprocessor written by `save`.

        Only a regular file of at most `MAX_JSON_BYTES` is read: a FIFO or
        a device (such as a link to `/dev/zero`) is refused at once rather
        than waited on or read without end. Bundles read theirs through
        `recsys.storage.files` instead, which also checks its sha256.

        Args:
            path: str. The `.json` file.

        Returns:
            The fitted `Preprocessor`.

        Raises:
            ValueError: if `path` is not a regular file, too large, or not
                a preprocessor's JSON.
        """
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(
                    f"{path} is not a regular file; a preprocessor is a "
                    "JSON file written by `Preprocessor.save`."
                )
            if info.st_size > MAX_JSON_BYTES:
                raise ValueError(
                    f"{path} is {info.st_size} bytes, over the "
                    f"{MAX_JSON_BYTES}-byte limit of a preprocessor file."
                )
            data = f.read(MAX_JSON_BYTES + 1)
        try:
            config = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"Cannot read {path}: {error}") from None
        return cls.from_config(config)


def _finite_number(value: Any) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _check_stats(name: str, stats: dict, feature: FeatureSpec) -> None:
    """Raises `ValueError` unless a numeric feature's stats are ones `fit`
    writes: a finite mean and a finite standard deviation above 0, or
    finite bucket boundaries in increasing order. (A string mean failed
    every transform with numpy's error; a negative deviation flipped the
    column's sign and scored on; a zero one blamed the data.)"""
    if isinstance(feature, BucketizedFeature):
        edges = stats.get("boundaries")
        if not (
            isinstance(edges, list)
            and all(_finite_number(edge) for edge in edges)
            and all(a < b for a, b in zip(edges, edges[1:], strict=False))
        ):
            raise ValueError(
                f"The bucket boundaries of '{name}' must be a list of "
                f"finite numbers in increasing order. Received: "
                f"{str(edges)[:80]}"
            )
        return
    mean, std = stats.get("mean"), stats.get("std")
    if not (_finite_number(mean) and _finite_number(std) and std > 0):
        raise ValueError(
            f"The stats of '{name}' must be a finite mean and a finite "
            f"standard deviation above 0. Received: mean={mean!r}, "
            f"std={std!r}"
        )


def _check_learned(features, vocabularies, stats) -> None:
    """Raises `ValueError` unless a saved preprocessor's learned state is
    one `fit` could write: what each feature's transform reads is there,
    every vocabulary a list of distinct strings (a duplicate would make
    every lookup of that feature fail)."""
    if not isinstance(vocabularies, dict) or not isinstance(stats, dict):
        raise ValueError("`vocabularies` and `stats` must be JSON objects.")
    for feature in features:
        name = feature.name
        if isinstance(feature, NumericFeature | BucketizedFeature):
            if not isinstance(stats.get(name), dict):
                raise ValueError(f"Numeric feature '{name}' has no stats.")
            _check_stats(name, stats[name], feature)
            continue
        if feature.vocabulary == "hash":
            continue
        vocabulary = vocabularies.get(name)
        if not isinstance(vocabulary, list) or not all(
            isinstance(value, str) for value in vocabulary
        ):
            raise ValueError(
                f"The vocabulary of '{name}' must be a list of strings."
            )
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError(f"The vocabulary of '{name}' holds duplicates.")
