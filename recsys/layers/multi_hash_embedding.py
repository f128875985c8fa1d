"""`MultiHashEmbedding`: each id looks up several rows of one shared table."""

from typing import Any

import keras
from keras import ops

from recsys.features.hashing import MIX_MULTIPLIER
from recsys.features.hashing import multi_hash_salts
from recsys.layers.sparse_rows_embedding import SparseRowsEmbedding

SUPPORTED_HASH_COMBINERS = ("sum", "concat")
SUPPORTED_COMBINERS = ("mean", "sum", "sqrtn")


def _shift_right(x: Any, bits: int) -> Any:
    """Logical right shift of int32 tensors (`right_shift` is arithmetic)."""
    return ops.bitwise_and(ops.right_shift(x, bits), (1 << (32 - bits)) - 1)


def _check_ids_rank(shape: tuple[int | None, ...]) -> None:
    """Refuses ids of 3 dimensions or more: they were looked up, and the
    output's shape was not the one `compute_output_shape` declared."""
    if len(shape) > 2:
        raise ValueError(
            "`MultiHashEmbedding` reads ids of shape `(batch,)` or "
            f"`(batch, length)`. Received: input_shape={tuple(shape)}"
        )


@keras.saving.register_keras_serializable(package="recsys")
class MultiHashEmbedding(SparseRowsEmbedding):
    """Compositional embedding: `num_hashes` rows of a shared table per id.

    A table of one row per value does not fit when a column has millions of
    values; hashing them into fewer rows merges values, and the merged ones
    (popular ids among them) become indistinguishable. Here each id is hashed
    `num_hashes` times into one table of `num_buckets` rows and its vector is
    the sum or the concatenation of those rows, so two values are merged only
    when all their rows agree: with 2 hashes, about `n / m ** 2` of them
    instead of `n / m` (Svenstrup et al., 2017; Shi et al., 2020). The hashes
    run inside the model (`recsys.features.hashing.multi_hash` is the numpy
    reference), so the preprocessor keeps one id per value.

    Id `0` is padding: it maps to row `0` of every hash; in 2-D inputs it is
    masked out of the pooling, as in `PooledEmbedding`.

    Args:
        num_buckets: int. Rows shared by all hashes (the table has one more,
            row `0`, for padding).
        output_dim: int. Size of the output vector. With
            `hash_combiner="concat"` each row has
            `output_dim // num_hashes` values.
        num_hashes: int. Rows per id. Defaults to `2`.
        hash_combiner: str. `"sum"` or `"concat"` of an id's rows. Defaults
            to `"sum"`.
        combiner: str. Pooling of 2-D inputs over their non-zero ids:
            `"mean"`, `"sum"` or `"sqrtn"`. Defaults to `"mean"`.
        seed: int. Picks the hash functions. Defaults to `0`.
        embeddings_initializer: Initializer of the table. Defaults to
            `"uniform"`.
        **kwargs: Passed on to `keras.layers.Embedding` (through
            `SparseRowsEmbedding`, whose lookups a sparse training step
            updates row by row).

    Input shape:
        `(batch,)` or `(batch, length)` integer ids in `[0, 2**31)`.

    Output shape:
        `(batch, output_dim)`.

    Example:

    ```python
    layer = MultiHashEmbedding(num_buckets=1000, output_dim=32)
    layer(np.array([12_345_678, 3]))   # shape (2, 32); 1,001 x 32 weights
    ```
    """

    def __init__(
        self,
        num_buckets: int,
        output_dim: int,
        num_hashes: int = 2,
        hash_combiner: str = "sum",
        combiner: str = "mean",
        seed: int = 0,
        embeddings_initializer: Any = "uniform",
        **kwargs: Any,
    ) -> None:
        for name, value in (
            ("num_buckets", num_buckets),
            ("output_dim", output_dim),
            ("num_hashes", num_hashes),
        ):
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or (value < 1)
            ):
                raise ValueError(
                    f"`{name}` must be a positive integer. "
                    f"Received: {name}={value!r}"
                )
        if hash_combiner not in SUPPORTED_HASH_COMBINERS:
            raise ValueError(
                f"`hash_combiner` must be one of {SUPPORTED_HASH_COMBINERS}. "
                f"Received: hash_combiner={hash_combiner!r}"
            )
        if combiner not in SUPPORTED_COMBINERS:
            raise ValueError(
                f"`combiner` must be one of {SUPPORTED_COMBINERS}. "
                f"Received: combiner={combiner!r}"
            )
        if hash_combiner == "concat" and output_dim % num_hashes:
            raise ValueError(
                'With hash_combiner="concat", `output_dim` must be a '
                f"multiple of `num_hashes`. Received: output_dim={output_dim}"
                f", num_hashes={num_hashes}"
            )
        row_dim = output_dim
        if hash_combiner == "concat":
            row_dim = output_dim // num_hashes
        kwargs.pop("input_dim", None)
        kwargs.pop("mask_zero", None)
        # `Embedding` owns the table: `input_dim` rows of `output_dim` (its
        # name for the row width) values.
        super().__init__(
            num_buckets + 1,
            row_dim,
            embeddings_initializer=embeddings_initializer,
            **kwargs,
        )
        self.num_buckets = num_buckets
        self.vector_dim = output_dim
        self.num_hashes = num_hashes
        self.hash_combiner = hash_combiner
        self.combiner = combiner
        self.seed = seed
        self._salts = [int(s) for s in multi_hash_salts(num_hashes, seed)]

    def hash_rows(self, inputs: Any) -> Any:
        """The table rows of each id.

        Args:
            inputs: int tensor of ids, any shape.

        Returns:
            int32 tensor `inputs.shape + (num_hashes,)`, rows in
            `[1, num_buckets]` and `0` for id `0`.
        """
        ids = ops.expand_dims(ops.cast(inputs, "int32"), -1)
        x = ops.bitwise_xor(ids, ops.convert_to_tensor(self._salts, "int32"))
        for _ in range(2):
            x = ops.multiply(
                ops.bitwise_xor(x, _shift_right(x, 16)), MIX_MULTIPLIER
            )
        x = ops.bitwise_and(ops.bitwise_xor(x, _shift_right(x, 16)), 2**31 - 1)
        rows = ops.add(ops.mod(x, self.num_buckets), 1)
        return ops.where(ops.equal(ids, 0), 0, rows)

    def call(self, inputs: Any) -> Any:
        """Looks up, combines and (for 2-D inputs) pools `inputs`.

        Args:
            inputs: int tensor `(batch,)` or `(batch, length)`.

        Returns:
            float tensor `(batch, output_dim)`.
        """
        _check_ids_rank(inputs.shape)
        vectors = self.lookup(self.hash_rows(inputs))  # (..., hashes, row)
        if self.hash_combiner == "sum":
            x = ops.sum(vectors, axis=-2)
        else:
            x = ops.reshape(vectors, (-1, *inputs.shape[1:], self.vector_dim))
        if len(inputs.shape) == 1:
            return x
        weights = ops.cast(ops.not_equal(inputs, 0), x.dtype)
        x = ops.sum(x * weights[..., None], axis=-2)
        if self.combiner == "sum":
            return x
        if self.combiner == "mean":
            denominator = ops.sum(weights, axis=-1, keepdims=True)
        else:
            denominator = ops.sqrt(
                ops.sum(ops.square(weights), axis=-1, keepdims=True)
            )
        return x / ops.maximum(denominator, 1.0)

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        _check_ids_rank(input_shape)
        return (input_shape[0], self.vector_dim)

    def compute_output_spec(self, inputs: Any) -> keras.KerasTensor:
        return keras.KerasTensor(
            self.compute_output_shape(inputs.shape), dtype=self.compute_dtype
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for key in ("input_dim", "mask_zero"):
            config.pop(key, None)
        config.update(
            {
                "num_buckets": self.num_buckets,
                "output_dim": self.vector_dim,
                "num_hashes": self.num_hashes,
                "hash_combiner": self.hash_combiner,
                "combiner": self.combiner,
                "seed": self.seed,
            }
        )
        return config
