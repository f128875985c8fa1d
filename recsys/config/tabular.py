"""Config of `model.kind = "tabular"`: its sections and their checks.

A tabular run scores rows of a table (one rating, one click) from every
declared column. It splits the data by PROTOCOL.md's per-user temporal split
(`data.user`, `data.time`), so the test rows are each user's latest.
"""

import typing
from typing import Any
from typing import Literal

import pydantic
from pydantic import Field

from recsys.config.common import MAX_HISTORY
from recsys.config.common import NO_TIME
from recsys.config.common import InteractionsData
from recsys.config.common import KindConfig
from recsys.config.common import Number
from recsys.config.common import Optimizer
from recsys.config.common import PositiveInt
from recsys.config.common import Section
from recsys.config.common import Split
from recsys.config.common import check_distinct
from recsys.config.common import check_placeholders
from recsys.config.common import resolved_split
from recsys.config.common import seed_field
from recsys.config.common import timeless
from recsys.config.features import FeatureTables
from recsys.config.features import features_field
from recsys.config.features import missing_feature_table
from recsys.config.features import table_header
from recsys.errors import ConfigError

Task = Literal["auto", "regression", "binary", "multiclass"]
Interaction = Literal["mlp", "dcn", "dot"]
SUPPORTED_TASKS = typing.get_args(Task)
SUPPORTED_INTERACTIONS = typing.get_args(Interaction)
SUPPORTED_BASELINES = {
    "regression": ("bias", "linear_regression"),
    "binary": ("logistic_regression", "bias"),
    "multiclass": ("logistic_regression",),
}


def usual_baselines(task: str, *, with_ids: bool) -> list[str]:
    """The baseline a tabular run of `task` is read beside: user and item
    biases for a regression with ids, ridge without, logistic regression
    for classes (`evaluate.baselines = ["auto"]`, and `recsys init`'s)."""
    if task == "regression":
        return ["bias"] if with_ids else ["linear_regression"]
    return ["logistic_regression"]


class TabularData(InteractionsData):
    """`[data]`: the table, its id, time and label columns.

    A table of rows that are not (user, item) pairs (customers, loans)
    leaves `user` and `item` empty; its `split = "auto"` is `"time"` (the
    table's latest rows) with a `time` column, else `"random"`.
    """

    # Empty by default, unlike a two-tower's: the shortest tabular config
    # (a source and a label) is a table without ids, as most labelled
    # tables are (loans, customers).
    user: str = Field(
        default="",
        description=(
            'User id column; "" (with item = "", the default) for a table '
            "without ids."
        ),
    )
    item: str = Field(
        default="",
        description='Item id column; "" (the default) for a table without ids.',
    )
    time: str = Field(
        default="",
        description=(
            'Time column: orders each user\'s rows and the splits; "" (the '
            'default) for none: data.split = "random" or "column".'
        ),
    )
    label: str = Field(default="label", description="Label column.")
    label_threshold: Number = Field(
        default=0.5,
        description=(
            "A row is positive when label >= label_threshold (0.5 suits a "
            "0/1 or boolean label): the label of a binary task, and what "
            "enters the history (model.history_length). A binary label of "
            'two text values ("no" / "yes") needs none: the later in '
            "sorted order is positive."
        ),
    )

    @pydantic.model_validator(mode="before")
    @classmethod
    def _ids_without_time(cls, data: Any) -> Any:
        # Ids without times (ratings without timestamps): every row at one
        # time, split at random. A table without ids keeps `time = ""`.
        if isinstance(data, dict) and data.get("user"):
            return timeless(data)
        return data

    @pydantic.model_validator(mode="after")
    def _check_ids(self) -> "TabularData":
        check_placeholders("data", label=self.label)
        roles = {"user": self.user, "item": self.item, "time": self.time}
        for role, column in roles.items():
            if column and column == self.label:
                # Chile's `region` as user and label trained a model of
                # 30% accuracy without a word once feature tables were
                # written (init's "--user, --label" message otherwise).
                raise ConfigError(
                    f"data.label and data.{role} both name the column "
                    f"{column!r}: the model would read its own answer. Fix: "
                    f"set data.label to the column to predict, or data.{role} "
                    "to its own column."
                )
        if bool(self.user) != bool(self.item):
            # Rows of one kind of id (a household's purchases, a
            # patient's visits): that column is a feature of a table
            # without ids.
            named = self.user or self.item
            raise ValueError(
                f"data.user and data.item are both set or both empty (a "
                f"table without ids). Received: user={self.user!r}, "
                f"item={self.item!r}. Fix: name the other id column; or, "
                f'for rows of {named!r} alone, set data.user = "" and '
                f'data.item = "" and keep "{named}" among model.features '
                "(a categorical feature: its own vector)."
            )
        split = resolved_split(self.split, user=self.user, time=self.time)
        if not self.user and split == "user_time":
            raise ValueError(
                'data.split = "user_time" holds out each user\'s latest rows, '
                'and data.user is "" (a table without ids). Fix: data.split '
                '= "time" (the latest rows of the table), "random" or '
                '"column".'
            )
        if not self.time and split not in ("random", "column", "none"):
            raise ValueError(
                f'data.split = "{self.split}" needs a time column, and '
                'data.time is "". Fix: set data.split = "random" (or '
                '"column"), or name the time column.'
            )
        return self

    display: str = Field(
        default="",
        description='Item column shown by `recsys recommend` ("" for none).',
    )


