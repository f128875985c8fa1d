"""Recall against exact search, of the answer as it is served.

`Bundle.recommend(..., exclude_seen=True)` (the default, and what the
service runs for a known user) asks the index for `k` plus the user's seen
items, drops those, and completes a short answer by exact search
(`Index.search_rows`). The recall users get is that answer's overlap with
the exact top `k` of their unseen items: lower than the plain top `k`'s,
since their nearest unseen items lie further from the query than their
nearest items. `recall_against_exact` measures either, and the tuner
(`recsys.index.tuning`) tunes for the one served.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from recsys.index.base import MAX_CHUNK_SCORES
from recsys.index.base import Index
from recsys.index.base import top_rows
from recsys.index.brute_force_index import BruteForceIndex


def check_seen(
    seen: tuple[npt.ArrayLike, npt.ArrayLike] | None,
    num_queries: int,
    count: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Checks the rows each query excludes, held as a bundle holds them.

    Args:
        seen: `(indptr, rows)` or None. Query `i` excludes catalog rows
            `rows[indptr[i]:indptr[i + 1]]` (a bundle's `seen_indptr`
            and `seen_items`).
        num_queries: int. Rows of the queries they belong to.
        count: int. Rows of the catalog.

    Returns:
        `(indptr, rows)` as int64 arrays, or None.

    Raises:
        ValueError: if `indptr` does not rise from 0 to `len(rows)` in
            `num_queries + 1` entries, or a row is outside `[0, count)`.
    """
    if seen is None:
        return None
    if not isinstance(seen, tuple | list) or len(seen) != 2:
        raise ValueError(
            "`seen` must be a pair `(indptr, rows)` or None. "
            f"Received: seen={str(seen)[:100]}"
        )
    indptr, rows = (np.asarray(array) for array in seen)
    if (
        indptr.shape != (num_queries + 1,)
        or rows.ndim != 1
        or indptr.dtype.kind not in "iu"
        or (rows.size and rows.dtype.kind not in "iu")
        or indptr[0] != 0
        or indptr[-1] != len(rows)
        or (np.diff(indptr) < 0).any()
    ):
        raise ValueError(
            "`seen` must be `(indptr, rows)` with an int `indptr` rising "
            f"from 0 to len(rows) in {num_queries + 1} entries (one more "
            f"than the queries). Received: indptr {indptr.dtype} "
            f"{indptr.shape}, rows {rows.dtype} {rows.shape}"
        )
    if rows.size and (rows.min() < 0 or rows.max() >= count):
        wrong = rows[(rows < 0) | (rows >= count)]
        raise ValueError(
            f"`seen` must hold catalog rows in [0, {count}). "
            f"Received: {wrong[:10]!r}"
        )
    return indptr.astype(np.int64), rows.astype(np.int64)


