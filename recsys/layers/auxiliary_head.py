"""`AuxiliaryHead`: a second regression task learnt beside the main one."""

import numbers
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="recsys")
class AuxiliaryHead(keras.layers.Layer):
    """A one-unit regression head that adds its weighted error to the loss.

    Multi-task learning: the head reads the same hidden layers as the main
    task and predicts an auxiliary target (e.g. the rating behind a "liked"
    label). Called with the target, it adds `weight` times its mean squared
    error to the loss of the model that holds it; called without (serving,
    validation), it only estimates. The target enters as an input, as in
    Keras' endpoint-layer pattern.

    Args:
        weight: float. Weight of the squared error in the loss. Defaults to
            `1.0`.
        mean: float. Starting estimate (the head's bias): the target's
            training mean. Defaults to `0.0`.
        **kwargs: Passed on to `keras.layers.Layer`.

    Input shape:
        `x` of shape `(batch, width)`; `target` of shape `(batch,)` or
        `(batch, 1)`.

    Output shape:
        `(batch,)`.

    Example:

    ```python
    head = AuxiliaryHead(weight=0.5, mean=3.5)
    estimate = head(hidden, target=ratings)  # adds 0.5 * MSE to head.losses
    ```
    """

    def __init__(
        self, weight: float = 1.0, mean: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.weight = weight
        self.mean = mean
        if (
            isinstance(weight, bool)
            or not isinstance(weight, numbers.Real)
            or not weight >= 0
        ):
            raise ValueError(
                "`weight` (auxiliary_weight) must be a number >= 0. "
                f"Received: weight={weight!r}"
            )
        self.dense: keras.layers.Dense = keras.layers.Dense(
            1,
            bias_initializer=keras.initializers.Constant(mean),
            dtype=self.dtype_policy,
            name="dense",
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.dense.build(input_shape)
        self.built = True

    def call(self, x: Any, target: Any = None) -> Any:
        """Estimates the target; adds the weighted error when it is given.

        Args:
            x: float tensor `(batch, width)`.
            target: optional tensor `(batch,)` or `(batch, 1)`.

        Returns:
            float tensor `(batch,)`.
        """
        estimate = self.dense(x)[:, 0]
        if target is not None:
            if len(target.shape) == 2 and target.shape[1] == 1:
                # `frame[["rating"]]`: `(batch, 1)` would broadcast against
                # `(batch,)` to every pair of rows.
                target = target[:, 0]
            if len(target.shape) != 1:
                raise ValueError(
                    "`target` must have shape `(batch,)` or `(batch, 1)`. "
                    f"Received: target.shape={tuple(target.shape)}"
                )
            error = estimate - ops.cast(target, estimate.dtype)
            self.add_loss(self.weight * ops.mean(ops.square(error)))
        return estimate

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None]:
        return (input_shape[0],)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"weight": self.weight, "mean": self.mean})
        return config
