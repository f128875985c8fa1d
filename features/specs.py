"""Feature specs: what each input column is and how it becomes model input.

A spec is a small dataclass whose config is plain JSON, so a TOML table, the
saved `preprocessor.json` and the Python object map onto each other field for
field.

Id layout of categorical features (exact and hashed alike):
    `0` is padding / missing (masked in pooled embeddings; for single-valued
    columns it is the row that nulls map to); ids `1 .. num_oov_buckets` are
    out-of-vocabulary buckets (exact vocabularies only); the vocabulary or the
    hash buckets follow.

Default embedding dimension: `min(64, ceil(6 * input_dim ** 0.25))`, the
"sixth root rule" of thumb from Google's feature-column guidance (6 times
the fourth root of the number of rows), capped at 64.
"""

import dataclasses
import difflib
import math
from typing import Any
from typing import ClassVar

SUPPORTED_VOCABULARIES = ("exact", "hash")
# The most hash buckets: ids (padding 0, buckets 1..num_buckets) are int32.
MAX_BUCKETS = 2**31 - 2
SUPPORTED_TOKENIZERS = ("words", "text")
SUPPORTED_COMBINERS = ("mean", "sum")
SUPPORTED_TRANSFORMS = ("standardize", "log", "none")
SUPPORTED_MISSING = ("mean", "indicator")
SUPPORTED_HASH_COMBINERS = ("sum", "concat")


def default_embedding_dim(input_dim: int) -> int:
    """The documented default embedding size for a table of `input_dim` rows."""
    return int(min(64, math.ceil(6 * input_dim**0.25)))


# Quantile buckets of a bucketized feature: past this, most are empty.
MAX_NUM_BINS = 100_000


def _check_positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(_choice_error(name, value, choices))


