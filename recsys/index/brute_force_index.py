"""`BruteForceIndex`: exact search, numpy matmul + partial sort."""

from typing import Any

import numpy as np

from recsys.index.base import MAX_CHUNK_SCORES
from recsys.index.base import Index
from recsys.index.base import top_rows
from recsys.storage.files import BundleFiles

QUERY_CHUNK = 1024


class BruteForceIndex(Index):
    """Exact maximum inner product search.

    Scores every item with one matrix product per chunk of queries and keeps
    the best `k` with `np.argpartition`. Ties are broken by row position
    (lower first), so results are deterministic. It is the ground truth that
    the ScaNN index is measured against, and the right choice for small
    catalogs. Queries are scored at most 1024 at a time (fewer for big
    catalogs) so memory stays bounded.

    Args:
        embeddings: float array. `(num_items, dim)` item embeddings, used
            as float32 and not copied.
        ids: array or None. 1-D int64 or string item ids, one per row.
            Defaults to `np.arange(num_items)`.

    Example:

    ```python
    index = BruteForceIndex(item_embeddings, ids=item_ids)
    ids, scores = index.search(query_embeddings, k=10)
    ```
    """

    kind = "brute_force"

    def _search_rows(
        self, queries: np.ndarray, count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.empty((len(queries), count), np.int64)
        scores = np.empty((len(queries), count), np.float32)
        chunk_size = max(1, min(QUERY_CHUNK, MAX_CHUNK_SCORES // len(self)))
        for start in range(0, len(queries), chunk_size):
            chunk = queries[start : start + chunk_size] @ self.embeddings.T
            top = top_rows(chunk, count)
            rows[start : start + len(chunk)] = top
            scores[start : start + len(chunk)] = np.take_along_axis(
                chunk, top, 1
            )
        return rows, scores

    @classmethod
    def from_files(
        cls,
        meta: dict[str, Any],
        embeddings: np.ndarray,
        ids: np.ndarray,
        files: BundleFiles,
        prefix: str,
    ) -> "BruteForceIndex":
        """Rebuilds the index from arrays read by `load_index`."""
        del meta, files, prefix  # Nothing beyond the arrays is stored.
        return cls(embeddings, ids)