class TabularModelSection(Section):
    """`[model]`: the task, the feature interaction and its regularization."""

    kind: Literal["tabular"] = Field(
        default="tabular",
        description="The model kind: rows -> a rating or a class.",
    )
    task: Task = Field(
        default="auto",
        description=(
            '"regression", "binary" or "multiclass"; "auto" (the default) '
            "is recsys init's guess from the label column when training "
            "starts: two values binary, other numbers regression, other "
            "text multiclass (the bundle's config records it)."
        ),
    )
    features: list[str] = Field(
        default=[],
        description=(
            "Feature names the model reads; [] reads every table. Without "
            "[features] tables, the columns to read, each declared as "
            "`recsys init` would."
        ),
    )
    history_length: int = Field(
        default=0,
        ge=0,
        le=MAX_HISTORY,
        description=(
            "Also read the user's latest positive items before each row (0 "
            "for none, at most 1,000); needs the item column as a "
            "categorical feature."
        ),
    )
    interaction: Interaction = Field(
        default="mlp",
        description='"mlp", "dcn" (DCN-v2 cross layers) or "dot" (DLRM).',
    )
    hidden_units: list[PositiveInt] = Field(
        default=[64, 32], description="Units of the top MLP's layers."
    )
    num_cross_layers: int = Field(
        default=2, description='Cross layers ("dcn"; >= 1 there).'
    )
    projection_dim: int = Field(
        default=0, ge=0, description="Low-rank cross layers; 0 is full rank."
    )
    dot_dim: int = Field(
        default=16, ge=1, description='Size of the vectors dotted ("dot").'
    )
    bottom_units: list[PositiveInt] = Field(
        default=[],
        description="Units of the bottom MLP on the numeric features.",
    )
    wide: bool = Field(
        default=True,
        description="Per-value bias terms added to the output (wide & deep).",
    )
    embedding_dim: int = Field(
        default=0,
        ge=0,
        description="Size of every table; 0 applies each feature's own rule.",
    )
    dropout: Number = Field(
        default=0.0, ge=0, lt=1, description="Dropout rate of the MLP layers."
    )
    l2: Number = Field(
        default=0.0,
        ge=0,
        description="L2 on the looked-up rows of every table.",
    )
    embeddings_l2: Number = Field(
        default=0.0,
        ge=0,
        description=(
            "L2 on every table weight, the same for rare and frequent values."
        ),
    )
    auxiliary_target: str = Field(
        default="",
        description=(
            "A numeric column learnt as a second, regression task beside the "
            'main one ("" for none); used in training only.'
        ),
    )
    auxiliary_weight: Number = Field(
        default=0.5, ge=0, description="Weight of the auxiliary task's loss."
    )