def per_query_recall(rows: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Per query, the share of the exact rows found in `rows`.

    Args:
        rows: int array `(num_queries, k)`. Rows an index returned.
        exact: int array `(num_queries, k)`. The exact answer's rows,
            padded with -1 where exclusions left fewer than `k`: padding
            is not counted, and a query with none counts as 1.

    Returns:
        float array `(num_queries,)` in [0, 1].
    """
    valid = exact >= 0
    found = (rows[:, :, None] == exact[:, None, :]).any(axis=1) & valid
    wanted = valid.sum(axis=1)
    # A user who has seen every item: nothing to find, nothing missed.
    return np.where(wanted > 0, found.sum(axis=1) / np.maximum(wanted, 1), 1.0)


def exact_rows(
    embeddings: np.ndarray,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """The exact top-`k` rows per query, its excluded rows left out.

    The answer of `BruteForceIndex(embeddings).search_rows(queries, k,
    exclude)` (ties to the lower row, -1 where fewer than `k` are left).
    That search asks every query for `k` plus the longest exclusion, and
    sorting those (1,922 of 9,066 rows on MovieLens) cost more than the
    scoring; here the excluded scores are set to -inf instead.

    Args:
        embeddings: float32 `(n, dim)`. The catalog.
        queries: float32 `(num_queries, dim)`.
        k: int in [1, n].
        exclude: list or None. One int array of rows per query.

    Returns:
        int64 array `(num_queries, k)`.
    """
    if exclude is None:
        return BruteForceIndex(embeddings).search_rows(queries, k)[0]
    rows = np.empty((len(queries), k), np.int64)
    step = max(1, MAX_CHUNK_SCORES // len(embeddings))
    for start in range(0, len(queries), step):
        scores = queries[start : start + step] @ embeddings.T
        for i, banned in enumerate(exclude[start : start + step]):
            scores[i, banned] = -np.inf
        top = top_rows(scores, k)
        top[np.take_along_axis(scores, top, 1) == -np.inf] = -1
        rows[start : start + len(scores)] = top
    return rows


def search_each(
    index: Index,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray],
) -> np.ndarray:
    """The rows `index.search_rows` returns for each query searched alone.

    Alone, a query asks ScaNN for `k` plus its own exclusions, of
    `max(reorder, that)` candidates re-scored, as the service asks for
    one user; in a batch it asks for `k` plus the batch's longest
    exclusion, which usually re-scores more candidates. Searching the
    light queries of a sample as one batch gave the same answers almost
    always, but not always (1 run in 8 of `tests/index/test_recall.py`
    differed on a query), and saved nothing on MovieLens (0.94 s for
    building and tuning against 0.88 s): each query is searched alone.
    Exact search answers alike in a batch.

    Args:
        index: the index to search.
        queries: float32 `(num_queries, dim)`.
        k: int in [1, len(index)].
        exclude: list. One int array of rows per query.

    Returns:
        int64 array `(num_queries, k)`, -1 for padding.
    """
    if isinstance(index, BruteForceIndex):
        return index.search_rows(queries, k, exclude)[0]
    rows = np.empty((len(queries), k), np.int64)
    for i, query in enumerate(queries):
        rows[i] = index.search_rows(query, k, exclude[i : i + 1])[0][0]
    return rows


def recall_against_exact(
    index: Index,
    queries: npt.ArrayLike,
    k: int = 10,
    exclude: Sequence[npt.ArrayLike] | None = None,
) -> float:
    """Mean share of the exact top-`k` ids that `index` returns per query.

    The exact answer is that of a `BruteForceIndex` over the same
    embeddings and ids. Where several items tie at the k-th score the
    exact side keeps the lowest rows, so ties can lower the recall a bit.

    With `exclude` (e.g. each user's seen items, as
    `Bundle.recommend(..., exclude_seen=True)` passes them), both sides
    leave those rows out, and `index` answers each query as it does when
    searching it alone, as the service searches one user (`search_each`).
    A batch asks every query for as many candidates as its longest
    exclusion needs, so it finds at least as many exact neighbours.

    Args:
        index: the index to measure (`ScannIndex` or `BruteForceIndex`).
        queries: float array. `(num_queries, dim)` query embeddings.
        k: int. Neighbours per query. Defaults to 10.
        exclude: list or None. One 1-D int array of row positions per
            query, as `Index.search` takes it. Defaults to None.

    Returns:
        float in [0, 1].

    Example:

    ```python
    rows = np.arange(min(1000, len(bundle.user_ids)))
    recall = recall_against_exact(index, user_embeddings[rows], k=10)
    seen = [bundle.seen(row) for row in rows]
    filtered = recall_against_exact(index, user_embeddings[rows], 10, seen)
    ```
    """
    checked, k = index._check(queries, k)
    banned = index._check_exclude(exclude, len(checked))
    if banned is None:
        expected = exact_rows(index.embeddings, checked, k)
        found = index.search_rows(checked, k)[0]
    else:
        arrays = [np.fromiter(rows, np.int64, len(rows)) for rows in banned]
        expected = exact_rows(index.embeddings, checked, k, arrays)
        found = search_each(index, checked, k, arrays)
    return (
        float(per_query_recall(found, expected).mean()) if len(found) else 0.0
    )


# Users the recall of a bundle's index is measured on (`index_metrics`).
RECALL_USERS = 2000


def index_metrics(
    index: Index,
    user_embeddings: np.ndarray,
    seen: tuple,
    rows: np.ndarray | None = None,
) -> dict:
    """What metrics.json says of a two-tower bundle's index (`"index"`).

    Recall@10 against exact search, of the plain top 10 and of the one
    served (each user's seen items excluded), on at most `RECALL_USERS`
    users spread evenly over the bundle's (each searched alone for the
    served one; exact search scores every item).

    Args:
        index: the bundle's index.
        user_embeddings: float32 `(num_users, dim)`.
        seen: `(indptr, rows)`, the users' seen catalog rows.
        rows: int array or None. The users to measure on; None spreads
            `RECALL_USERS` evenly over all of them.

    Returns:
        dict: `kind`, `options`, `tuning`, `recall@10_vs_exact` and
        `recall@10_vs_exact_filtered`.
    """
    if rows is None:
        users = len(user_embeddings)
        rows = np.unique(
            np.linspace(0, users - 1, min(users, RECALL_USERS)).astype(int)
        )
    queries = user_embeddings[rows]
    indptr, seen_rows = seen
    exclude = [seen_rows[indptr[row] : indptr[row + 1]] for row in rows]
    return {
        "kind": index.kind,
        "options": index.options,
        "tuning": index.tuning,
        "recall@10_vs_exact": recall_against_exact(index, queries, k=10),
        "recall@10_vs_exact_filtered": recall_against_exact(
            index, queries, 10, exclude
        ),
    }