def _choice_error(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """The message for a `value` not among `choices`, with the nearest."""
    import difflib

    near = difflib.get_close_matches(str(value), choices, n=1)
    return f"`{name}` must be one of {choices}. Received: {name}={value!r}" + (
        f". Fix: {name} = {near[0]!r}?" if near else ""
    )


class FeatureSpec:
    """What every feature spec shares: its name check and (de)serialization.

    Subclasses are dataclasses with a `name` field and a `kind` class
    attribute; their config is `{"kind": ..., **fields}`.
    """

    name: str
    kind: ClassVar[str]

    def _check_name(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(
                "`name` must be a non-empty string. "
                f"Received: name={self.name!r}"
            )

    def get_config(self) -> dict[str, Any]:
        """The spec as plain JSON-able data: `{"kind": ..., **fields}`."""
        config: dict[str, Any] = {"kind": self.kind}
        config.update(dataclasses.asdict(self))  # type: ignore[call-overload]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "FeatureSpec":
        """The spec of a `get_config` dict."""
        config = dict(config)
        config.pop("kind", None)
        return cls(**config)


@dataclasses.dataclass
class CategoricalFeature(FeatureSpec):
    """A single-valued categorical column (an id, a category).

    Attributes:
        name: str. Column name in the input frame.
        vocabulary: str. `"exact"` learns the distinct values in `fit`;
            `"hash"` maps values to `num_buckets` buckets with a stable hash
            and needs no fit. Defaults to `"exact"`.
        num_buckets: int. Hash buckets (`vocabulary="hash"` only).
        min_frequency: int. Values seen fewer times in `fit` are
            out-of-vocabulary. Defaults to `1`.
        max_tokens: int or None. Keep at most this many most frequent values.
        num_oov_buckets: int. Buckets that unknown values hash into
            (`vocabulary="exact"` only). Defaults to `1`.
        embedding_dim: int or None. Embedding size; `None` applies the
            default rule of this module.
        num_hashes: int. Rows of the shared table each value looks up
            (`vocabulary="hash"` only). Above 1, the preprocessor keeps a
            31-bit fingerprint per value and the model's
            `MultiHashEmbedding` hashes it into `num_buckets` rows
            `num_hashes` times: far fewer values are merged than with one
            hash into as many rows. Defaults to `1`.
        hash_combiner: str. How a value's rows combine when
            `num_hashes > 1`: `"sum"` or `"concat"`. Defaults to `"sum"`.

    Example:

    ```python
    CategoricalFeature("userId")
    CategoricalFeature("zip", vocabulary="hash", num_buckets=100_000)
    CategoricalFeature("itemId", vocabulary="hash", num_buckets=250_000,
                       num_hashes=2)
    ```
    """

    name: str
    vocabulary: str = "exact"
    num_buckets: int | None = None
    min_frequency: int = 1
    max_tokens: int | None = None
    num_oov_buckets: int = 1
    embedding_dim: int | None = None
    num_hashes: int = 1
    hash_combiner: str = "sum"

    kind = "categorical"

    def __post_init__(self) -> None:
        self._check_name()
        _check_choice("vocabulary", self.vocabulary, SUPPORTED_VOCABULARIES)
        if self.vocabulary == "hash":
            if self.num_buckets is None:
                raise ValueError(
                    f"Feature '{self.name}': `num_buckets` is required when "
                    'vocabulary="hash". Received: num_buckets=None'
                )
            _check_positive("num_buckets", self.num_buckets)
            if self.num_buckets > MAX_BUCKETS:
                # Ids are int32: more buckets wrapped them to negatives.
                raise ValueError(
                    f"Feature '{self.name}': `num_buckets` can be at most "
                    f"{MAX_BUCKETS:,} (ids are 32-bit integers). Received: "
                    f"num_buckets={self.num_buckets:,}. Fix: fewer buckets; "
                    "a table of that many rows would not fit in memory "
                    "anyway."
                )
        _check_positive("min_frequency", self.min_frequency)
        _check_positive("max_tokens", self.max_tokens, allow_none=True)
        _check_positive("num_oov_buckets", self.num_oov_buckets)
        _check_positive("embedding_dim", self.embedding_dim, allow_none=True)
        _check_positive("num_hashes", self.num_hashes)
        _check_choice(
            "hash_combiner", self.hash_combiner, SUPPORTED_HASH_COMBINERS
        )
        if self.num_hashes > 1 and self.vocabulary != "hash":
            raise ValueError(
                f"Feature '{self.name}': `num_hashes` > 1 needs "
                'vocabulary="hash" and `num_buckets`. Received: '
                f"vocabulary={self.vocabulary!r}, num_hashes={self.num_hashes}"
            )


@dataclasses.dataclass
class MultiCategoricalFeature(CategoricalFeature):
    """A multi-valued categorical column, such as `"Action|Comedy"` or words.

    Values are split with `separator`, or tokenized into lowercase words with
    `tokenizer="words"`, then padded with `0` (masked) or truncated to
    `max_length`, and pooled by the embedding layer with `combiner`.

    Attributes:
        separator: str or None. Literal separator between values.
        tokenizer: str or None. `"words"` lowercases and splits on anything
            that is not a letter or digit.
        max_length: int. Values kept per row. Defaults to `8`.
        combiner: str. Pooling, `"mean"` or `"sum"`. Defaults to `"mean"`.
        (The other attributes are those of `CategoricalFeature`.)

    Example:

    ```python
    MultiCategoricalFeature("genres", separator="|")
    MultiCategoricalFeature("title", tokenizer="words", vocabulary="hash",
                            num_buckets=20_000)
    ```
    """

    separator: str | None = None
    tokenizer: str | None = None
    max_length: int = 8
    combiner: str = "mean"

    kind = "multi_categorical"

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.separator is None) == (self.tokenizer is None):
            raise ValueError(
                f"Feature '{self.name}': set exactly one of `separator` and "
                f"`tokenizer`. Received: separator={self.separator!r}, "
                f"tokenizer={self.tokenizer!r}"
            )
        if self.separator is not None and (
            not isinstance(self.separator, str) or not self.separator
        ):
            raise ValueError(
                "`separator` must be a non-empty string. "
                f"Received: separator={self.separator!r}"
            )
        if self.tokenizer is not None:
            _check_choice("tokenizer", self.tokenizer, SUPPORTED_TOKENIZERS)
        _check_positive("max_length", self.max_length)
        _check_choice("combiner", self.combiner, SUPPORTED_COMBINERS)


@dataclasses.dataclass
class NumericFeature(FeatureSpec):
    """A numeric column, normalized with statistics learned in `fit`.

    Nulls are imputed with the training mean (0 after standardization), or
    kept as NaN for a model that reads them (`missing="indicator"`).
    Datetimes are read as Unix seconds, whatever their resolution or zone.

    Attributes:
        name: str. Column name in the input frame.
        transform: str. `"standardize"` ((x - mean) / std), `"log"`
            (standardized `log1p(x)`, for counts and other heavy tails;
            `-log1p(-x)` below 0) or `"none"`. Defaults to `"standardize"`;
            the tabular kind chooses `"log"` (non-negative values skewed
            above 2) or `"standardize"` from the training values.
        missing: str. `"mean"` (nulls become the training mean) or
            `"indicator"` (nulls stay NaN; a tabular model reads them as 0
            beside a 0/1 "missing" input, as an empty cell often says
            something: a loan never late, an income not given). Defaults
            to `"mean"`; the tabular kind chooses `"indicator"` for a
            column with nulls among its training rows when its table does
            not say.

    Example:

    ```python
    NumericFeature("year")
    ```
    """

    name: str
    transform: str = "standardize"
    missing: str = "mean"

    kind = "numeric"

    def __post_init__(self) -> None:
        self._check_name()
        _check_choice("transform", self.transform, SUPPORTED_TRANSFORMS)
        _check_choice("missing", self.missing, SUPPORTED_MISSING)


# The longest token sequence a text feature keeps.
MAX_SEQUENCE_LENGTH = 10_000


@dataclasses.dataclass
class TextFeature(CategoricalFeature):
    """A text column as a fixed-length sequence of token ids.

    The `"text"` tokenizer lowercases; replaces URLs (`http(s)://...`,
    `www....`) with the token `xxurl` and numbers (`2016`, `3.5`) with `xxnum`;
    makes every punctuation mark its own token (`"great!!"` -> `great ! !`,
    `"#maga"` -> `# maga`), because in short texts punctuation carries
    signal; and splits on whitespace. Tokens keep their order, the sequence is
    cut after `sequence_length` tokens and padded with `0` at the end. Token
    ids follow `CategoricalFeature`'s layout: `0` padding, then
    `num_oov_buckets` out-of-vocabulary ids, then the vocabulary, most
    frequent first (`vocabulary="hash"` gives an open vocabulary instead).

    N-gram tokens (fastText's features) follow the words in the sequence:
    with `ngrams = 2` the word bigrams (`"great rally"`), then with
    `char_ngrams = [lo, hi]` the character n-grams of lengths `lo..hi` of
    each word marked with its boundaries (`"<ok>"` -> `<o`, `ok`, `k>`, ...
    for `[2, 3]`). They enter the same vocabulary (capped by `max_tokens`,
    most frequent first), so `sequence_length` must hold them.

    Attributes:
        sequence_length: int. Tokens kept per text (at most 10,000).
            Defaults to `40`.
        max_tokens: int or None. Vocabulary size cap. Defaults to `20000`.
        ngrams: int. Word n-grams appended up to this length (`1` = words
            only). Defaults to `1`.
        char_ngrams: list of int or None. `[lo, hi]`: character n-grams of
            each word appended, lengths `lo` to `hi`. Defaults to `None`.
        (The other attributes are those of `CategoricalFeature`;
        `min_frequency` is the minimum token count.)

    Example:

    ```python
    TextFeature("text", sequence_length=40, max_tokens=20_000)
    ```
    """

    max_tokens: int | None = 20_000
    sequence_length: int = 40
    ngrams: int = 1
    char_ngrams: list | None = None

    kind = "text"
    tokenizer = "text"
    separator = None
    combiner = "mean"

    @property
    def max_length(self) -> int:
        return self.sequence_length

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive("sequence_length", self.sequence_length)
        if self.sequence_length > MAX_SEQUENCE_LENGTH:
            # Every text is an int32 row of this length, in memory at once.
            raise ValueError(
                f"Feature '{self.name}': `sequence_length` must be at most "
                f"{MAX_SEQUENCE_LENGTH:,} tokens. "
                f"Received: sequence_length={self.sequence_length}"
            )
        _check_positive("ngrams", self.ngrams)
        if self.char_ngrams is not None:
            bounds = self.char_ngrams
            if (
                not isinstance(bounds, (list, tuple))
                or len(bounds) != 2
                or not all(
                    isinstance(n, int) and not isinstance(n, bool) and n >= 1
                    for n in bounds
                )
                or bounds[0] > bounds[1]
            ):
                raise ValueError(
                    "`char_ngrams` must be [lo, hi], positive integers with "
                    f"lo <= hi. Received: char_ngrams={bounds!r}"
                )
            self.char_ngrams = list(bounds)


@dataclasses.dataclass
class BucketizedFeature(FeatureSpec):
    """A numeric column cut into buckets, each bucket embedded like an id.

    Boundaries are the given `boundaries`, or the `num_bins` quantiles of the
    training values learned in `fit` (repeated quantiles merge). Ids: `0` is
    null, `1` is below the first boundary, `len(boundaries) + 1` at or above
    the last one. A bucket embedding lets a model learn a non-monotonic
    effect (ratings by release year) that a single normalized number cannot.

    Attributes:
        name: str. Column name in the input frame.
        num_bins: int. Quantile buckets learned in `fit`. Defaults to `10`.
        boundaries: list of float or None. Fixed, increasing boundaries
            (then nothing is learned). Defaults to `None`.
        embedding_dim: int or None. Embedding size; `None` applies the
            default rule of this module.

    Example:

    ```python
    BucketizedFeature("year", num_bins=20)
    BucketizedFeature("age", boundaries=[18, 25, 35, 50, 65])
    ```
    """

    name: str
    num_bins: int = 10
    boundaries: list | None = None
    embedding_dim: int | None = None

    kind = "bucketized"

    def __post_init__(self) -> None:
        self._check_name()
        _check_positive("num_bins", self.num_bins)
        if self.num_bins > MAX_NUM_BINS:
            # 10**11 asked numpy for 745 GiB, and the out-of-memory fix
            # named other keys.
            raise ValueError(
                f"Feature '{self.name}': `num_bins` must be at most "
                f"{MAX_NUM_BINS:,} (buckets of the training rows' "
                f"quantiles). Received: num_bins={self.num_bins!r}"
            )
        _check_positive("embedding_dim", self.embedding_dim, allow_none=True)
        if self.boundaries is not None:
            values = list(self.boundaries)
            numeric = all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in values
            )
            if not values or not numeric or values != sorted(set(values)):
                raise ValueError(
                    f"Feature '{self.name}': `boundaries` must be a non-empty "
                    "list of strictly increasing numbers. "
                    f"Received: boundaries={self.boundaries!r}"
                )
            self.boundaries = [float(v) for v in values]


