"""`NumpyRanker`: a tabular ranker's weights, evaluated with numpy.

A reranked request scores about a hundred (user, item) rows. Keras'
`predict` costs milliseconds of fixed overhead for that (a data adapter,
JAX dispatch, device transfers), while the arithmetic of a
`recsys.models.TabularModel` is a few table lookups and small matmuls. The
service reads the model's weights once, at load, and evaluates them here,
in any thread at once (no lock), with one BLAS thread per call
(`recsys.serving.one_blas_thread`). A model with a layer or setting this
module does not implement (a subclass of a supported layer, a dtype other
than float32, a quantized or LoRA layer, a cross layer with an activation)
is not converted, and the service keeps calling Keras
(`NumpyRanker.from_keras` returns `None` and says why).
"""

import logging
from typing import Any

import numpy as np

from recsys.serving.fast_tower import DenseWeights
from recsys.serving.fast_tower import Unsupported
from recsys.serving.fast_tower import apply_dense
from recsys.serving.fast_tower import convert_dense
from recsys.serving.fast_tower import convert_stack
from recsys.serving.fast_tower import convert_table
from recsys.serving.fast_tower import lookup
from recsys.serving.one_blas_thread import ONE_BLAS_THREAD

logger = logging.getLogger(__name__)

TASKS = ("binary", "regression", "multiclass")


