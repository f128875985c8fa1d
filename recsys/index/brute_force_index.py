"""`BruteForceIndex`: exact search, numpy matmul + partial sort."""

import numpy as np

from recsys.index.base import Index

QUERY_CHUNK = 1024


class BruteForceIndex(Index):
    """Exact maximum inner product search.

    Scores every item with one matrix product per chunk of queries and keeps
    the best `k` with `np.argpartition`. Ties are broken by row position
    (lower first), so results are deterministic. It is the ground truth that
    the ScaNN index is measured against, and the right choice for small
    catalogs.

    Args:
        embeddings: float array `(num_items, dim)`.
        ids: optional 1-D array of item ids (int or str); defaults to row
            positions.

    Example:

    ```python
    index = BruteForceIndex(item_embeddings, ids=item_ids)
    ids, scores = index.search(query_embeddings, k=10)
    ```
    """

    kind = "brute_force"

    def _search_rows(self, queries, count):
        rows = np.empty((len(queries), count), np.int64)
        scores = np.empty((len(queries), count), np.float32)
        for start in range(0, len(queries), QUERY_CHUNK):
            chunk = queries[start : start + QUERY_CHUNK] @ self.embeddings.T
            top = _top_rows(chunk, count)
            rows[start : start + len(chunk)] = top
            scores[start : start + len(chunk)] = np.take_along_axis(chunk, top, 1)
        return rows, scores

    @classmethod
    def from_files(cls, meta, embeddings, ids, directory):
        return cls(embeddings, ids)


def _top_rows(scores, count):
    """Rows of the `count` best scores per row, best first, ties by row."""
    if count < scores.shape[1]:
        part = np.argpartition(-scores, count - 1, axis=1)[:, :count]
        values = np.take_along_axis(scores, part, 1)
        # The partition is exact unless a tie straddles the k-th place; then
        # fall back to a full stable sort so that lower rows win ties.
        kth = values.min(axis=1, keepdims=True)
        if ((scores >= kth).sum(axis=1) == count).all():
            order = np.lexsort((part, -values), axis=1)
            return np.take_along_axis(part, order, 1)
    return np.argsort(-scores, axis=1, kind="stable")[:, :count]
