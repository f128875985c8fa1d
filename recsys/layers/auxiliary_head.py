"""`AuxiliaryHead`: a second regression task learnt beside the main one."""

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
        `x` of shape `(batch, width)`; `target` of shape `(batch,)`.

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
        if weight < 0:
            raise ValueError(
                "`weight` (auxiliary_weight) must be >= 0. "
                f"Received: weight={weight}"
            )
        self.dense = keras.layers.Dense(
            1, bias_initializer=keras.initializers.Constant(mean), name="dense"
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.dense.build(input_shape)
        self.built = True

    def call(self, x: Any, target: Any = None) -> Any:
        """Estimates the target; adds the weighted error when it is given.

        Args:
            x: float tensor `(batch, width)`.
            target: optional tensor `(batch,)`.

        Returns:
            float tensor `(batch,)`.
        """
        estimate = self.dense(x)[:, 0]
        if target is not None:
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
