"""`NumpyTower`: a query tower's weights, evaluated with numpy for serving.

A Keras call costs milliseconds of dispatch for a batch of one (tracing
per input shape, JAX dispatch, device transfers), while the arithmetic of a
query tower is a few table lookups, at most a couple of small matmuls, and a
norm. The service reads the tower's weights once, at load, and evaluates
them here; a tower with a layer this module does not implement (a
`SequenceEncoder` history, a `MultiHashEmbedding`, a tower class other than
`recsys.models.Tower`, a dtype other than float32) is not converted, and
the service keeps calling the Keras tower (`NumpyTower.from_keras` returns
`None` and says why).
"""

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

COMBINERS = ("mean", "sum", "sqrtn")


class Unsupported(ValueError):
    """A tower this module cannot evaluate (the service uses Keras)."""


class NumpyTower:
    """The forward pass of a `recsys.models.Tower` in numpy, float32.

    It repeats `Tower.call` exactly: each embedding input is looked up (a
    `(batch, length)` input pooled over its non-zero ids with the table's
    combiner, as `PooledEmbedding` does), numeric inputs enter as they are,
    the parts are summed or concatenated, pass the ReLU hidden layers and
    the projection, and are L2-normalized when the tower normalizes.

    Args:
        parts: list of `(name, table, combiner)`, with `table` None for a
            numeric input, in the tower's input order.
        combine: str. `"sum"` or `"concat"`.
        dense: list of `(kernel, bias, relu)`: hidden layers, then the
            projection.
        normalize: bool. L2-normalize the output.

    Example:

    ```python
    fast = NumpyTower.from_keras(bundle.query_tower)
    vectors = fast({"userId": np.array([3]), "history": np.zeros((1, 10))})
    ```
    """

    def __init__(
        self,
        parts: list[tuple[str, np.ndarray | None, str]],
        combine: str,
        dense: list[tuple[np.ndarray, np.ndarray | None, bool]],
        normalize: bool,
    ) -> None:
        self.parts = parts
        self.combine = combine
        self.dense = dense
        self.normalize = normalize
        self.feature_names = [name for name, _, _ in parts]

    def state(self) -> dict[str, Any]:
        """The constructor's arguments (`recsys.serving.shared_model`)."""
        return {
            "parts": self.parts,
            "combine": self.combine,
            "dense": self.dense,
            "normalize": self.normalize,
        }

    @classmethod
    def from_keras(cls, tower: Any) -> "NumpyTower | None":
        """The numpy twin of `tower`, or None when it has unsupported parts.

        Args:
            tower: a built Keras query tower.

        Returns:
            A `NumpyTower`, or `None` (logged with the reason) when the
            tower holds a layer or setting this module does not implement.
        """
        try:
            return cls._convert(tower)
        except Unsupported as error:
            logger.info("Query tower served by Keras: %s", error)
            return None

    @classmethod
    def _convert(cls, tower):
        from recsys.models.tower import Tower

        # Exact types: a subclass may change `call`.
        if type(tower) is not Tower:
            raise Unsupported(f"tower class {type(tower).__name__}")
        if tower.compute_dtype != "float32":
            raise Unsupported(f"compute dtype {tower.compute_dtype}")
        parts = []
        tables = iter(tower.embeddings)
        for spec in tower.inputs_config:
            if spec["type"] != "embedding":
                parts.append((spec["name"], None, "mean"))
                continue
            table, combiner = convert_table(next(tables))
            parts.append((spec["name"], table, combiner))
        layers = list(tower.hidden)
        if tower.projection is not None:
            layers.append(tower.projection)
        dense = [convert_dense(layer) for layer in layers]
        return cls(parts, tower.combine, dense, bool(tower.normalize))

    def supports(self, inputs: dict[str, np.ndarray]) -> bool:
        """Whether every id of `inputs` is a row of its table.

        Keras fills a lookup outside the table with NaN where numpy would
        raise: such a batch goes to the Keras tower, which answers as it
        always did.
        """
        for name, table, _ in self.parts:
            if table is None:
                continue
            ids = np.asarray(inputs[name])
            if ids.dtype.kind not in "iu":
                return False
            if ids.size and (ids.min() < 0 or ids.max() >= len(table)):
                return False
        return True

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Embeds a batch.

        Args:
            inputs: dict of feature name -> `(batch,)` or `(batch, length)`
                array (what the Keras tower takes).

        Returns:
            float32 array `(batch, output_dim)`.
        """
        vectors = []
        for name, table, combiner in self.parts:
            value = np.asarray(inputs[name])
            if table is None:
                vectors.append(value.astype(np.float32)[:, None])
            else:
                vectors.append(lookup(table, value, combiner))
        if len(vectors) == 1:
            x = vectors[0]
        elif self.combine == "sum":
            x = np.sum(np.stack(vectors), axis=0)
        else:
            x = np.concatenate(vectors, axis=-1)
        for layer in self.dense:
            x = apply_dense(x, layer)
        if self.normalize:
            norm = np.sum(np.square(x), axis=-1, keepdims=True)
            x = x / np.sqrt(np.maximum(norm, np.float32(1e-12)))
        return np.ascontiguousarray(x, dtype=np.float32)


# The pieces below are shared with `recsys.serving.fast_ranker`.


def convert_table(layer: Any) -> tuple[np.ndarray, str]:
    """`(table, combiner)` of a `PooledEmbedding`, or `Unsupported`."""
    import keras

    from recsys.layers.pooled_embedding import PooledEmbedding

    if type(layer) is not PooledEmbedding:
        raise Unsupported(f"table {layer.name} is {type(layer).__name__}")
    if layer.combiner not in COMBINERS:
        raise Unsupported(f"combiner {layer.combiner!r}")
    if layer.compute_dtype != "float32":
        raise Unsupported(f"table dtype {layer.compute_dtype}")
    table = keras.ops.convert_to_numpy(layer.embeddings)
    return np.ascontiguousarray(table, np.float32), layer.combiner


def convert_stack(layer: Any) -> list[tuple[str, np.ndarray, str]]:
    """`(name, table, combiner)` of each column of an `EmbeddingStack`
    (its rows of the stacked table), or `Unsupported`."""
    import keras

    from recsys.layers.embedding_stack import EmbeddingStack

    if type(layer) is not EmbeddingStack:
        raise Unsupported(f"tables {layer.name} are {type(layer).__name__}")
    if layer.compute_dtype != "float32":
        raise Unsupported(f"table dtype {layer.compute_dtype}")
    return [
        (
            name,
            np.ascontiguousarray(keras.ops.convert_to_numpy(rows), np.float32),
            combiner,
        )
        for name, rows, combiner in zip(
            layer.names, layer.column_tables(), layer.combiners, strict=True
        )
    ]


# One dense layer: `(kernel, bias or None, relu)`.
DenseWeights = tuple[np.ndarray, np.ndarray | None, bool]


def convert_dense(layer: Any) -> DenseWeights:
    """A `keras.layers.Dense` of ReLU or linear activation, or
    `Unsupported`."""
    import keras

    relu = keras.activations.get("relu")
    linear = keras.activations.get("linear")
    if type(layer) is not keras.layers.Dense:
        raise Unsupported(f"layer {type(layer).__name__}")
    if layer.activation not in (relu, linear):
        raise Unsupported(f"activation {layer.activation}")
    if (
        layer.compute_dtype != "float32"
        or getattr(layer, "lora_enabled", False)
        or getattr(layer, "quantization_mode", None)
    ):
        raise Unsupported(f"dense layer {layer.name}")
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
    return (
        np.ascontiguousarray(kernel, np.float32),
        None if bias is None else bias.astype(np.float32),
        layer.activation is relu,
    )


def apply_dense(x: np.ndarray, layer: DenseWeights) -> np.ndarray:
    """`x` through one `DenseWeights` layer."""
    kernel, bias, relu = layer
    x = x @ kernel
    if bias is not None:
        x = x + bias
    return np.maximum(x, 0.0) if relu else x


def lookup(table: np.ndarray, ids: Any, combiner: str) -> np.ndarray:
    """`PooledEmbedding` of `(batch,)` ids, or of padded `(batch, length)`
    ids pooled with `combiner` (0 is padding)."""
    ids = np.asarray(ids)
    if ids.ndim == 1:
        return table[ids]
    return _pool(table, ids, combiner)


def _pool(table, ids, combiner):
    """`PooledEmbedding` of padded ids `(batch, length)`: 0 is padding."""
    weights = (ids != 0).astype(np.float32)
    # A plain sum over the history axis: each row's result is the same
    # bits whatever the batch (einsum may pick a BLAS kernel by size).
    total = (table[ids] * weights[:, :, None]).sum(axis=1)
    if combiner == "sum":
        return total
    count = weights.sum(axis=1, keepdims=True)
    if combiner == "sqrtn":
        count = np.sqrt(count)
    # `divide_no_nan`: a row of padding pools to zeros.
    safe = np.where(count > 0, count, 1.0)
    return np.where(count > 0, total / safe, 0.0).astype(np.float32)
