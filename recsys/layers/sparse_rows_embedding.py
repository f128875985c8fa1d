"""`SparseRowsEmbedding`: an `Embedding` whose lookups a training step can see.

Keras differentiates a lookup `take(table, ids)` with respect to the whole
table, so on JAX every step builds a gradient the size of the table and the
optimizer rewrites every row and slot. A sparse training step
(`recsys.models.sparse_updates`) instead differentiates with respect to the
looked-up *rows*: inside `RowLookups`, each lookup of a listed table returns
`take(table, rows) + delta`, where `delta` is a zero array the step takes the
gradient of, and records `rows`. Outside that context the layer is a plain
`keras.layers.Embedding`.
"""

import contextvars
from typing import Any

import keras
from keras import ops

_ACTIVE: contextvars.ContextVar["RowLookups | None"] = contextvars.ContextVar(
    "recsys_row_lookups", default=None
)


class RowLookups:
    """Records the rows each listed table looks up while a model runs.

    Args:
        tables: dict of table variable path -> row width. Lookups of other
            tables run as usual.
        deltas: dict of table variable path -> list of arrays, one per
            lookup in call order, each shaped `rows.shape + (width,)`, added
            to the looked-up vectors. `None` records the rows only (for a
            shape pass).

    Example:

    ```python
    with RowLookups({"user_embedding/embeddings": 32}) as lookups:
        model(inputs)
    lookups.rows["user_embedding/embeddings"]   # [int array per lookup]
    ```
    """

    def __init__(
        self,
        tables: dict[str, int],
        deltas: dict[str, list[Any]] | None = None,
    ) -> None:
        self.tables = tables
        self.deltas = deltas
        self.rows: dict[str, list[Any]] = {path: [] for path in tables}

    def __enter__(self) -> "RowLookups":
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _ACTIVE.reset(self._token)

    def gather(self, variable: Any, rows: Any) -> Any:
        """The vectors of `rows`, plus this lookup's delta."""
        values = ops.take(variable.value, rows, axis=0)
        calls = self.rows[variable.path]
        if self.deltas is not None:
            deltas = self.deltas[variable.path]
            if len(calls) >= len(deltas):
                raise RuntimeError(
                    f"Table '{variable.path}' was looked up more often than "
                    "in the shape pass of the sparse training step (a lookup "
                    "inside `compute_loss`?). Look tables up in `call` only, "
                    "or set `model.sparse_updates = False`."
                )
            values = values + ops.cast(deltas[len(calls)], values.dtype)
        calls.append(rows)
        return values


@keras.saving.register_keras_serializable(package="recsys")
class SparseRowsEmbedding(keras.layers.Embedding):
    """A `keras.layers.Embedding` whose row lookups can be updated sparsely.

    It behaves as `keras.layers.Embedding` (same arguments, weights and
    saved files). The only change is where the lookup happens: in
    `lookup(rows)`, which a sparse training step intercepts to learn which
    rows a batch touched. Subclasses turn their inputs into rows (hashing,
    pooling) and call `lookup`.

    Args:
        input_dim: int. Rows of the table.
        output_dim: int. Width of each row.
        **kwargs: Passed on to `keras.layers.Embedding`.

    Example:

    ```python
    layer = SparseRowsEmbedding(input_dim=10, output_dim=4)
    layer(np.array([3, 5]))   # shape (2, 4)
    ```
    """

    def lookup(self, rows: Any) -> Any:
        """The table's vectors of `rows` (int tensor, any shape).

        Returns:
            tensor `rows.shape + (output_dim,)` in the compute dtype.
        """
        if rows.dtype not in ("int32", "int64"):
            rows = ops.cast(rows, "int32")
        lookups = _ACTIVE.get()
        if lookups is not None and self.embeddings.path in lookups.tables:
            values = lookups.gather(self.embeddings, rows)
        else:
            values = ops.take(self.embeddings, rows, axis=0)
        # Cast the looked-up rows, not the table: under mixed precision a
        # cast of the table would be a pass over every row.
        return ops.cast(values, self.compute_dtype)

    def call(self, inputs: Any) -> Any:
        return self.lookup(inputs)
