"""`RemoveAccidentalHits` with a mask that actually removes the hits."""

from typing import Any

import keras
import keras_rs
from keras import ops

# keras-rs 0.4.0 adds `finfo.smallest_normal / 100` (about 1e-40) to the
# logits of accidental hits, which leaves them unchanged: the layer is a
# no-op. TFRS uses `finfo.min / 100`, a large negative number, so that the
# softmax gives the hits (numerically) zero probability. We do the same.
MIN_LOGIT = -3.4e36


def _min_logit(dtype: Any) -> Any:
    """`MIN_LOGIT` in `dtype`; half of float16's lowest there (it has no
    -3.4e36: -inf would give a row of only masked logits NaN)."""
    if keras.backend.standardize_dtype(dtype) == "float16":
        return ops.cast(-32752.0, dtype)
    return ops.cast(MIN_LOGIT, dtype)


@keras.saving.register_keras_serializable(package="recsys")
class RemoveAccidentalHits(keras_rs.layers.RemoveAccidentalHits):
    """Masks the logits of negatives that share the positive's candidate id.

    With in-batch negatives, a popular item is often the positive of several
    rows of a batch; its other copies are "accidental hits", negatives that
    are in fact positives. This layer pushes their logits to a large negative
    value. It fixes keras-rs 0.4.0, whose version of this layer adds about
    `1e-40` and so changes nothing.

    Example:

    ```python
    logits = RemoveAccidentalHits()(logits, labels, candidate_ids)
    ```
    """

    def call(self, logits: Any, labels: Any, candidate_ids: Any) -> Any:
        """Masks accidental hits.

        Args:
            logits: float tensor `(batch, num_candidates)`.
            labels: one-hot float tensor of the same shape.
            candidate_ids: int tensor `(num_candidates,)`.

        Returns:
            The logits, accidental hits set to a large negative value.
        """
        if tuple(labels.shape) != tuple(logits.shape):
            raise ValueError(
                "`labels` and `logits` should have the same shape. Received: "
                f"labels.shape={labels.shape}, logits.shape={logits.shape}"
            )
        positive = ops.take(candidate_ids, ops.argmax(labels, axis=-1))
        hit = ops.logical_and(
            ops.equal(positive[:, None], candidate_ids[None, :]),
            ops.equal(labels, 0),
        )
        # `where`, not `logits + hit * MIN_LOGIT`: in float16 the minimum is
        # -inf, and 0 * -inf is NaN on every other logit.
        return ops.where(hit, _min_logit(logits.dtype), logits)

    def mask(self, logits: Any, candidate_ids: Any) -> Any:
        """Masks accidental hits of in-batch negatives, without labels.

        The positive of row `i` is candidate `i` (in-batch softmax), so no
        one-hot labels are needed: a negative is a hit when its id equals
        the row's own candidate id. Same result as `call` with identity
        labels, in one `where` instead of three passes over the logits.

        Args:
            logits: float tensor `(batch, batch)`.
            candidate_ids: int tensor `(batch,)`.

        Returns:
            The logits, accidental hits set to a large negative value.
        """
        rows = ops.arange(ops.shape(logits)[0])
        hit = ops.logical_and(
            ops.equal(candidate_ids[:, None], candidate_ids[None, :]),
            ops.not_equal(rows[:, None], rows[None, :]),
        )
        return ops.where(hit, _min_logit(logits.dtype), logits)
