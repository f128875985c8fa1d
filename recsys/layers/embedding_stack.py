"""`EmbeddingStack`: the tables of many columns as one table per width."""

from typing import Any

import keras
from keras import ops

from recsys.layers.sparse_rows_embedding import SparseRowsEmbedding

COMBINERS = ("mean", "sum", "sqrtn")


@keras.saving.register_keras_serializable(package="recsys")
class EmbeddingStack(keras.layers.Layer):
    """Many columns' embedding tables stacked into one table per width.

    A table per column costs a lookup, a gradient, an optimizer update and
    their compilation per column: a table of 300 categorical columns spent
    most of its training time compiling. Here the columns of one vector
    width share one table, each column's rows at its own offset, and a
    batch looks all of them up in one gather (the row stacking of TorchRec
    and keras-rs' distributed embeddings). Column `c`'s id `i` is row
    `offset[c] + i`. Each column behaves as its own `PooledEmbedding`: a
    1-D input is a plain lookup, a 2-D input `(batch, length)` is pooled
    with the column's combiner over its non-zero ids (0 is padding).

    Args:
        inputs: list of dict. One spec per column: `{"name", "input_dim",
            "output_dim", "combiner"}` (`"combiner"` defaults to `"mean"`;
            other keys are ignored).
        output_dim: optional int. One width for every column instead of
            each spec's `"output_dim"` (e.g. 1 for per-value biases).
            Defaults to `None`.
        embeddings_initializer: initializer of the tables. Defaults to
            `"uniform"` (`keras.layers.Embedding`'s).
        embeddings_regularizer: optional regularizer of the tables.
            Defaults to `None`.
        **kwargs: Passed on to `keras.layers.Layer`.

    Input shape:
        dict of column name -> `(batch,)` or `(batch, length)` ids in
        `[0, input_dim)` of the column (extra keys are ignored). Ids are
        not checked: a larger one would read the next column's rows
        (`recsys.features.Preprocessor` gives none).

    Output shape:
        `(batch, sum of the columns' widths)`: the columns' vectors
        concatenated in `inputs` order.

    Example:

    ```python
    stack = EmbeddingStack([
        {"name": "city", "input_dim": 50, "output_dim": 8},
        {"name": "tags", "input_dim": 90, "output_dim": 8},
    ])
    vectors = stack({"city": np.array([3, 7]),
                     "tags": np.array([[4, 2], [5, 0]])})  # (2, 16)
    ```
    """

    def __init__(
        self,
        inputs: list[dict[str, Any]],
        output_dim: int | None = None,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not inputs:
            raise ValueError("`inputs` must name at least one column.")
        self.inputs_config = [dict(spec) for spec in inputs]
        needed = ("name", "input_dim") + (
            ("output_dim",) if output_dim is None else ()
        )
        for spec in self.inputs_config:
            missing = [key for key in needed if key not in spec]
            if missing:
                raise ValueError(
                    f"Each of `inputs` needs the keys {list(needed)}; "
                    f"{spec} has no {missing}."
                )
        self.output_dim = output_dim
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
        )
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )
        self.names = [spec["name"] for spec in self.inputs_config]
        self.combiners = [
            spec.get("combiner", "mean") for spec in self.inputs_config
        ]
        for name, combiner in zip(self.names, self.combiners, strict=True):
            if combiner not in COMBINERS:
                raise ValueError(
                    f"Input '{name}': `combiner` must be one of {COMBINERS}. "
                    f"Received: combiner={combiner!r}"
                )
        self.widths = [
            output_dim if output_dim is not None else spec["output_dim"]
            for spec in self.inputs_config
        ]
        for spec, width in zip(self.inputs_config, self.widths, strict=True):
            for key, value in (
                ("input_dim", spec["input_dim"]),
                ("output_dim", width),
            ):
                if (
                    not isinstance(value, int)
                    or isinstance(value, bool)
                    or value < 1
                ):
                    raise ValueError(
                        f"Input '{spec['name']}': `{key}` must be a positive "
                        f"integer. Received: {key}={value!r}"
                    )
        # Per width, in order of first appearance: its columns and offsets.
        self.groups: dict[int, list[int]] = {}
        self.offsets = []
        rows: dict[int, int] = {}
        for column, (spec, width) in enumerate(
            zip(self.inputs_config, self.widths, strict=True)
        ):
            self.groups.setdefault(width, []).append(column)
            self.offsets.append(rows.get(width, 0))
            rows[width] = self.offsets[-1] + spec["input_dim"]
        # A list (not a dict keyed by width): Keras saves lists of layers.
        # Each table its own initializer: one unseeded instance called
        # twice returns the same numbers twice.
        # (A copy from its config: `keras.initializers.serialize` would
        # import TensorFlow into a process that loads a bundle.)
        initializer = keras.initializers.get(self.embeddings_initializer)
        self.tables = [
            SparseRowsEmbedding(
                rows[width],
                width,
                embeddings_initializer=type(initializer).from_config(
                    initializer.get_config()
                ),
                embeddings_regularizer=self.embeddings_regularizer,
                dtype=self.dtype_policy,
                name=f"table_{width}",
            )
            for width in self.groups
        ]

    def build(self, input_shape: Any = None) -> None:
        for table in self.tables:
            table.build((None,))
        self.built = True

    def call(self, inputs: dict[str, Any]) -> Any:
        """Looks up (and pools) every column.

        Args:
            inputs: dict of column name -> int ids.

        Returns:
            float tensor `(batch, sum of widths)`: the columns' vectors
            concatenated in `inputs` order.
        """
        blocks, order = [], []
        for table, columns in zip(
            self.tables, self.groups.values(), strict=True
        ):
            # The single-valued columns of a width: one stacked gather,
            # flattened (per-column slices cost XLA seconds to compile).
            single = [
                c for c in columns if len(inputs[self.names[c]].shape) == 1
            ]
            if single:
                rows = ops.stack(
                    [ops.cast(inputs[self.names[c]], "int32") for c in single],
                    axis=1,
                ) + ops.convert_to_tensor(
                    [self.offsets[c] for c in single], "int32"
                )
                vectors = table.lookup(rows)
                blocks.append(
                    ops.reshape(
                        vectors, (-1, vectors.shape[1] * vectors.shape[2])
                    )
                )
                order += single
            for c in columns:
                if c in single:
                    continue
                ids = ops.cast(inputs[self.names[c]], "int32")
                vectors = table.lookup(ids + self.offsets[c])
                blocks.append(self._pool(vectors, ids, self.combiners[c]))
                order.append(c)
        x = blocks[0] if len(blocks) == 1 else ops.concatenate(blocks, axis=1)
        if order == sorted(order):
            return x
        # Back to the columns' order: one gather of the vector positions.
        start = {}
        position = 0
        for c in order:
            start[c] = position
            position += self.widths[c]
        permutation = [
            start[c] + i
            for c in range(len(self.names))
            for i in range(self.widths[c])
        ]
        return ops.take(x, ops.convert_to_tensor(permutation, "int32"), axis=1)

    def _pool(self, vectors: Any, ids: Any, combiner: str) -> Any:
        """`PooledEmbedding`'s pooling of a `(batch, length)` input."""
        weights = ops.cast(ops.not_equal(ids, 0), vectors.dtype)
        total = ops.sum(vectors * weights[..., None], axis=1)
        if combiner == "sum":
            return total
        count = ops.sum(weights, axis=1, keepdims=True)
        if combiner == "sqrtn":
            count = ops.sqrt(count)
        return ops.divide_no_nan(total, count)

    def column_tables(self) -> list[Any]:
        """Each column's rows of its table (variables' values), in order."""
        table_of = dict(zip(self.groups, self.tables, strict=True))
        return [
            table_of[width].embeddings[offset : offset + spec["input_dim"]]
            for spec, width, offset in zip(
                self.inputs_config, self.widths, self.offsets, strict=True
            )
        ]

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "inputs": self.inputs_config,
                "output_dim": self.output_dim,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "embeddings_regularizer": keras.regularizers.serialize(
                    self.embeddings_regularizer
                ),
            }
        )
        return config
