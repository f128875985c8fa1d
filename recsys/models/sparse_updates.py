"""Sparse row updates of embedding tables inside `keras.Model.fit` (JAX).

Why this exists: Keras 3 on JAX differentiates `take(table, ids)` with
respect to the whole table, and its optimizers update whole variables, so a
step costs O(table rows): 3.5k examples/s with a 10M-row user table against
50k with 100k rows (issue #13). TFRS (TensorFlow's `IndexedSlices`) updates
only the looked-up rows; keras-rs does so only on TPU SparseCore. No Keras
facility does it on CPU or GPU, so `SparseRowUpdates` overrides the JAX
`train_step` and keeps everything else Keras: `compile`, `fit`, callbacks,
the optimizer object and its slot variables (checkpoints and `.keras` files
are unchanged), `keras.distribution`.

One step, under the same `jit` as Keras' own step:

1. A shape pass (`jax.eval_shape`, trace time only) runs the forward under
   `RowLookups` to learn the shape of the rows each table looks up.
2. The loss is differentiated with respect to the dense weights and to one
   zero `delta` per lookup, added to the looked-up vectors: the gradient of
   a delta is the gradient of those rows. No table-sized array is built.
3. Dense weights go through the Keras optimizer as usual. Per table, the
   rows are deduplicated (`jnp.unique` with a static size), their gradients
   summed, and the optimizer's rule is applied to those rows of the table
   and of its slots with gather/scatter. The state is donated, so XLA
   scatters in place.

Row rules: Adagrad equals the dense update (rows without a gradient do not
move under Adagrad); SGD without momentum equals it too; Adam and SGD with
momentum are the "lazy" versions (TF's `LazyAdam`): a row's moments decay
only in steps that look it up, with Adam's bias correction from the global
step. Under `keras.distribution` the step is written for the global batch,
so XLA combines row gradients across devices and processes.

A table falls back to the dense Keras update when its rows cannot be
updated alone: a regularizer or constraint on the table (they touch every
row), or an optimizer or option without a row rule here (another optimizer
class, weight decay, gradient clipping, EMA, gradient accumulation, loss
scaling for float16). A warning says so once.
"""

import warnings
from typing import Any

import keras

from recsys.layers.sparse_rows_embedding import SparseRowsEmbedding


def _optimizer_rule(
    optimizer: keras.optimizers.Optimizer,
) -> tuple[str | None, str | None]:
    """`(rule, None)` for an optimizer with a row rule, else `(None, why)`."""
    options = {
        "weight_decay": optimizer.weight_decay,
        "clipnorm": optimizer.clipnorm,
        "global_clipnorm": optimizer.global_clipnorm,
        "clipvalue": optimizer.clipvalue,
        "use_ema": optimizer.use_ema,
        "gradient_accumulation_steps": optimizer.gradient_accumulation_steps,
        "loss_scale_factor": optimizer.loss_scale_factor,
    }
    used = [name for name, value in options.items() if value]
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return None, "loss scaling (float16 mixed precision)"
    if used:
        return None, f"optimizer options {used}"
    for rule, cls in (
        ("adagrad", keras.optimizers.Adagrad),
        ("adam", keras.optimizers.Adam),
        ("sgd", keras.optimizers.SGD),
    ):
        if type(optimizer) is cls:
            return rule, None
    return None, f"optimizer {type(optimizer).__name__}"


def _slot_lists(
    optimizer: keras.optimizers.Optimizer, rule: str
) -> list[list[Any]]:
    """The optimizer's slot variable lists of a rule, in a fixed order."""
    # Keras keeps an optimizer's slots in private lists indexed like the
    # variables it was built with; reading them here is the one place
    # recsys depends on that layout.
    if rule == "adagrad":
        return [optimizer._accumulators]
    if rule == "adam":
        slots = [optimizer._momentums, optimizer._velocities]
        if optimizer.amsgrad:
            slots.append(optimizer._velocity_hats)
        return slots
    return [optimizer.momentums] if optimizer.momentum else []