FEATURE_KINDS = {
    cls.kind: cls
    for cls in (
        CategoricalFeature,
        MultiCategoricalFeature,
        NumericFeature,
        TextFeature,
        BucketizedFeature,
    )
}


def feature_from_config(config: dict[str, Any]) -> FeatureSpec:
    """Builds a feature spec from its config (a TOML table or JSON object).

    Args:
        config: dict. Must hold `"name"` and `"kind"`, one of
            `"categorical"`, `"multi_categorical"`, `"numeric"`.

    Returns:
        The feature spec.
    """
    kind = config.get("kind")
    name = config.get("name", "?")
    if kind not in FEATURE_KINDS:
        choices = tuple(FEATURE_KINDS)
        raise ValueError(
            f"Feature '{name}': {_choice_error('kind', kind, choices)}"
        )
    cls = FEATURE_KINDS[kind]
    known = {f.name for f in dataclasses.fields(cls)} | {"kind"}
    unknown = sorted(set(config) - known)
    if unknown:
        fixes = [
            f"{key!r} -> {close[0]!r}"
            for key in unknown
            if (close := difflib.get_close_matches(key, sorted(known), n=1))
        ]
        raise ValueError(
            f"Feature '{name}' ({kind}): unknown keys {unknown}. "
            f"Valid keys: {sorted(known)}"
            + (f". Fix: {', '.join(fixes)}." if fixes else "")
        )
    return cls.from_config(config)
