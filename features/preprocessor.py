"""`Preprocessor`: columns in, model-ready numpy arrays out.

The same fitted object turns training data, batch-scoring data and serving
requests into ids and values, so it follows the scikit-learn estimator
contract: keyword-only constructor, `fit` learns attributes ending in `_` and
returns `self`, `transform` refuses to run before `fit`. It saves to JSON.
"""

import json
import logging
import os
import stat
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from recsys.features.hashing import FINGERPRINT_BUCKETS
from recsys.features.hashing import canonical_strings
from recsys.features.hashing import colliding_share
from recsys.features.hashing import multi_hash
from recsys.features.hashing import recommended_buckets
from recsys.features.hashing import stable_hash
from recsys.features.specs import BucketizedFeature
from recsys.features.specs import CategoricalFeature
from recsys.features.specs import MultiCategoricalFeature
from recsys.features.specs import NumericFeature
from recsys.features.specs import TextFeature
from recsys.features.specs import default_embedding_dim
from recsys.features.specs import feature_from_config

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Largest preprocessor.json read by `Preprocessor.load` (vocabularies).
MAX_JSON_BYTES = 2**30
# The collision report recommends a bucket count for this colliding share.
TARGET_COLLISION_SHARE = 0.01


class NotFittedError(ValueError):
    """Raised when a `Preprocessor` is used before `fit`."""