class TabularTrain(Section):
    """`[train]`: early stopping, refit and optimization."""

    epochs: PositiveInt | Literal["auto"] = Field(
        default="auto",
        description=(
            "Most epochs; training stops when the loss on a validation carve "
            "of the training split (its users' latest fifth) has not "
            'improved for `patience` epochs. "auto": for a table under '
            "20,000 rows (an epoch is a handful of steps) 100, or as many "
            "as make 2,000 steps where that is more; else 20."
        ),
    )
    patience: int = Field(
        default=2,
        ge=0,
        description=(
            "Epochs without improvement before stopping; at least 30 "
            "steps' worth (a table of 3 steps an epoch waits 10 epochs)."
        ),
    )
    refit: bool = Field(
        default=True,
        description=(
            "Then train again on the whole training split for the best "
            "number of epochs."
        ),
    )
    batch_size: PositiveInt | Literal["auto"] = Field(
        default="auto",
        description=(
            'Rows per step. "auto": 256, or for a table whose model reads '
            "more numbers a row than it has rows to fit, the largest of "
            "128 / 64 / 32 giving 16 steps an epoch."
        ),
    )
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
            "JAX: a step updates only the table rows its batch looked up "
            "(recsys.models.sparse_updates; Adam is then lazy Adam; tables "
            "under 16 rows per lookup of a step stay dense)."
        ),
    )


class TabularEvaluate(Section):
    """`[evaluate]`: the split reported and the baselines beside it."""

    split: Split = Field(
        default="test",
        description=(
            '"test" reports the protocol test split; "validation" carves a '
            "validation part out of the training part by `data.split`'s own "
            "rule and `data.test_fraction` (each user's latest rows, random "
            'rows, or the rows `data.split_column` marks "validation"), '
            "trains on the rest and reports that, for tuning."
        ),
    )
    baselines: list[str] = Field(
        default=["auto"],
        description=(
            "Trained and scored in the same run (recsys.baselines.tabular): "
            '"bias" (global mean + user and item biases) for regression and '
            'binary tasks, "logistic_regression" (one-hot / hashed '
            'features) for classification, "linear_regression" (ridge on '
            'the same features) for regression; ["auto"] is the task\'s '
            'usual one ("bias" for a regression with ids, '
            '"linear_regression" without, "logistic_regression" for '
            "classes); [] for none."
        ),
        json_schema_extra={
            "items": {
                "type": "string",
                "enum": [
                    "auto",
                    "bias",
                    "logistic_regression",
                    "linear_regression",
                ],
            }
        },
    )


