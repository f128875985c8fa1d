"""`TabularModel`: embedded columns -> interaction block -> task head."""

from typing import Any

import keras
import numpy as np
from keras import ops

from recsys.layers.auxiliary_head import AuxiliaryHead
from recsys.layers.cross_network import CrossNetwork
from recsys.layers.dlrm_interaction import DLRMInteraction
from recsys.layers.embedding_stack import EmbeddingStack
from recsys.layers.pooled_embedding import PooledEmbedding
from recsys.layers.wide_biases import WideBiases
from recsys.models.sparse_updates import SparseRowUpdates
from recsys.models.tower import check_input_types
from recsys.names import AUXILIARY

SUPPORTED_INTERACTIONS = ("mlp", "dcn", "dot")
SUPPORTED_TASKS = ("binary", "regression", "multiclass")


def _check_units(name: str, units: list[int]) -> None:
    if not all(isinstance(u, int) and u > 0 for u in units):
        raise ValueError(
            f"`{name}` must be a list of positive integers. "
            f"Received: {name}={list(units)}"
        )


def interaction_config(interaction: str | dict[str, Any]) -> dict[str, Any]:
    """`interaction` as a dict: `{"name": ..., **block arguments}`.

    Args:
        interaction: str or dict. A name of `SUPPORTED_INTERACTIONS`, or a
            dict with that `"name"` and the block's arguments:
            `num_layers`, `projection_dim` for `"dcn"` (`CrossNetwork`);
            `dot_dim`, `bottom_units` for `"dot"` (`DLRMInteraction`).

    Returns:
        A new dict with a `"name"` key.

    Raises:
        ValueError: for an unsupported name.
    """
    config = (
        {"name": interaction}
        if isinstance(interaction, str)
        else dict(interaction)
    )
    name = config.get("name")
    if name not in SUPPORTED_INTERACTIONS:
        raise ValueError(
            f"`interaction` must be one of {SUPPORTED_INTERACTIONS}, or a "
            "dict with one of them as its `name`. "
            f"Received: interaction={interaction!r}"
        )
    return config


def interaction_block(
    interaction: dict[str, Any],
    input_dims: list[int],
    num_numeric: int,
    dtype: Any = None,
) -> keras.layers.Layer | None:
    """The layer of an interaction (`None` for `"mlp"`: a concatenation).

    Args:
        interaction: dict. An `interaction_config`.
        input_dims: list of int. Size of each categorical vector.
        num_numeric: int. Number of numeric columns.
        dtype: the layer's dtype policy (`None`: the global one).

    Returns:
        A `CrossNetwork`, a `DLRMInteraction` or `None`.
    """
    options = {k: v for k, v in interaction.items() if k != "name"}
    if interaction["name"] == "dcn":
        return CrossNetwork(**options, dtype=dtype, name="cross_network")
    if interaction["name"] == "dot":
        return DLRMInteraction(
            input_dims,
            num_numeric,
            **options,
            dtype=dtype,
            name="dlrm_interaction",
        )
    if options:
        raise ValueError(
            'interaction="mlp" takes no options. '
            f"Received: interaction={interaction!r}"
        )
    return None