class SparseRowUpdates:
    """Mixin for a `keras.Model`: its embedding tables get row updates.

    Every trainable `SparseRowsEmbedding` table of the model
    (`PooledEmbedding`, `MultiHashEmbedding`, the tables of an
    `EmbeddingStack`) with at least `min_rows_per_lookup` rows per lookup
    of a step is updated only in the rows a batch looked up, in the
    table and in the optimizer's slots, when the backend is JAX. Other
    backends train as plain Keras does (dense updates). Set
    `model.sparse_updates = False` to train densely on JAX too.

    Example:

    ```python
    class MyModel(SparseRowUpdates, keras.Model):
        ...
    model.compile(optimizer=keras.optimizers.Adagrad(0.1))
    model.fit(inputs)        # one step costs O(batch), not O(table)
    ```
    """

    _sparse_updates = True
    # Provided by `keras.Model`, which this class is mixed into.
    optimizer: Any
    trainable_variables: list[Any]
    train_function: Any
    # A table gets row updates when it has at least this many rows per
    # lookup of a step; smaller ones are updated densely, which is cheaper
    # there: deduplicating and scattering rows costs more than one pass over
    # a small table. Measured (2 cores, batch 512, one lookup per example
    # and table, Adagrad): 4k rows dense 279k examples/s, by rows 241k; 16k
    # rows 118k and 244k; 64k rows 42k and 237k. MovieLens' tables (9k
    # items, 5k history lookups a step) stay dense. 0: every table by rows.
    min_rows_per_lookup = 16

    @property
    def sparse_updates(self) -> bool:
        """bool. Whether `fit` on JAX updates embedding rows sparsely."""
        return self._sparse_updates

    @sparse_updates.setter
    def sparse_updates(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ValueError(
                f"`sparse_updates` must be a bool. Received: {value!r}"
            )
        self._sparse_updates = value
        # The train function is traced with the old setting.
        self.train_function = None

    def train_step(self, *args: Any) -> Any:
        if keras.backend.backend() != "jax" or not self.sparse_updates:
            return super().train_step(*args)  # type: ignore[misc]
        plan = self._sparse_plan()
        if plan is None:
            return super().train_step(*args)  # type: ignore[misc]
        return plan.train_step(*args)

    def _sparse_plan(self) -> "_SparsePlan | None":
        """The `_SparsePlan` of this model and optimizer, or `None`."""
        key = (id(self.optimizer), len(self.trainable_variables))
        cached = getattr(self, "_sparse_plan_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = _SparsePlan.build(self)
        # Past Keras' attribute tracking: the plan holds the model's own
        # variables, which must not be tracked twice.
        object.__setattr__(self, "_sparse_plan_cache", (key, plan))
        return plan


class _SparsePlan:
    """Which variables are tables, where their slots are, and the step."""

    def __init__(
        self,
        model: keras.Model,
        rule: str,
        tables: list[tuple[int, Any, list[int]]],
    ) -> None:
        self.model = model
        self.rule = rule
        # (index in trainable_variables, variable, [slot indices]).
        self.tables = tables

    @classmethod
    def build(cls, model: keras.Model) -> "_SparsePlan | None":
        trainable = model.trainable_variables
        index = {id(v): i for i, v in enumerate(trainable)}
        candidates = []
        dense_tables = []
        for layer in model._flatten_layers(include_self=False):
            if not isinstance(layer, SparseRowsEmbedding):
                continue
            variable = layer.embeddings
            if id(variable) not in index:
                continue  # frozen
            if (
                layer.embeddings_regularizer is not None
                or layer.embeddings_constraint is not None
            ):
                dense_tables.append(variable.path)
                continue
            candidates.append(variable)
        if not candidates:
            return None
        optimizer = model.optimizer
        rule, why = _optimizer_rule(optimizer)
        if rule is None:
            warnings.warn(
                f"Sparse row updates are off for this model: {why} has no "
                "row-wise rule (supported: Adagrad, Adam, SGD without weight "
                "decay, clipping, EMA or accumulation). Embedding tables are "
                "updated densely, at a cost that grows with their rows.",
                stacklevel=2,
            )
            return None
        if dense_tables:
            warnings.warn(
                f"Tables {dense_tables} have a regularizer or constraint, "
                "which touches every row: they are updated densely.",
                stacklevel=2,
            )
        if not optimizer.built:
            optimizer.build(trainable)
        slot_index = {id(v): i for i, v in enumerate(optimizer.variables)}
        slot_lists = _slot_lists(optimizer, rule)
        tables = []
        for variable in candidates:
            position = optimizer._get_variable_index(variable)
            slots = [slot_index[id(s[position])] for s in slot_lists]
            tables.append((index[id(variable)], variable, slots))
        return cls(model, rule, tables)

    def train_step(self, state: Any, data: Any) -> Any:
        # Imported here: this module is imported on every backend.
        from recsys.models.sparse_step import sparse_train_step

        return sparse_train_step(self, state, data)