class NumpyRanker:
    """The forward pass of a `recsys.models.TabularModel` in numpy, float32.

    It repeats `TabularModel.call` at inference: each categorical input is
    looked up in its table (a `(batch, length)` input pooled over its
    non-zero ids with the table's combiner, as `PooledEmbedding` does),
    numeric inputs enter as they are (NaN as 0 beside a 0/1 input for the
    `indicators`), the interaction block (`"mlp"`:
    concatenation; `"dcn"`: `CrossNetwork`; `"dot"`: `DLRMInteraction`)
    and the ReLU hidden layers follow (dropout is off), then the head, plus
    the wide bias terms, and the task's output function.

    Args:
        embedded: list of `(name, table, combiner)`, one per categorical
            input, in the model's order.
        numeric: list of str. The numeric inputs, in the model's order.
        biases: list of `(name, table, combiner)`: the `WideBiases` tables
            (`(rows, 1)`), empty without them.
        interaction: str. `"mlp"`, `"dcn"` or `"dot"`.
        crosses: list of `(down_kernel or None, kernel, bias or None,
            diag_scale)`: the `FeatureCross` layers of `"dcn"`.
        projections: list of kernel or None: the `"dot"` block's
            projection of each categorical vector.
        bottom: list of `DenseWeights`: the `"dot"` block's bottom MLP.
        hidden: list of `DenseWeights`: the hidden layers.
        head: `DenseWeights`: the output layer (no ReLU).
        task: str. One of `TASKS`.
        output_scale: float. What a `"regression"` output is multiplied by
            (`TabularModel.output_scale`). Defaults to `1.0`.
        indicators: list of str. The numeric inputs whose NaN values are
            read as missing (`TabularModel.indicator_names`). Defaults to
            none.

    Example:

    ```python
    fast = NumpyRanker.from_keras(ranker.model)
    scores = fast(ranker.preprocessor.transform(frame))  # (n, 1)
    ```
    """

    def __init__(
        self,
        embedded: list[tuple[str, np.ndarray, str]],
        numeric: list[str],
        biases: list[tuple[str, np.ndarray, str]],
        interaction: str,
        crosses: list[tuple[np.ndarray | None, np.ndarray, Any, float]],
        projections: list[np.ndarray | None],
        bottom: list[DenseWeights],
        hidden: list[DenseWeights],
        head: DenseWeights,
        task: str,
        output_scale: float = 1.0,
        indicators: list[str] | tuple[str, ...] = (),
    ) -> None:
        if task not in TASKS:
            raise ValueError(
                f"`task` must be one of {TASKS}. Received: task={task!r}"
            )
        self.embedded = embedded
        self.numeric = numeric
        self.biases = biases
        self.interaction = interaction
        self.crosses = crosses
        self.projections = projections
        self.bottom = bottom
        self.hidden = hidden
        self.head = head
        self.task = task
        self.output_scale = float(output_scale)
        self.indicators = list(indicators)
        self.feature_names = [name for name, _, _ in embedded] + numeric

    def state(self) -> dict[str, Any]:
        """The constructor's arguments (`recsys.serving.shared_model`)."""
        return {
            name: getattr(self, name)
            for name in (
                "embedded",
                "numeric",
                "biases",
                "interaction",
                "crosses",
                "projections",
                "bottom",
                "hidden",
                "head",
                "task",
                "output_scale",
                "indicators",
            )
        }

    @classmethod
    def from_keras(cls, model: Any) -> "NumpyRanker | None":
        """The numpy twin of `model`, or None when it has unsupported parts.

        Args:
            model: a built `recsys.models.TabularModel`.

        Returns:
            A `NumpyRanker`, or `None` (logged with the reason) when the
            model holds a layer or setting this module does not implement.
        """
        try:
            return cls._convert(model)
        except Unsupported as error:
            logger.info("Ranker served by Keras: %s", error)
            return None

    @classmethod
    def _convert(cls, model):
        from recsys.layers.cross_network import CrossNetwork
        from recsys.layers.dlrm_interaction import DLRMInteraction
        from recsys.layers.wide_biases import WideBiases
        from recsys.models.tabular_model import TabularModel

        # Exact types: a subclass may change `call`.
        if type(model) is not TabularModel:
            raise Unsupported(f"model class {type(model).__name__}")
        if model.compute_dtype != "float32":
            raise Unsupported(f"compute dtype {model.compute_dtype}")
        if model.task not in TASKS:
            raise Unsupported(f"task {model.task!r}")
        stacked = model.stacked and bool(model.embedded_names)
        if stacked:
            embedded = convert_stack(model.embeddings)
        else:
            embedded = [
                (name, *convert_table(layer))
                for name, layer in zip(
                    model.embedded_names, model.embeddings, strict=True
                )
            ]
        biases = []
        if model.wide_biases is not None and stacked:
            biases = convert_stack(model.wide_biases)
        elif model.wide_biases is not None:
            wide = model.wide_biases
            if type(wide) is not WideBiases:
                raise Unsupported(f"wide part {type(wide).__name__}")
            biases = [
                (spec["name"], *convert_table(layer))
                for spec, layer in zip(
                    wide.inputs_config, wide.tables, strict=True
                )
            ]
        interaction = model.interaction["name"]
        block = model.interaction_block
        crosses, projections, bottom = [], [], []
        if interaction == "dcn":
            if type(block) is not CrossNetwork:
                raise Unsupported(f"interaction {type(block).__name__}")
            crosses = [_convert_cross(layer) for layer in block.crosses]
        elif interaction == "dot":
            if type(block) is not DLRMInteraction:
                raise Unsupported(f"interaction {type(block).__name__}")
            projections, bottom = _convert_dot(block)
        elif block is not None:
            raise Unsupported(f"interaction {interaction!r}")
        hidden = [convert_dense(layer) for layer in model.hidden]
        head = convert_dense(model.head)
        if head[2]:
            raise Unsupported("head with a ReLU")
        return cls(
            embedded,
            list(model.numeric_names),
            biases,
            interaction,
            crosses,
            projections,
            bottom,
            hidden,
            head,
            model.task,
            model.output_scale,
            model.indicator_names,
        )

    def supports(self, inputs: dict[str, np.ndarray]) -> bool:
        """Whether every id of `inputs` is a row of its table.

        Keras fills a lookup outside the table with NaN where numpy would
        raise: such a batch goes to the Keras model, which answers as it
        always did.
        """
        for name, table, _ in self.embedded + self.biases:
            ids = np.asarray(inputs.get(name))
            if ids.dtype.kind not in "iu":
                return False
            if ids.size and (ids.min() < 0 or ids.max() >= len(table)):
                return False
        return all(name in inputs for name in self.numeric)

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Scores a batch.

        Args:
            inputs: dict of feature name -> `(batch,)` or `(batch, length)`
                array (what the Keras model takes; extra keys are ignored).

        Returns:
            float32 array `(batch, 1)`, or `(batch, num_classes)` for a
            multiclass task: what the Keras model returns.
        """
        with ONE_BLAS_THREAD:
            return self._forward(inputs)

    def _forward(self, inputs):
        vectors = [
            lookup(table, inputs[name], combiner)
            for name, table, combiner in self.embedded
        ]
        numeric, flags = [], []
        for name in self.numeric:
            x = np.asarray(inputs[name]).astype(np.float32)[:, None]
            if name in self.indicators:
                missing = np.isnan(x)
                x = np.where(missing, np.float32(0), x)
                flags.append(missing.astype(np.float32))
            numeric.append(x)
        numeric += flags
        if self.interaction == "dot":
            x = self._dot(vectors, numeric)
        else:
            parts = vectors + numeric
            x = parts[0] if len(parts) == 1 else np.concatenate(parts, -1)
            if self.interaction == "dcn":
                x = self._cross(x)
        for layer in self.hidden:
            x = apply_dense(x, layer)
        logits = apply_dense(x, self.head)
        for name, table, combiner in self.biases:
            logits = logits + lookup(table, inputs[name], combiner)
        if self.task == "binary":
            # The logistic function without overflow for large |logits|.
            out = 0.5 * (1.0 + np.tanh(0.5 * logits))
        elif self.task == "multiclass":
            shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
            out = shifted / shifted.sum(axis=-1, keepdims=True)
        else:
            out = logits * self.output_scale
        return np.ascontiguousarray(out, dtype=np.float32)

    def _cross(self, x0):
        """`CrossNetwork`: `x = x0 * (W x + b) + x`, layer after layer."""
        x = x0
        for down, kernel, bias, diag_scale in self.crosses:
            out = x if down is None else x @ down
            out = out @ kernel
            if bias is not None:
                out = out + bias
            if diag_scale:
                out = out + np.float32(diag_scale) * x
            x = x0 * out + x
        return x

    def _dot(self, vectors, numeric):
        """`DLRMInteraction`: pairwise dot products, then the bottom."""
        vectors = [
            v if kernel is None else v @ kernel
            for v, kernel in zip(vectors, self.projections, strict=True)
        ]
        bottom = None
        if self.bottom:
            bottom = np.concatenate(numeric, axis=-1)
            for layer in self.bottom:
                bottom = apply_dense(bottom, layer)
            vectors = vectors + [bottom]
        features = np.stack(vectors, axis=1)  # (batch, n, dim)
        pairs = features @ features.transpose(0, 2, 1)
        n = features.shape[1]
        # `DotInteraction`'s strictly lower triangle, row by row.
        rows, cols = np.tril_indices(n, k=-1)
        x = pairs[:, rows, cols]
        return x if bottom is None else np.concatenate([x, bottom], -1)


def _convert_cross(layer):
    """A `keras_rs.layers.FeatureCross` as `(down, kernel, bias, scale)`."""
    import keras_rs

    if type(layer) is not keras_rs.layers.FeatureCross:
        raise Unsupported(f"cross layer {type(layer).__name__}")
    down = None
    if layer.projection_dim is not None:
        down, down_bias, _ = convert_dense(layer.down_proj_dense)
        if down_bias is not None:
            raise Unsupported(f"cross layer {layer.name} projection bias")
    kernel, bias, relu = convert_dense(layer.dense)
    if relu:  # a `pre_activation`
        raise Unsupported(f"cross layer {layer.name} pre_activation")
    return down, kernel, bias, float(layer.diag_scale or 0.0)


def _convert_dot(block):
    """A `DLRMInteraction`'s `(projections, bottom)`."""
    import keras_rs

    dot = block.dot
    if (
        type(dot) is not keras_rs.layers.DotInteraction
        or dot.self_interaction
        or dot.skip_gather
    ):
        raise Unsupported(f"dot interaction {dot.name}")
    projections: list[np.ndarray | None] = []
    for layer in block.projections:
        if layer is None:
            projections.append(None)
            continue
        kernel, bias, relu = convert_dense(layer)
        if bias is not None or relu:
            raise Unsupported(f"projection {layer.name}")
        projections.append(kernel)
    return projections, [convert_dense(layer) for layer in block.bottom]
