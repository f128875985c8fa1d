"""The JAX training step of `SparseRowUpdates` (see `sparse_updates.py`)."""

import math
from typing import Any

import jax
import jax.numpy as jnp
import keras

from recsys.layers.sparse_rows_embedding import RowLookups


# `plan` is a `recsys.models.sparse_updates._SparsePlan` (not imported: that
# module imports this one).
def sparse_train_step(plan: Any, state: Any, data: Any) -> Any:
    """Keras' JAX `train_step`, with embedding tables updated row by row.

    Args:
        plan: `_SparsePlan`: the model, the optimizer's row rule and, per
            table, its position in `trainable_variables` and its slots'
            positions in `optimizer.variables`.
        state: the JAX trainer's `(trainable, non_trainable, optimizer,
            metrics)` variable values.
        data: one batch.

    Returns:
        `(logs, state)`, as `keras.Model.train_step` on JAX.
    """
    model = plan.model
    trainable, non_trainable, optimizer_values, metrics_values = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    kwargs = {"training": True} if model._call_has_training_arg else {}
    widths = {
        variable.path: variable.shape[1] for _, variable, _ in plan.tables
    }

    def looked_up_rows(
        trainable: Any, non_trainable: Any, x: Any
    ) -> dict[str, list[Any]]:
        with RowLookups(widths) as lookups:
            model.stateless_call(trainable, non_trainable, x, **kwargs)
        return lookups.rows

    # Trace-time only: the shapes of the rows each table looks up. A table
    # not looked up, or small next to its lookups, is left to the dense
    # update (`SparseRowUpdates.min_rows_per_lookup` says why).
    row_shapes = jax.eval_shape(looked_up_rows, trainable, non_trainable, x)

    def worth_it(variable: Any) -> bool:
        lookups = sum(
            math.prod(rows.shape) for rows in row_shapes[variable.path]
        )
        return lookups and (
            variable.shape[0] >= model.min_rows_per_lookup * lookups
        )

    tables = [t for t in plan.tables if worth_it(t[1])]
    widths = {variable.path: variable.shape[1] for _, variable, _ in tables}
    row_shapes = {path: row_shapes[path] for path in widths}
    table_positions = {position for position, _, _ in tables}
    dense_positions = [
        i for i in range(len(trainable)) if i not in table_positions
    ]
    deltas = {
        path: [
            jnp.zeros(tuple(rows.shape) + (widths[path],), "float32")
            for rows in calls
        ]
        for path, calls in row_shapes.items()
    }

    def loss_fn(dense_values: Any, deltas: Any) -> Any:
        values = list(trainable)
        for position, value in zip(dense_positions, dense_values, strict=True):
            values[position] = value
        with RowLookups(widths, deltas) as lookups:
            loss, aux = model.compute_loss_and_updates(
                values,
                non_trainable,
                metrics_values,
                x,
                y,
                sample_weight,
                training=True,
                optimizer_variables=optimizer_values,
            )
        return loss, (aux, lookups.rows)

    dense_values = [trainable[i] for i in dense_positions]
    (_, (aux, rows)), (dense_grads, row_grads) = jax.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True
    )(dense_values, deltas)
    unscaled_loss, y_pred, non_trainable, metrics_values = aux

    optimizer = model.optimizer
    optimizer_values = list(optimizer_values)
    learning_rate, step = _learning_rate_and_step(optimizer, optimizer_values)
    trainable = list(trainable)
    for position, variable, slots in tables:
        path = variable.path
        table, slot_values = update_rows(
            plan.rule,
            optimizer,
            trainable[position],
            [optimizer_values[j] for j in slots],
            jnp.concatenate([r.reshape(-1) for r in rows[path]]),
            jnp.concatenate(
                [g.reshape(-1, widths[path]) for g in row_grads[path]]
            ),
            learning_rate,
            step,
        )
        trainable[position] = table
        for j, value in zip(slots, slot_values, strict=True):
            optimizer_values[j] = value

    # `trainable_variables` walks every layer: read it once (a table of
    # 300 columns has 600 variables).
    variables = model.trainable_variables
    dense_variables = [variables[i] for i in dense_positions]
    mapping = list(zip(optimizer.variables, optimizer_values, strict=True))
    mapping += list(zip(dense_variables, dense_values, strict=True))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        if dense_variables:
            optimizer.apply(dense_grads, dense_variables)
        else:
            # `apply` with no gradients returns before counting the step.
            optimizer.iterations.assign_add(1)
    for position, variable in zip(
        dense_positions, dense_variables, strict=True
    ):
        trainable[position] = scope.get_current_value(variable)
    optimizer_values = [scope.get_current_value(v) for v in optimizer.variables]

    logs, metrics_values = model._update_metrics_variables(
        metrics_values, unscaled_loss, x, y, y_pred, sample_weight
    )
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)