class TabularConfig(KindConfig):
    """A whole `model.kind = "tabular"` config.

    Example:

    ```python
    config = recsys.config.typed_config(
        recsys.load_config("configs/movielens_rating.toml")
    )
    config.model.interaction  # "dcn"
    ```
    """

    data: TabularData = TabularData()
    features: FeatureTables = features_field()
    model: TabularModelSection = TabularModelSection()
    train: TabularTrain = TabularTrain()
    evaluate: TabularEvaluate = TabularEvaluate()

    @pydantic.model_validator(mode="before")
    @classmethod
    def _usual_baseline(cls, config: Any) -> Any:
        """`evaluate.baselines = ["auto"]` (the default): the task's usual
        baseline, as `recsys init` writes it, so a run says where the model
        stands."""
        if not isinstance(config, dict):
            return config
        evaluate = config.get("evaluate", {})
        model, data = config.get("model", {}), config.get("data", {})
        if not all(isinstance(s, dict) for s in (evaluate, model, data)):
            return config
        if evaluate.get("baselines", ["auto"]) != ["auto"]:
            return config
        defaults = TabularModelSection.model_fields, TabularData.model_fields
        task = model.get("task", defaults[0]["task"].default)
        if task == "auto":
            # Resolved with the task, from the table (`with_written_features`).
            return config
        user = data.get("user", defaults[1]["user"].default)
        usual = usual_baselines(task, with_ids=bool(user))
        return {**config, "evaluate": {**evaluate, "baselines": usual}}

    def model_features(self) -> list[str]:
        """The feature names the model reads, in declaration order."""
        return self.model.features or list(self.features)

    def _feature_lines(self, name: str) -> str:
        """Where the config declares feature `name`, for an error's fix."""
        if name in self.model.features:
            return f"{table_header(name)} and '{name}' from model.features"
        return table_header(name)

    @pydantic.model_validator(mode="after")
    def _check_columns(self) -> "TabularConfig":
        model, features = self.model, self.features
        if model.history_length and self.data.time == NO_TIME:
            raise ConfigError(
                "model.history_length > 0 reads each user's earlier rows, "
                'and data.time = "" has no order. Fix: name the time column, '
                "or model.history_length = 0."
            )
        check_distinct("model.features", model.features)
        if not features:
            # Training reads the columns `recsys init` would declare, or
            # those of model.features, each as init would declare it
            # (`recsys.init_config.with_written_features`).
            if self.data.label in model.features:
                raise ConfigError(
                    f"The label column '{self.data.label}' is in "
                    "model.features: the model would read its own answer. "
                    f"Fix: remove '{self.data.label}' from model.features."
                )
            return self
        for name in model.features:
            if name not in features:
                raise missing_feature_table("model.features", name, features)
        label, item = self.data.label, self.data.item
        reads = self.model_features()
        if model.history_length and (
            not item
            or item not in reads
            or features[item].get("kind") != "categorical"
        ):
            raise ConfigError(
                f"model.history_length > 0 needs the item column '{item}' as "
                f"a categorical feature the model reads ({table_header(item)} "
                'with kind = "categorical").'
            )
        auxiliary = model.auxiliary_target
        if auxiliary and auxiliary in reads:
            raise ConfigError(
                f"model.auxiliary_target '{auxiliary}' is also a feature: the "
                "model would read the answer of its auxiliary task. Fix: "
                f"remove {self._feature_lines(auxiliary)} or choose another "
                "target."
            )
        if label in reads:
            raise ConfigError(
                f"The label column '{label}' is also a feature: the model "
                "would read its own answer. Fix: remove "
                f"{self._feature_lines(label)}."
            )
        if model.task == "auto":
            # Checked again once the table says the task.
            return self._check_cross_layers()
        valid = SUPPORTED_BASELINES[model.task]
        usual = (
            "linear_regression"
            if model.task == "regression"
            else "logistic_regression"
        )
        for name in self.evaluate.baselines:
            if name not in valid:
                raise ConfigError(
                    f"evaluate.baselines: {name!r} is not a baseline of a "
                    f"{model.task} task. Valid: {valid}. Fix: baselines = "
                    f'["{usual}"].'
                )
            if name == "bias" and not self.data.user:
                raise ConfigError(
                    'evaluate.baselines: "bias" learns a bias per user and '
                    'item, and this table has none (data.user = ""). Fix: '
                    f'use "{usual}".'
                )
        return self._check_cross_layers()

    def _check_cross_layers(self) -> "TabularConfig":
        model = self.model
        if model.interaction == "dcn" and model.num_cross_layers < 1:
            raise ConfigError(
                "model.num_cross_layers must be >= 1 for a dcn interaction. "
                f"Received: {model.num_cross_layers}"
            )
        return self


def model_features(config: dict) -> list[str]:
    """The feature names a tabular model reads, in declaration order.

    Args:
        config: dict. A validated tabular config (`load_config`).

    Returns:
        list of str.
    """
    return config["model"]["features"] or list(config["features"])
