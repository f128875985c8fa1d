"""`PooledEmbedding`: an embedding table that pools multi-valued inputs."""

from typing import Any

import keras
import keras_rs
from keras import ops

from recsys.layers.sparse_rows_embedding import SparseRowsEmbedding


@keras.saving.register_keras_serializable(package="recsys")
class PooledEmbedding(keras_rs.layers.EmbedReduce, SparseRowsEmbedding):
    """An embedding lookup table that pools padded multi-valued inputs.

    Row `i` of the table is the vector of id `i`. A 1-D input `(batch,)` is a
    plain lookup; a 2-D input `(batch, length)` (genres, words, a user's
    history) is looked up and pooled with `combiner` over the ids that are not
    `0`: id `0` is padding and is masked out, so a row of padding pools to the
    zero vector.

    Its lookups go through `SparseRowsEmbedding.lookup` (`EmbedReduce` calls
    it as its `Embedding` base), so a sparse training step updates only the
    rows a batch touched.

    Args:
        input_dim: int. Rows of the table (largest id + 1).
        output_dim: int. Size of each vector.
        combiner: str. `"mean"`, `"sum"` or `"sqrtn"`. Defaults to `"mean"`.
        embeddings_initializer: Initializer of the table. Defaults to
            `"uniform"`.
        **kwargs: Passed on to `keras_rs.layers.EmbedReduce`.

    Input shape:
        `(batch,)` or `(batch, length)` integer ids in `[0, input_dim)`. As
        in `keras.layers.Embedding`, others are not checked: under JAX an id
        past the end reads a row of NaN, and `-1` the last row.

    Output shape:
        `(batch, output_dim)`.

    Example:

    ```python
    layer = PooledEmbedding(input_dim=10, output_dim=4)
    layer(np.array([[3, 5, 0], [2, 0, 0]]))   # shape (2, 4)
    ```
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        combiner: str = "mean",
        embeddings_initializer: Any = "uniform",
        **kwargs: Any,
    ) -> None:
        kwargs.pop("mask_zero", None)
        super().__init__(
            input_dim,
            output_dim,
            combiner=combiner,
            embeddings_initializer=embeddings_initializer,
            **kwargs,
        )
        if not isinstance(input_dim, int) or input_dim < 1:
            raise ValueError(
                "`input_dim` must be a positive integer. "
                f"Received: input_dim={input_dim}"
            )
        if not isinstance(output_dim, int) or output_dim < 1:
            raise ValueError(
                "`output_dim` must be a positive integer. "
                f"Received: output_dim={output_dim}"
            )

    def call(self, inputs: Any, weights: Any = None) -> Any:
        """Looks up and pools `inputs`.

        Args:
            inputs: int tensor `(batch,)` or `(batch, length)`.
            weights: optional float tensor shaped like `inputs`; defaults to
                the padding mask `inputs != 0` for 2-D inputs.

        Returns:
            float tensor `(batch, output_dim)`.
        """
        if weights is None and len(inputs.shape) == 2:
            weights = ops.cast(ops.not_equal(inputs, 0), self.compute_dtype)
        # EmbedReduce's `call`, past SparseRowsEmbedding's (which takes no
        # weights) in the method order.
        return super().call(inputs, weights)  # type: ignore[call-arg]