def _learning_rate_and_step(
    optimizer: keras.optimizers.Optimizer, optimizer_values: list[Any]
) -> tuple[Any, Any]:
    """The learning rate and iteration count before this step's update."""
    mapping = list(zip(optimizer.variables, optimizer_values, strict=True))
    with keras.StatelessScope(state_mapping=mapping):
        learning_rate = jnp.asarray(optimizer.learning_rate, "float32")
        step = jnp.asarray(optimizer.iterations.value)
    return learning_rate, step


def update_rows(
    rule: str,
    optimizer: keras.optimizers.Optimizer,
    table: Any,
    slots: list[Any],
    rows: Any,
    grads: Any,
    lr: Any,
    step: Any,
) -> tuple[Any, list[Any]]:
    """Applies an optimizer's rule to the rows a batch looked up.

    Repeated rows have their gradients summed first, so each row gets one
    update, as in the dense gradient. Elementwise, the arithmetic is Keras'
    own `update_step` of the same optimizer, in the same order.

    Args:
        rule: str. `"adagrad"`, `"adam"` or `"sgd"`.
        optimizer: the Keras optimizer (its hyperparameters).
        table: array `(rows, width)`.
        slots: list of arrays shaped like `table` (the rule's slots).
        rows: int array `(n,)`, the looked-up rows, with repeats.
        grads: array `(n, width)`, the gradient of each lookup.
        lr: float scalar. The current learning rate.
        step: int scalar. The optimizer's iterations before this update.

    Returns:
        `(table, slots)`, updated.
    """
    n = rows.shape[0]
    # Padded to a static size with an out-of-range row, which gathers as 0
    # and is dropped by the scatters.
    unique, inverse = jnp.unique(
        rows, size=n, fill_value=table.shape[0], return_inverse=True
    )
    grad = jax.ops.segment_sum(
        grads.astype(table.dtype), inverse.reshape(-1), num_segments=n
    )

    def get(array: Any) -> Any:
        return array.at[unique].get(mode="fill", fill_value=0)

    def put(array: Any, values: Any) -> Any:
        return array.at[unique].set(
            values, mode="drop", indices_are_sorted=True
        )

    lr = lr.astype(table.dtype)
    weights = get(table)
    if rule == "adagrad":
        accumulator = get(slots[0]) + jnp.square(grad)
        weights = weights - (lr * grad) / jnp.sqrt(
            accumulator + optimizer.epsilon
        )
        new_slots = [accumulator]
    elif rule == "adam":
        local_step = (step + 1).astype(table.dtype)
        beta_1_power = jnp.power(
            jnp.asarray(optimizer.beta_1, table.dtype), local_step
        )
        beta_2_power = jnp.power(
            jnp.asarray(optimizer.beta_2, table.dtype), local_step
        )
        alpha = lr * jnp.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        momentum = get(slots[0])
        momentum = momentum + (grad - momentum) * (1 - optimizer.beta_1)
        velocity = get(slots[1])
        velocity = velocity + (jnp.square(grad) - velocity) * (
            1 - optimizer.beta_2
        )
        new_slots = [momentum, velocity]
        if optimizer.amsgrad:
            velocity = jnp.maximum(get(slots[2]), velocity)
            new_slots.append(velocity)
        weights = weights - (momentum * alpha) / (
            jnp.sqrt(velocity) + optimizer.epsilon
        )
    elif slots:  # SGD with momentum
        momentum_rate = jnp.asarray(optimizer.momentum, table.dtype)
        momentum = get(slots[0]) * momentum_rate - grad * lr
        if optimizer.nesterov:
            weights = weights + (momentum * momentum_rate - grad * lr)
        else:
            weights = weights + momentum
        new_slots = [momentum]
    else:
        weights = weights - grad * lr
        new_slots = []
    return put(table, weights), [
        put(slot, value) for slot, value in zip(slots, new_slots, strict=True)
    ]
