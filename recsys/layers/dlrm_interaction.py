"""`DLRMInteraction`: DLRM's pairwise dot products of feature vectors."""

from typing import Any

import keras
import keras_rs
from keras import ops

from recsys.errors import positive_int


@keras.saving.register_keras_serializable(package="recsys")
class DLRMInteraction(keras.layers.Layer):
    """Dot products of every pair of feature vectors, as in DLRM.

    The numeric columns go through a bottom MLP (ReLU `bottom_units`, then
    a ReLU layer of size `dot_dim`) to one vector; each categorical vector
    whose size is not `dot_dim` gets a linear projection to it, since
    `keras_rs.layers.DotInteraction` needs vectors of one size. The output
    is the dot product of every pair of vectors, followed by the bottom
    vector (when there are numeric columns).

    Args:
        input_dims: list of int. Size of each categorical vector.
        num_numeric: int. Number of numeric columns. Defaults to `0`.
        dot_dim: int. Size every vector is brought to. Defaults to `16`.
        bottom_units: list of int. ReLU layers over the numeric columns
            before the last one, of size `dot_dim`. Defaults to `()`.
        **kwargs: Passed on to `keras.layers.Layer`.

    Input shape:
        `(vectors, numeric)`: a list of `(batch, input_dims[i])` tensors and
        a list of `num_numeric` `(batch, 1)` tensors.

    Output shape:
        `(batch, pairs)`, or `(batch, pairs + dot_dim)` with numeric
        columns, where `pairs = n * (n - 1) / 2` for `n` vectors.

    Example:

    ```python
    layer = DLRMInteraction(input_dims=[4, 4], num_numeric=1, dot_dim=4)
    layer(([np.ones((2, 4)), np.ones((2, 4))], [np.ones((2, 1))]))
    # shape (2, 3 + 4): three pairs, then the bottom vector
    ```

    References:
    - [M. Naumov et al., 2019](https://arxiv.org/abs/1906.00091)
    """

    def __init__(
        self,
        input_dims: list[int],
        num_numeric: int = 0,
        dot_dim: int = 16,
        bottom_units: list[int] | tuple[int, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_dims = list(input_dims)
        self.num_numeric = num_numeric
        self.dot_dim = dot_dim
        self.bottom_units = list(bottom_units)
        if not isinstance(dot_dim, int) or dot_dim < 1:
            raise ValueError(
                "`dot_dim` must be a positive integer. "
                f"Received: dot_dim={dot_dim!r}"
            )
        for i, dim in enumerate(self.input_dims):
            positive_int(dim, f"input_dims[{i}]")
        if (
            not isinstance(num_numeric, int)
            or isinstance(num_numeric, bool)
            or num_numeric < 0
        ):
            raise ValueError(
                "`num_numeric` must be an integer >= 0. "
                f"Received: num_numeric={num_numeric!r}"
            )
        if not all(isinstance(u, int) and u > 0 for u in self.bottom_units):
            raise ValueError(
                "`bottom_units` must be a list of positive integers. "
                f"Received: bottom_units={self.bottom_units}"
            )
        vectors = len(self.input_dims) + (num_numeric > 0)
        if vectors < 2:
            raise ValueError(
                '`DLRMInteraction` (interaction="dot") needs at least two '
                "vectors to multiply (categorical columns, plus one for all "
                "numeric columns). "
                f"Received: input_dims={self.input_dims}, "
                f"num_numeric={num_numeric}"
            )
        self.projections = [
            keras.layers.Dense(
                dot_dim,
                use_bias=False,
                dtype=self.dtype_policy,
                name=f"projection_{i}",
            )
            if dim != dot_dim
            else None
            for i, dim in enumerate(self.input_dims)
        ]
        self.bottom = (
            [
                keras.layers.Dense(
                    units,
                    activation="relu",
                    dtype=self.dtype_policy,
                    name=f"bottom_{i}",
                )
                for i, units in enumerate([*self.bottom_units, dot_dim])
            ]
            if num_numeric
            else []
        )
        self.dot = keras_rs.layers.DotInteraction(
            dtype=self.dtype_policy, name="dot_interaction"
        )

    def build(self, input_shape: Any = None) -> None:
        # Every shape is known from the constructor's arguments.
        for projection, dim in zip(
            self.projections, self.input_dims, strict=True
        ):
            if projection is not None:
                projection.build((None, dim))
        width = self.num_numeric
        for layer in self.bottom:
            layer.build((None, width))
            width = layer.units
        self.built = True

    def call(self, inputs: tuple[list[Any], list[Any]]) -> Any:
        """The pairwise dot products (then the bottom vector).

        Args:
            inputs: `(vectors, numeric)`, see the class docstring.

        Returns:
            float tensor `(batch, output_dim)`.
        """
        vectors, numeric = inputs
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

    @property
    def output_dim(self) -> int:
        """Size of the output: the pairs, plus `dot_dim` with numerics."""
        vectors = len(self.input_dims) + (1 if self.bottom else 0)
        return vectors * (vectors - 1) // 2 + (
            self.dot_dim if self.bottom else 0
        )

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (None, self.output_dim)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "input_dims": self.input_dims,
                "num_numeric": self.num_numeric,
                "dot_dim": self.dot_dim,
                "bottom_units": self.bottom_units,
            }
        )
        return config
