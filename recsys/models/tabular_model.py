"""`TabularModel`: embedded columns -> interaction block -> task head."""

import keras
import keras_rs
from keras import ops

from recsys.layers.pooled_embedding import PooledEmbedding
from recsys.models.sparse_updates import SparseRowUpdates
from recsys.models.tower import check_input_types

SUPPORTED_INTERACTIONS = ("mlp", "dcn", "dot")
SUPPORTED_TASKS = ("binary", "regression", "multiclass")
# Input key of the auxiliary target, present in training batches only.
AUXILIARY = "auxiliary_target"


def _check_units(name, units):
    if not all(isinstance(u, int) and u > 0 for u in units):
        raise ValueError(
            f"`{name}` must be a list of positive integers. "
            f"Received: {name}={list(units)}"
        )


@keras.saving.register_keras_serializable(package="recsys")
class TabularModel(SparseRowUpdates, keras.Model):
    """Scores rows of structured columns: ranking, rating, classification.

    Each categorical column (single-valued, multi-valued or bucketized) has
    its own `PooledEmbedding` table; numeric columns enter as they are. The
    feature vectors then meet in an interaction block chosen by
    `interaction`:

    - `"mlp"`: concatenate, then ReLU `hidden_units`;
    - `"dcn"`: DCN-v2, `num_cross_layers` `keras_rs.layers.FeatureCross`
      layers over the concatenation (explicit feature crosses), then the
      ReLU `hidden_units` (the "stacked" DCN);
    - `"dot"`: DLRM, numeric columns go through a bottom MLP to one vector,
      every vector is brought to `dot_dim`, `keras_rs.layers.DotInteraction`
      takes the dot product of every pair, and the products (with the bottom
      vector) go through the ReLU `hidden_units`.

    With `wide=True` each categorical column also has a one-number table (a
    per-value bias, as in wide & deep and factorization machines) added to
    the output logit: the per-user and per-item biases of a rating model.
    The head gives a probability (`"binary"`, shape `(batch, 1)`), a value
    (`"regression"`, `(batch, 1)`) or class probabilities (`"multiclass"`,
    `(batch, num_classes)`).

    Args:
        inputs: list of dict. One entry per column:
            `{"name", "type": "embedding", "input_dim", "output_dim",
            "combiner"}` or `{"name", "type": "numeric"}`.
        interaction: str. One of `SUPPORTED_INTERACTIONS`. Defaults to
            `"mlp"`.
        task: str. One of `SUPPORTED_TASKS`. Defaults to `"binary"`.
        num_classes: int. Classes of a `"multiclass"` task. Defaults to `2`.
        hidden_units: list of int. ReLU layers after the interaction.
            Defaults to `(64, 32)`.
        num_cross_layers: int. `FeatureCross` layers (`"dcn"`). Defaults to
            `2`.
        projection_dim: int or None. Low-rank size of each cross layer
            (`"dcn"`); `None` is full rank. Defaults to `None`.
        dot_dim: int. Size every vector is brought to (`"dot"`). Defaults to
            `16`.
        bottom_units: list of int. ReLU layers over the numeric columns
            before the last one of size `dot_dim` (`"dot"`). Defaults to
            `()`.
        wide: bool. Add per-value bias terms. Defaults to `True`.
        dropout: float. Dropout after each hidden layer. Defaults to `0.0`.
        l2: float. L2 penalty on the looked-up rows of every table (bias
            tables included), averaged over the batch: a value's penalty
            grows with its frequency. Defaults to `0.0`.
        embeddings_l2: float. L2 penalty on every weight of every table
            (Keras `embeddings_regularizer`), the same for rare and frequent
            values, as in a regularized logistic regression. Defaults to
            `0.0`.
        auxiliary_weight: float. Weight of an auxiliary regression task
            learnt beside the main one (multi-task learning): a second
            one-unit head on the same hidden layers predicts the
            `AUXILIARY` input (e.g. the rating behind a "liked" label) and
            adds `auxiliary_weight` times its mean squared error to the
            loss. The target enters as an input, as in Keras' endpoint-layer
            pattern, so batches without it (prediction, validation) score
            the main task alone. `0` for none. Defaults to `0.0`.
        auxiliary_mean: float. Starting value of the auxiliary head: the
            target's training mean. Defaults to `0.0`.

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
        interaction="dcn",
        task="binary",
    )
    model.compile(optimizer="adam", loss=model.default_loss())
    model.fit({"userId": ids, "year": years}, labels)
    ```
    """

    def __init__(
        self,
        inputs,
        interaction="mlp",
        task="binary",
        num_classes=2,
        hidden_units=(64, 32),
        num_cross_layers=2,
        projection_dim=None,
        dot_dim=16,
        bottom_units=(),
        wide=True,
        dropout=0.0,
        l2=0.0,
        embeddings_l2=0.0,
        auxiliary_weight=0.0,
        auxiliary_mean=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.inputs_config = [dict(spec) for spec in inputs]
        self.interaction = interaction
        self.task = task
        self.num_classes = num_classes
        self.hidden_units = list(hidden_units)
        self.num_cross_layers = num_cross_layers
        self.projection_dim = projection_dim
        self.dot_dim = dot_dim
        self.bottom_units = list(bottom_units)
        self.wide = wide
        self.dropout = dropout
        self.l2 = l2
        self.embeddings_l2 = embeddings_l2
        self.auxiliary_weight = auxiliary_weight
        self.auxiliary_mean = auxiliary_mean
        self._validate()
        self.feature_names = [spec["name"] for spec in self.inputs_config]
        embedded = [s for s in self.inputs_config if s["type"] == "embedding"]
        self.numeric_names = [
            s["name"] for s in self.inputs_config if s["type"] == "numeric"
        ]
        regularizer = (
            keras.regularizers.L2(embeddings_l2) if embeddings_l2 else None
        )
        self.embeddings = [
            PooledEmbedding(
                s["input_dim"],
                s["output_dim"],
                combiner=s.get("combiner", "mean"),
                embeddings_regularizer=regularizer,
                name=f"{s['name']}_embedding",
            )
            for s in embedded
        ]
        self.biases = (
            [
                PooledEmbedding(
                    s["input_dim"],
                    1,
                    combiner=s.get("combiner", "mean"),
                    embeddings_initializer="zeros",
                    embeddings_regularizer=regularizer,
                    name=f"{s['name']}_bias",
                )
                for s in embedded
            ]
            if wide
            else []
        )
        self.crosses = []
        self.projections = []
        self.bottom = []
        self.dot = None
        if interaction == "dcn":
            self.crosses = [
                keras_rs.layers.FeatureCross(
                    projection_dim=projection_dim, name=f"cross_{i}"
                )
                for i in range(num_cross_layers)
            ]
        elif interaction == "dot":
            # Tables of another size than `dot_dim` get a linear projection:
            # DotInteraction needs vectors of one size.
            self.projections = [
                keras.layers.Dense(
                    dot_dim, use_bias=False, name=f"{s['name']}_projection"
                )
                if s["output_dim"] != dot_dim
                else None
                for s in embedded
            ]
            if self.numeric_names:
                self.bottom = [
                    keras.layers.Dense(
                        units, activation="relu", name=f"bottom_{i}"
                    )
                    for i, units in enumerate([*self.bottom_units, dot_dim])
                ]
            self.dot = keras_rs.layers.DotInteraction(name="dot_interaction")
        self.hidden = [
            keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")
            for i, units in enumerate(self.hidden_units)
        ]
        self.dropouts = [
            keras.layers.Dropout(dropout, name=f"dropout_{i}")
            for i in range(len(self.hidden_units))
        ]
        self.head = keras.layers.Dense(
            num_classes if task == "multiclass" else 1, name="head"
        )
        self.auxiliary_head = (
            keras.layers.Dense(
                1,
                bias_initializer=keras.initializers.Constant(auxiliary_mean),
                name="auxiliary_head",
            )
            if auxiliary_weight
            else None
        )
        # Every shape is known from the config, so build now: a reloaded
        # model then has its weights without a sample input.
        self.build()

    def _validate(self):
        if self.interaction not in SUPPORTED_INTERACTIONS:
            raise ValueError(
                f"`interaction` must be one of {SUPPORTED_INTERACTIONS}. "
                f"Received: interaction={self.interaction!r}"
            )
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
        _check_units("bottom_units", self.bottom_units)
        if self.interaction == "dcn" and (
            not isinstance(self.num_cross_layers, int)
            or self.num_cross_layers < 1
        ):
            raise ValueError(
                "`num_cross_layers` must be a positive integer. "
                f"Received: num_cross_layers={self.num_cross_layers!r}"
            )
        if self.interaction == "dot":
            count = len(self.inputs_config)
            embedded = sum(s["type"] == "embedding" for s in self.inputs_config)
            vectors = embedded + (count > embedded)
            if vectors < 2:
                raise ValueError(
                    'interaction="dot" needs at least two vectors to '
                    "multiply (categorical columns, plus one for all numeric "
                    f"columns). Received: {count} inputs"
                )
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
        if self.auxiliary_weight < 0:
            raise ValueError(
                "`auxiliary_weight` must be >= 0. "
                f"Received: auxiliary_weight={self.auxiliary_weight}"
            )

    def build(self, input_shape=None):
        for table in self.embeddings + self.biases:
            table.build((None,))
        dims = [
            s["output_dim"]
            for s in self.inputs_config
            if s["type"] == "embedding"
        ]
        num_numeric = len(self.numeric_names)
        if self.interaction == "dot":
            for projection, dim in zip(self.projections, dims, strict=True):
                if projection is not None:
                    projection.build((None, dim))
            width = num_numeric
            for layer in self.bottom:
                layer.build((None, width))
                width = layer.units
            vectors = len(dims) + (1 if self.bottom else 0)
            width = vectors * (vectors - 1) // 2
            if self.bottom:
                width += self.dot_dim
        else:
            width = sum(dims) + num_numeric
            for cross in self.crosses:
                cross.build((None, width))
                # keras-rs 0.4 creates the cross layer's Dense layers in
                # `build` but builds them only on the first call; building
                # them here gives a new or reloaded model all its weights.
                if self.projection_dim is not None:
                    cross.down_proj_dense.build((None, width))
                    cross.dense.build((None, self.projection_dim))
                else:
                    cross.dense.build((None, width))
        for layer in self.hidden:
            layer.build((None, width))
            width = layer.units
        self.head.build((None, width))
        if self.auxiliary_head is not None:
            self.auxiliary_head.build((None, width))
        self.built = True

    def call(self, inputs, training=False):
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
        target = inputs.get(AUXILIARY) if self.auxiliary_head else None
        if target is not None:
            estimate = self.auxiliary_head(x)[:, 0]
            error = estimate - ops.cast(target, estimate.dtype)
            self.add_loss(self.auxiliary_weight * ops.mean(ops.square(error)))
        if self.task == "binary":
            return ops.sigmoid(logits)
        if self.task == "multiclass":
            return ops.softmax(logits, axis=-1)
        return logits

    def predict_auxiliary(self, inputs):
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
        return ops.convert_to_numpy(self.auxiliary_head(x))[:, 0]

    def _hidden(self, inputs, training):
        """`(x, biases)`: the last hidden layer and the wide bias terms."""
        missing = [n for n in self.feature_names if n not in inputs]
        if missing:
            raise KeyError(
                f"Inputs {missing} are missing. Expected inputs: "
                f"{self.feature_names}"
            )
        embedded = [
            s["name"] for s in self.inputs_config if s["type"] == "embedding"
        ]
        vectors = [
            table(inputs[name])
            for table, name in zip(self.embeddings, embedded, strict=True)
        ]
        numeric = [
            ops.expand_dims(ops.cast(inputs[n], self.compute_dtype), -1)
            for n in self.numeric_names
        ]
        biases = (
            [
                table(inputs[name])
                for table, name in zip(self.biases, embedded, strict=True)
            ]
            if self.biases
            else []
        )
        if self.l2:
            # Penalize the looked-up rows only, so a value's penalty grows
            # with its frequency, as in matrix factorization.
            penalty = sum(
                ops.mean(ops.sum(ops.square(v), axis=-1))
                for v in vectors + biases
            )
            self.add_loss(self.l2 * penalty)
        x = self._interact(vectors, numeric, training)
        for layer, dropout in zip(self.hidden, self.dropouts, strict=True):
            x = dropout(layer(x), training=training)
        return x, biases

    def _interact(self, vectors, numeric, training):
        if self.interaction == "dot":
            vectors = [
                v if projection is None else projection(v)
                for v, projection in zip(vectors, self.projections, strict=True)
            ]
            bottom = None
            if self.bottom:
                bottom = ops.concatenate(numeric, axis=-1)
                for layer in self.bottom:
                    bottom = layer(bottom)
                vectors = vectors + [bottom]
            x = self.dot(vectors)
            return x if bottom is None else ops.concatenate([x, bottom], -1)
        parts = vectors + numeric
        x0 = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
        x = x0
        for cross in self.crosses:
            x = cross(x0, x)
        return x

    def default_loss(self):
        """The loss matching `task`: cross-entropy or mean squared error."""
        if self.task == "binary":
            return keras.losses.BinaryCrossentropy()
        if self.task == "multiclass":
            return keras.losses.SparseCategoricalCrossentropy()
        return keras.losses.MeanSquaredError()

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "inputs": self.inputs_config,
                "interaction": self.interaction,
                "task": self.task,
                "num_classes": self.num_classes,
                "hidden_units": self.hidden_units,
                "num_cross_layers": self.num_cross_layers,
                "projection_dim": self.projection_dim,
                "dot_dim": self.dot_dim,
                "bottom_units": self.bottom_units,
                "wide": self.wide,
                "dropout": self.dropout,
                "l2": self.l2,
                "embeddings_l2": self.embeddings_l2,
                "auxiliary_weight": self.auxiliary_weight,
                "auxiliary_mean": self.auxiliary_mean,
            }
        )
        return config