@keras.saving.register_keras_serializable(package="recsys")
class TabularModel(SparseRowUpdates, keras.Model):
    """Scores rows of structured columns: ranking, rating, classification.

    Each categorical column (single-valued, multi-valued or bucketized) has
    its own `PooledEmbedding` table; numeric columns enter as they are (a
    column flagged `"missing"` as 0 where it is NaN, with a 0/1 input
    beside it saying so). The feature vectors then meet in an interaction
    block chosen by `interaction`, whose output goes through the ReLU
    `hidden_units`:

    - `"mlp"`: the concatenated vectors;
    - `"dcn"`: DCN-v2, a `CrossNetwork` of `keras_rs.layers.FeatureCross`
      layers over the concatenation (the "stacked" DCN);
    - `"dot"`: DLRM, a `DLRMInteraction`: the pairwise dot products of the
      vectors, the numeric columns brought to one vector by a bottom MLP.

    With `wide=True` a `WideBiases` part gives each categorical column a
    one-number table (a per-value bias, as in wide & deep and factorization
    machines) added to the output logit: the per-user and per-item biases
    of a rating model. The head gives a probability (`"binary"`, shape
    `(batch, 1)`), a value (`"regression"`, `(batch, 1)`) or class
    probabilities (`"multiclass"`, `(batch, num_classes)`); an
    `AuxiliaryHead` can learn a second, regression task beside it.

    Args:
        inputs: list of dict. One entry per column:
            `{"name", "type": "embedding", "input_dim", "output_dim",
            "combiner"}` or `{"name", "type": "numeric"}` (with
            `"missing": True`, its NaN values are read as missing).
        interaction: str or dict. One of `SUPPORTED_INTERACTIONS`, or a dict
            with that `"name"` and the block's arguments: `{"name": "dcn",
            "num_layers": 2, "projection_dim": None}` (`CrossNetwork`) or
            `{"name": "dot", "dot_dim": 16, "bottom_units": []}`
            (`DLRMInteraction`). Defaults to `"mlp"`.
        task: str. One of `SUPPORTED_TASKS`. Defaults to `"binary"`.
        num_classes: int. Classes of a `"multiclass"` task. Defaults to `2`.
        hidden_units: list of int. ReLU layers after the interaction.
            Defaults to `(64, 32)`.
        dropout: float. Dropout after each hidden layer. Defaults to `0.0`.
        wide: bool. Add per-value bias terms (`WideBiases`). Defaults to
            `True`.
        class_biases: bool. With a `"multiclass"` task, one bias per class
            for each value (the wide part then moves the class
            probabilities; a shared bias changes none). Defaults to `False`
            (models saved before it).
        stacked: bool. Keep the columns' tables (and bias tables) as one
            table per vector width (`EmbeddingStack`): one lookup and one
            update for all columns, so compiling costs about the same for
            300 columns as for 30. Defaults to `False` (one
            `PooledEmbedding` per column: models saved before it).
        l2: float. L2 penalty on the looked-up rows of every table (bias
            tables included), averaged over the batch: a value's penalty
            grows with its frequency. Defaults to `0.0`.
        embeddings_l2: float. L2 penalty on every weight of every table
            (Keras `embeddings_regularizer`), the same for rare and frequent
            values, as in a regularized logistic regression. Defaults to
            `0.0`.
        auxiliary_weight: float. Weight of the `AuxiliaryHead`'s mean
            squared error in the loss: the head predicts the `AUXILIARY`
            input (e.g. the rating behind a "liked" label) from the same
            hidden layers; batches without it (prediction, validation)
            score the main task alone. `0` for none. Defaults to `0.0`.
        auxiliary_mean: float. Starting value of the auxiliary head: the
            target's training mean. Defaults to `0.0`.
        output_scale: float. A `"regression"` output is the head's times
            this: with the labels' standard deviation, the layers learn in
            standard units whatever the label's (prices in the hundred
            thousands train as fast as ratings). Defaults to `1.0`.

    Input shape:
        dict of column name -> `(batch,)` or `(batch, length)` tensor.

    Output shape:
        `(batch, 1)` for `"binary"` and `"regression"`,
        `(batch, num_classes)` for `"multiclass"`.

    Example:

    ```python
    model = TabularModel(
        [{"name": "userId", "type": "embedding", "input_dim": 672,
          "output_dim": 16},
         {"name": "year", "type": "numeric"}],
        interaction={"name": "dcn", "num_layers": 2},
        task="binary",
    )
    model.compile(optimizer="adam", loss=model.default_loss())
    model.fit({"userId": ids, "year": years}, labels)
    ```
    """

    def __init__(
        self,
        inputs: list[dict[str, Any]],
        interaction: str | dict[str, Any] = "mlp",
        task: str = "binary",
        num_classes: int = 2,
        hidden_units: list[int] | tuple[int, ...] = (64, 32),
        dropout: float = 0.0,
        wide: bool = True,
        class_biases: bool = False,
        stacked: bool = False,
        l2: float = 0.0,
        embeddings_l2: float = 0.0,
        auxiliary_weight: float = 0.0,
        auxiliary_mean: float = 0.0,
        output_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.inputs_config = [dict(spec) for spec in inputs]
        self.interaction = interaction_config(interaction)
        self.task = task
        self.num_classes = num_classes
        self.hidden_units = list(hidden_units)
        self.dropout = dropout
        self.wide = wide
        self.class_biases = class_biases
        self.stacked = stacked
        self.l2 = l2
        self.embeddings_l2 = embeddings_l2
        self.auxiliary_weight = auxiliary_weight
        self.auxiliary_mean = auxiliary_mean
        self.output_scale = output_scale
        self._validate()
        self.feature_names = [spec["name"] for spec in self.inputs_config]
        embedded = [s for s in self.inputs_config if s["type"] == "embedding"]
        self.embedded_names = [s["name"] for s in embedded]
        self.numeric_names = [
            s["name"] for s in self.inputs_config if s["type"] == "numeric"
        ]
        # Numeric columns whose NaN cells also enter as a 0/1 input.
        self.indicator_names = [
            s["name"]
            for s in self.inputs_config
            if s["type"] == "numeric" and s.get("missing")
        ]
        regularizer = (
            keras.regularizers.L2(embeddings_l2) if embeddings_l2 else None
        )
        # The sublayers are created in this order, and built in `build`,
        # so that each draws the same seed from Keras' seed sequence: the
        # trained numbers depend on it.
        self.embeddings: list[Any] | EmbeddingStack = (
            EmbeddingStack(
                embedded,
                embeddings_regularizer=regularizer,
                dtype=self.dtype_policy,
                name="embedding_stack",
            )
            if stacked and embedded
            else [
                PooledEmbedding(
                    s["input_dim"],
                    s["output_dim"],
                    combiner=s.get("combiner", "mean"),
                    embeddings_regularizer=regularizer,
                    dtype=self.dtype_policy,
                    name=f"{s['name']}_embedding",
                )
                for s in embedded
            ]
        )
        units = num_classes if class_biases and task == "multiclass" else 1
        self.wide_biases: Any = None
        if wide and stacked and embedded:
            self.wide_biases = EmbeddingStack(
                embedded,
                output_dim=units,
                embeddings_initializer="zeros",
                embeddings_regularizer=regularizer,
                dtype=self.dtype_policy,
                name="wide_biases",
            )
        elif wide:
            self.wide_biases = WideBiases(
                embedded,
                regularizer,
                units=units,
                dtype=self.dtype_policy,
                name="wide_biases",
            )
        self.interaction_block = interaction_block(
            self.interaction,
            [s["output_dim"] for s in embedded],
            len(self.numeric_names) + len(self.indicator_names),
            dtype=self.dtype_policy,
        )
        # Sublayers follow this model's policy: a model saved under a
        # mixed-precision global policy reloads as it trained.
        self.hidden = [
            keras.layers.Dense(
                units,
                activation="relu",
                dtype=self.dtype_policy,
                name=f"hidden_{i}",
            )
            for i, units in enumerate(self.hidden_units)
        ]
        self.dropouts = [
            keras.layers.Dropout(
                dropout, dtype=self.dtype_policy, name=f"dropout_{i}"
            )
            for i in range(len(self.hidden_units))
        ]
        self.head = keras.layers.Dense(
            num_classes if task == "multiclass" else 1,
            dtype=self.dtype_policy,
            name="head",
        )
        self.auxiliary_head = (
            AuxiliaryHead(
                auxiliary_weight,
                auxiliary_mean,
                dtype=self.dtype_policy,
                name="auxiliary_head",
            )
            if auxiliary_weight
            else None
        )
        # Every shape is known from the config, so build now: a reloaded
        # model then has its weights without a sample input.
        self.build()

    def _validate(self) -> None:
        if self.task not in SUPPORTED_TASKS:
            raise ValueError(
                f"`task` must be one of {SUPPORTED_TASKS}. "
                f"Received: task={self.task!r}"
            )
        if not self.inputs_config:
            raise ValueError("`inputs` must name at least one column.")
        check_input_types(self.inputs_config)
        if self.task == "multiclass" and (
            not isinstance(self.num_classes, int) or self.num_classes < 3
        ):
            raise ValueError(
                "`num_classes` must be an integer >= 3 for a multiclass task "
                '(use task="binary" for two). '
                f"Received: num_classes={self.num_classes!r}"
            )
        _check_units("hidden_units", self.hidden_units)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"`dropout` must be in [0, 1). Received: dropout={self.dropout}"
            )
        if self.l2 < 0:
            raise ValueError(f"`l2` must be >= 0. Received: l2={self.l2}")
        if self.embeddings_l2 < 0:
            raise ValueError(
                "`embeddings_l2` must be >= 0. "
                f"Received: embeddings_l2={self.embeddings_l2}"
            )
        if not self.output_scale > 0:
            raise ValueError(
                "`output_scale` must be > 0. "
                f"Received: output_scale={self.output_scale}"
            )
        if self.auxiliary_weight < 0:
            raise ValueError(
                "`auxiliary_weight` must be >= 0. "
                f"Received: auxiliary_weight={self.auxiliary_weight}"
            )

    def build(self, input_shape: Any = None) -> None:
        if isinstance(self.embeddings, EmbeddingStack):
            self.embeddings.build()
        else:
            for table in self.embeddings:
                table.build((None,))
        if self.wide_biases is not None:
            self.wide_biases.build()
        dims = [
            s["output_dim"]
            for s in self.inputs_config
            if s["type"] == "embedding"
        ]
        width = sum(dims) + len(self.numeric_names) + len(self.indicator_names)
        block = self.interaction_block
        if isinstance(block, DLRMInteraction):
            block.build()
            width = block.output_dim
        elif block is not None:
            block.build((None, width))
        for layer in self.hidden:
            layer.build((None, width))
            width = layer.units
        self.head.build((None, width))
        if self.auxiliary_head is not None:
            self.auxiliary_head.build((None, width))
        self.built = True

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        """Scores a batch.

        Args:
            inputs: dict of column name -> tensor (extra keys are ignored;
                an `AUXILIARY` target adds the auxiliary task's loss).
            training: bool. Whether dropout is on.

        Returns:
            float tensor `(batch, 1)` or `(batch, num_classes)`.
        """
        x, biases = self._hidden(inputs, training)
        logits = self.head(x)
        if biases:
            logits = logits + sum(biases)
        target = inputs.get(AUXILIARY)
        if self.auxiliary_head is not None and target is not None:
            self.auxiliary_head(x, target)
        if self.task == "binary":
            return ops.sigmoid(logits)
        if self.task == "multiclass":
            return ops.softmax(logits, axis=-1)
        return logits * self.output_scale

    def predict_auxiliary(self, inputs: dict[str, Any]) -> np.ndarray:
        """The auxiliary head's estimates (e.g. the rating behind "liked").

        Args:
            inputs: dict of column name -> array.

        Returns:
            numpy array `(batch,)`.
        """
        if self.auxiliary_head is None:
            raise ValueError(
                "This model has no auxiliary task (auxiliary_weight=0)."
            )
        x, _ = self._hidden(inputs, training=False)
        return ops.convert_to_numpy(self.auxiliary_head(x))

    def _hidden(
        self, inputs: dict[str, Any], training: bool
    ) -> tuple[Any, list[Any]]:
        """`(x, biases)`: the last hidden layer and the wide bias terms."""
        missing = [n for n in self.feature_names if n not in inputs]
        if missing:
            raise KeyError(
                f"Inputs {missing} are missing. Expected inputs: "
                f"{self.feature_names}"
            )
        stack = (
            self.embeddings
            if isinstance(self.embeddings, EmbeddingStack)
            else None
        )
        if stack is not None:
            # One tensor of every column's vector (and of every bias).
            vectors = [stack(inputs)]
        else:
            vectors = [
                table(inputs[name])
                for table, name in zip(
                    self.embeddings, self.embedded_names, strict=True
                )
            ]
        biases: list[Any] = []
        if self.wide_biases is not None:
            looked_up = self.wide_biases(inputs)
            biases = [looked_up] if stack is not None else looked_up
        if self.l2 and vectors + biases:
            # Penalize the looked-up rows only, so a value's penalty grows
            # with its frequency, as in matrix factorization. (Numbers
            # alone look nothing up: nothing to penalize.)
            penalty = sum(
                ops.mean(ops.sum(ops.square(v), axis=-1))
                for v in vectors + biases
            )
            self.add_loss(self.l2 * penalty)
        if stack is not None and biases:
            # The columns' biases summed: `(batch, columns, units)` -> units.
            units = self.wide_biases.output_dim
            biases = [
                ops.sum(
                    ops.reshape(
                        biases[0], (-1, len(self.embedded_names), units)
                    ),
                    axis=1,
                )
            ]
        if isinstance(self.interaction_block, DLRMInteraction):
            if stack is not None:
                ends = np.cumsum(self.interaction_block.input_dims)[:-1]
                vectors = ops.split(vectors[0], [int(e) for e in ends], axis=1)
            numeric = [ops.expand_dims(v, -1) for v in self._numbers(inputs)]
            x = self.interaction_block((vectors, numeric))
        else:
            parts = list(vectors)
            if self.numeric_names:
                parts.append(ops.stack(self._numbers(inputs), axis=1))
            x = parts[0] if len(parts) == 1 else ops.concatenate(parts, -1)
            if self.interaction_block is not None:
                x = self.interaction_block(x)
        for layer, dropout in zip(self.hidden, self.dropouts, strict=True):
            x = dropout(layer(x), training=training)
        return x, biases

    def _numbers(self, inputs: dict[str, Any]) -> list[Any]:
        """The numeric columns, `(batch,)` each, then their 0/1 "missing"
        inputs (a NaN cell of an `indicator_names` column reads as 0)."""
        values, flags = [], []
        for name in self.numeric_names:
            x = ops.cast(inputs[name], self.compute_dtype)
            if name in self.indicator_names:
                missing = ops.isnan(x)
                x = ops.where(missing, ops.zeros_like(x), x)
                flags.append(ops.cast(missing, self.compute_dtype))
            values.append(x)
        return values + flags

    def default_loss(self) -> keras.losses.Loss:
        """The loss matching `task`: cross-entropy or mean squared error."""
        if self.task == "binary":
            return keras.losses.BinaryCrossentropy()
        if self.task == "multiclass":
            return keras.losses.SparseCategoricalCrossentropy()
        return keras.losses.MeanSquaredError()

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "inputs": self.inputs_config,
                "interaction": self.interaction,
                "task": self.task,
                "num_classes": self.num_classes,
                "hidden_units": self.hidden_units,
                "dropout": self.dropout,
                "wide": self.wide,
                "class_biases": self.class_biases,
                "stacked": self.stacked,
                "l2": self.l2,
                "embeddings_l2": self.embeddings_l2,
                "auxiliary_weight": self.auxiliary_weight,
                "auxiliary_mean": self.auxiliary_mean,
                "output_scale": self.output_scale,
            }
        )
        return config
