"""A trained `TwoTower`'s vectors: the arrays of its bundle.

Both two-tower paths (in memory, `recsys.kinds.two_tower`, and streamed,
`recsys.kinds.two_tower_streamed`) end training the same way: every catalog
item through the candidate tower, every known user through the query
tower, and the vectors stored beside the ids, popularity and seen items
under the names `recsys.bundles.two_tower.ARRAYS` lists.
"""

from typing import Any

import numpy as np

# The largest norm of a user or item vector: any user.item or item.item
# score is then at most 1e30, far inside float32 (3.4e38), with room for a
# query tower's vector of norm up to a million against the items. ±3e38
# embeddings (finite) scored inf and NaN, which the service answered as
# "score": null in an arbitrary order. A bundle over it does not load.
MAX_EMBEDDING_NORM = 1e15
# Rows per `predict` call: large batches amortize the per-call overhead,
# and a (8192 x dim) float32 output stays small.
PREDICT_BATCH_SIZE = 8192


def embed(tower: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The output vectors of `tower` for every row of `inputs`.

    Args:
        tower: a (trained) `keras.Model`, e.g. a `TwoTower`'s
            `candidate_tower` or `query_tower`.
        inputs: dict of feature name -> array, one row per entity.

    Returns:
        float32 array `(rows, output_dim)`.

    Example:

    ```python
    item_vectors = embed(model.candidate_tower, prepared.item_inputs)
    ```
    """
    return np.asarray(
        tower.predict(inputs, batch_size=PREDICT_BATCH_SIZE, verbose=0),
        np.float32,
    )


def bundle_arrays(
    model: Any,
    *,
    item_ids: np.ndarray,
    item_inputs: dict[str, np.ndarray],
    item_popularity: np.ndarray,
    user_ids: np.ndarray,
    user_inputs: dict[str, np.ndarray],
    seen_indptr: np.ndarray,
    seen_items: np.ndarray,
) -> dict[str, np.ndarray]:
    """Embeds the catalog and the known users; the arrays of a bundle.

    Args:
        model: a trained `TwoTower`.
        item_ids: array of catalog item ids, ascending.
        item_inputs: dict. Candidate-tower inputs of the catalog, one row
            per item of `item_ids`.
        item_popularity: float32 array. Each item's share of the training
            interactions.
        user_ids: array of known user ids.
        user_inputs: dict. Query-tower inputs, one row per user of
            `user_ids`.
        seen_indptr, seen_items: CSR of the catalog rows each user
            interacted with in training.

    Returns:
        dict of numpy arrays, keyed as `recsys.bundles.two_tower.ARRAYS`.
    """
    return {
        "item_ids": item_ids,
        "item_embeddings": embed(model.candidate_tower, item_inputs),
        "item_popularity": item_popularity,
        "user_ids": user_ids,
        "user_embeddings": embed(model.query_tower, user_inputs),
        "seen_indptr": seen_indptr,
        "seen_items": seen_items,
    }


def norm_bound(vectors: np.ndarray, axis: int | None = None) -> Any:
    """An upper bound of the rows' L2 norms, without a copy of `vectors`:
    the largest absolute value times the square root of the dimension.

    Args:
        vectors: float array `(rows, dim)`.
        axis: None for one bound of all rows, `1` for one per row.

    Returns:
        A float, or a float array of one bound per row.
    """
    root = float(np.sqrt(vectors.shape[-1]))
    if axis is not None:
        return np.abs(vectors).max(axis=axis, initial=0.0) * root
    if not vectors.size:
        return 0.0
    largest = max(abs(float(vectors.max())), abs(float(vectors.min())))
    return largest * root
