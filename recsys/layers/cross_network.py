"""`CrossNetwork`: DCN-v2's stack of explicit feature-cross layers."""

from typing import Any

import keras
import keras_rs
from keras import ops


@keras.saving.register_keras_serializable(package="recsys")
class CrossNetwork(keras.layers.Layer):
    """A stack of `keras_rs.layers.FeatureCross` layers over one input.

    Layer `i` computes `x_{i+1} = x0 * (W_i x_i + b_i) + x_i` from the input
    `x0` and the previous layer's output (Wang et al., DCN-v2): each layer
    raises the degree of the feature crosses by one, and the output keeps
    the input's size, so a stack of `num_layers` learns crosses up to degree
    `num_layers + 1`.

    Args:
        num_layers: int. Number of cross layers. Defaults to `2`.
        projection_dim: int or None. Low-rank size of each layer's matrix
            (`W = U V`, `U` of shape `(input_dim, projection_dim)`); `None`
            is full rank. Defaults to `None`.
        **kwargs: Passed on to `keras.layers.Layer`.

    Input shape:
        `(batch, input_dim)`.

    Output shape:
        `(batch, input_dim)`.

    Example:

    ```python
    layer = CrossNetwork(num_layers=2)
    layer(np.ones((4, 8), "float32"))  # shape (4, 8)
    ```

    References:
    - [R. Wang et al., 2021](https://arxiv.org/abs/2008.13535)
    """

    def __init__(
        self,
        num_layers: int = 2,
        projection_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.projection_dim = projection_dim
        if not isinstance(num_layers, int) or num_layers < 1:
            # Named as the config names it (`model.num_cross_layers`).
            raise ValueError(
                "`num_layers` (num_cross_layers) must be a positive integer. "
                f"Received: num_layers={num_layers!r}"
            )
        if projection_dim is not None and (
            not isinstance(projection_dim, int) or projection_dim < 1
        ):
            raise ValueError(
                "`projection_dim` must be a positive integer or None. "
                f"Received: projection_dim={projection_dim!r}"
            )
        self.crosses = [
            keras_rs.layers.FeatureCross(
                projection_dim=projection_dim,
                dtype=self.dtype_policy,
                name=f"cross_{i}",
            )
            for i in range(num_layers)
        ]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        # FeatureCross creates its Dense layers in `build` but builds them
        # on its first call: one call on a zero row gives a new or reloaded
        # layer all its weights now, in the order training creates them.
        row = ops.zeros((1, input_shape[-1]), dtype=self.compute_dtype)
        for cross in self.crosses:
            cross(row, row)
        self.built = True

    def call(self, inputs: Any) -> Any:
        """Crosses `inputs` with itself `num_layers` times.

        Args:
            inputs: float tensor `(batch, input_dim)`.

        Returns:
            float tensor `(batch, input_dim)`.
        """
        x = inputs
        for cross in self.crosses:
            x = cross(inputs, x)
        return x

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "projection_dim": self.projection_dim,
            }
        )
        return config