def _fsync_directory(directory):
    """Flushes a directory's entries (a rename) to disk, where supported."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory
    finally:
        os.close(fd)


def _column(data, name):
    """Returns column `name` of a DataFrame, Arrow table or dict as a Series."""
    if isinstance(data, pa.Table):
        columns = data.column_names
        if name in columns:
            return data.column(name).to_pandas()
    elif isinstance(data, pd.DataFrame):
        columns = list(data.columns)
        if name in columns:
            return data[name]
    elif isinstance(data, dict):
        columns = list(data)
        if name in columns:
            return pd.Series(data[name])
    else:
        raise TypeError(
            "Expected a pandas DataFrame, a pyarrow Table or a dict of "
            f"columns. Received: {type(data).__name__}"
        )
    raise KeyError(
        f"Column '{name}' is missing from the input. Available columns: "
        f"{columns}. Fix: add the column or remove feature '{name}' from "
        "the feature spec."
    )


def _num_rows(data):
    if isinstance(data, (pa.Table, pd.DataFrame)):
        return len(data)
    return len(next(iter(data.values()))) if data else 0


# The "text" tokenizer (see `TextFeature`), as Arrow regex replacements.
_TEXT_RULES = (
    (r"(https?://|www\.)\S+", " xxurl "),
    (r"\d+([.,]\d+)*", " xxnum "),
    (r"([^\w\s])", r" \1 "),
)


def _is_sequence(feature):
    return isinstance(feature, (MultiCategoricalFeature, TextFeature))


def _tokens(series, feature):
    """Splits a multi-valued column into an Arrow list array of strings."""
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
        return pc.utf8_split_whitespace(strings)
    if feature.tokenizer == "words":
        strings = pc.utf8_lower(strings)
        strings = pc.replace_substring_regex(strings, r"[^\w]+", " ")
        strings = pc.utf8_trim_whitespace(strings)
        return pc.split_pattern(strings, " ")
    return pc.split_pattern(strings, feature.separator)


class Preprocessor:
    """Fits vocabularies and statistics, then transforms columns to arrays.

    Args:
        features: list of feature specs (`CategoricalFeature`,
            `MultiCategoricalFeature`, `NumericFeature`), one per column.

    Attributes (after `fit`):
        vocabularies_: dict. Feature name -> list of canonical strings
            (exact vocabularies).
        stats_: dict. Feature name -> `{"mean", "std"}` (numeric features).
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

    def __init__(self, *, features):
        features = list(features)
        names = [f.name for f in features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
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
        self.features = features

    # -- learned state ---------------------------------------------------

    @property
    def is_fitted(self):
        return hasattr(self, "vocabularies_")

    def _check_fitted(self):
        if not self.is_fitted:
            raise NotFittedError(
                "This Preprocessor is not fitted yet. Call `fit(data)` first."
            )

    def feature(self, name):
        """Returns the spec of feature `name`."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(
            f"Unknown feature '{name}'. Known features: "
            f"{[f.name for f in self.features]}"
        )

    def input_dim(self, name):
        """Rows of the embedding table for categorical feature `name`."""
        self._check_fitted()
        feature = self.feature(name)
        if isinstance(feature, NumericFeature):
            raise ValueError(f"Feature '{name}' is numeric: it has no table.")
        if isinstance(feature, BucketizedFeature):
            return 2 + len(self.stats_[name]["boundaries"])
        if feature.vocabulary == "hash":
            if feature.num_hashes > 1:
                return 1 + FINGERPRINT_BUCKETS  # ids, not table rows
            return 1 + feature.num_buckets
        return 1 + feature.num_oov_buckets + len(self.vocabularies_[name])

    def embedding_dim(self, name):
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

    def fit(self, data):
        """Learns vocabularies and statistics from `data`.

        Args:
            data: pandas DataFrame, pyarrow Table or dict of columns.

        Returns:
            `self`.
        """
        if _num_rows(data) == 0:
            raise ValueError(
                "Cannot fit a Preprocessor on an empty input (0 rows)."
            )
        vocabularies, stats, collisions = {}, {}, {}
        for feature in self.features:
            series = _column(data, feature.name)
            if isinstance(feature, NumericFeature):
                values = self._numeric(series, feature.name)
                if feature.transform == "log":
                    values = self._log(values, feature.name)
                finite = values[~np.isnan(values)]
                if finite.size == 0:
                    raise ValueError(
                        f"Column '{feature.name}' has no non-null values to "
                        "fit on."
                    )
                std = float(finite.std())
                stats[feature.name] = {
                    "mean": float(finite.mean()),
                    "std": std if std > 0 else 1.0,
                }
                continue
            if isinstance(feature, BucketizedFeature):
                stats[feature.name] = {
                    "boundaries": self._boundaries(series, feature)
                }
                continue
            values = self._values(series, feature)
            values = values[pd.notna(values) & (values != "")]
            if feature.vocabulary == "hash":
                collisions[feature.name] = self._collisions(values, feature)
                continue
            counts = pd.Series(values, dtype=object).value_counts(sort=False)
            counts = counts[counts >= feature.min_frequency]
            # Most frequent first, ties by value: deterministic and stable.
            order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            if feature.max_tokens is not None:
                order = order[: feature.max_tokens]
            vocabularies[feature.name] = [value for value, _ in order]
        self.vocabularies_ = vocabularies
        self.stats_ = stats
        self.collision_report_ = collisions
        self._indexes = {}
        for name, report in collisions.items():
            logger.info(
                "Hashed feature '%s': %d distinct values in %d buckets "
                "(%d hashes), %.2f%% collide; %d buckets would keep 1%%.",
                name,
                report["distinct_values"],
                report["buckets"],
                report["num_hashes"],
                100 * report["colliding_share"],
                report["recommended_buckets"],
            )
        return self

    @staticmethod
    def _values(series, feature):
        if _is_sequence(feature):
            return np.asarray(
                pc.list_flatten(_tokens(series, feature)).to_numpy(
                    zero_copy_only=False
                ),
                dtype=object,
            )
        return canonical_strings(series)

    @staticmethod
    def _collisions(values, feature):
        distinct = pd.unique(values)
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
    def _numeric(series, name):
        if pd.api.types.is_bool_dtype(series.dtype):
            return series.to_numpy(dtype=np.float64)
        numbers = pd.to_numeric(series, errors="coerce")
        bad = numbers.isna() & series.notna()
        if bool(bad.any()):
            examples = series[bad].unique()[:5].tolist()
            raise ValueError(
                f"Column '{name}' must be numeric, but it holds non-numeric "
                f"values, e.g. {examples}. Fix: clean the column or declare "
                "it as a categorical feature."
            )
        return numbers.to_numpy(dtype=np.float64, na_value=np.nan)

    @classmethod
    def _boundaries(cls, series, feature):
        if feature.boundaries is not None:
            return list(feature.boundaries)
        values = cls._numeric(series, feature.name)
        values = values[~np.isnan(values)]
        if values.size == 0:
            raise ValueError(
                f"Column '{feature.name}' has no non-null values to fit on."
            )
        inner = np.linspace(0, 1, feature.num_bins + 1)[1:-1]
        # Repeated quantiles (a value held by many rows) would make empty
        # buckets; they merge instead.
        return np.unique(np.quantile(values, inner)).tolist()

    @staticmethod
    def _log(values, name):
        if bool((values[~np.isnan(values)] < 0).any()):
            raise ValueError(
                f"Column '{name}' has negative values, which "
                'transform="log" cannot take. Fix: use '
                'transform="standardize".'
            )
        return np.log1p(values)

    # -- transform -----------------------------------------------------------

    def transform(self, data):
        """Turns columns into model inputs.

        Args:
            data: pandas DataFrame, pyarrow Table or dict of columns holding
                every feature's column (extra columns are ignored).

        Returns:
            dict. Feature name -> numpy array: `int32` ids of shape `(n,)`
            for categorical features, `(n, max_length)` for multi-valued ones
            (0 = padding), `float32` of shape `(n,)` for numeric features.
        """
        self._check_fitted()
        return {
            feature.name: self.transform_column(
                feature.name, _column(data, feature.name)
            )
            for feature in self.features
        }

    def transform_column(self, name, values):
        """Transforms the values of one feature (see `transform`)."""
        self._check_fitted()
        feature = self.feature(name)
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        if isinstance(feature, BucketizedFeature):
            x = self._numeric(series, name)
            edges = np.asarray(self.stats_[name]["boundaries"], np.float64)
            ids = 1 + np.searchsorted(edges, x, side="right")
            return np.where(np.isnan(x), 0, ids).astype(np.int32)
        if isinstance(feature, NumericFeature):
            x = self._numeric(series, name)
            if feature.transform == "none":
                return np.nan_to_num(x, nan=0.0).astype(np.float32)
            if feature.transform == "log":
                x = self._log(x, name)
            mean, std = self.stats_[name]["mean"], self.stats_[name]["std"]
            x = np.where(np.isnan(x), mean, x)
            return ((x - mean) / std).astype(np.float32)
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
            return self._lookup_ints(feature, series.to_numpy())
        return self._lookup(feature, canonical_strings(series))

    def tokenize(self, name, values):
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

    def _lookup_ints(self, feature, values):
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
            ints = [int(v) for v in vocabulary.iloc[positions]]
            fits = np.array([-(2**63) <= v < 2**63 for v in ints], bool)
            ints = np.array(
                [v for v, ok in zip(ints, fits, strict=True) if ok], np.int64
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

    def _lookup(self, feature, strings):
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

    def get_config(self):
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
    def from_config(cls, config):
        version = config.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"Unsupported preprocessor format_version {version!r}; this "
                f"version of recsys reads format_version {FORMAT_VERSION}."
            )
        pre = cls(features=[feature_from_config(f) for f in config["features"]])
        if "vocabularies" in config:
            pre.vocabularies_ = config["vocabularies"]
            pre.stats_ = config["stats"]
            pre.collision_report_ = config.get("collision_report", {})
            pre._indexes = {}
        return pre

    def save(self, path):
        """Writes the preprocessor to `path` as JSON, atomically.

        The JSON goes to a new temporary file beside `path`, is flushed to
        disk and renamed over `path`; the directory entry is flushed too.

        Args:
            path: str. The `.json` file to write (replaced if it exists).
        """
        directory, name = os.path.split(os.path.abspath(path))
        # Exclusive, so the cleanup below removes only our own file; mode
        # 0666 less the umask (mkstemp's 0600 would hide a bundle's
        # preprocessor from a service running as another user).
        tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.get_config(), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        _fsync_directory(directory)

    @classmethod
    def load(cls, path):
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
