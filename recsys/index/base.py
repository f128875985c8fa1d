"""What every index shares: ids, argument checks, exclusion, persistence."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.storage.files import BundleFiles
from recsys.storage.files import file_digests

# 2: index.json lists the size and sha256 of every file (`files`).
FORMAT_VERSION = 2
INDEX_JSON = "index.json"
# Scores of at most this many floats are held at once (64 MiB of float32).
MAX_CHUNK_SCORES = 2**24
# Every query asks the index for at least this many neighbours besides
# those it excludes. ScaNN's answer depends on how many it is asked for
# (it re-scores `max(reorder, count)` candidates): a heavy user's top 10,
# asked for 10, was not the head of their top 100 (3 of 10 on MovieLens),
# nor what the service's table of known users' top 100 answers. With the
# floor a top k <= 100 is the head of the top 100, whatever k and whatever
# the other queries of a batch ask for (ScaNN's batched kernel itself can
# still order a near tie otherwise than its one-query search).
SEARCH_DEPTH = 100
# `top_rows` first keeps the scores above a bound of the count-th best,
# where the row is this many times longer than `count`, and falls back to
# `argpartition` where over this many candidates per row pass it (ties).
PREFILTER_MIN_ROWS = 64
PREFILTER_MAX_CANDIDATES = 16


def storable_ids(ids: npt.ArrayLike | None, count: int) -> np.ndarray:
    """Validates ids: int64 or unicode (`U`) arrays store without pickle."""
    if ids is None:
        return np.arange(count, dtype=np.int64)
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) != count:
        raise ValueError(
            "`ids` must be a 1-D array with one id per embedding row. "
            f"Received: ids.shape={ids.shape}, embeddings rows={count}"
        )
    if ids.dtype.kind == "O" and all(isinstance(i, str) for i in ids):
        ids = ids.astype(str)
    if ids.dtype.kind not in "iuU" or (
        ids.dtype.kind == "u" and count and ids.max() > np.iinfo(np.int64).max
    ):
        raise ValueError(
            "`ids` must hold int64 integers or strings. "
            f"Received: ids.dtype={ids.dtype}"
        )
    if len(np.unique(ids)) != count:
        raise ValueError("`ids` must be unique. Received duplicated ids.")
    return ids if ids.dtype.kind == "U" else ids.astype(np.int64)


def missing_id(ids: np.ndarray) -> int | str:
    """The padding id: -1 for integer ids, "" for string ids."""
    return "" if ids.dtype.kind == "U" else -1


class IdenticalRows:
    """The rows of a matrix whose vector another row repeats exactly.

    A dot product's float32 rounding depends on where its row sits in a
    matrix product and on the product's shape (one query or many): two
    items of one vector (new items of the same features, `recsys index`)
    scored a ulp apart, in an order that changed from call to call. Scores
    of such rows are set from one product of their distinct vectors, so
    that they tie, and ties go to the lower row everywhere.

    Args:
        embeddings: float array `(rows, dim)`.

    Example:

    ```python
    twins = IdenticalRows(item_embeddings)
    scores = queries @ item_embeddings.T
    twins.equalize(scores, queries)  # in place; identical rows now tie
    ```
    """

    def __init__(self, embeddings: np.ndarray) -> None:
        embeddings = np.ascontiguousarray(embeddings, np.float32)
        # Candidates by a hash of the vectors' bits (integer arithmetic,
        # exact: a float product would round the twins apart again), then
        # checked vector by vector.
        factors = np.random.default_rng(0).integers(
            1, 2**63, embeddings.shape[1], dtype=np.uint64
        )
        keys = embeddings.view(np.uint32).astype(np.uint64) @ factors
        _, inverse, counts = np.unique(
            keys, return_inverse=True, return_counts=True
        )
        rows = np.flatnonzero(counts[inverse] > 1)
        vectors, groups, counts = np.unique(
            embeddings[rows],
            axis=0,
            return_inverse=True,
            return_counts=True,
        )
        groups = np.asarray(groups).ravel()
        repeated = counts[groups] > 1
        self.rows = rows[repeated]
        kept, self.groups = np.unique(groups[repeated], return_inverse=True)
        self.vectors = vectors[kept]

    def equalize(
        self, scores: np.ndarray, queries: np.ndarray, first: int = 0
    ) -> None:
        """Gives identical rows among `scores`' columns one score each.

        Args:
            scores: float array `(queries, columns)`: the products of the
                rows `first .. first + columns` with `queries`; in place.
            queries: the query vectors of `scores`' rows.
            first: int. The row of `scores`' first column.
        """
        inside = (self.rows >= first) & (self.rows < first + scores.shape[1])
        if not inside.any():
            return
        shared = (queries @ self.vectors.T).astype(scores.dtype)
        scores[:, self.rows[inside] - first] = shared[:, self.groups[inside]]


def top_rows(scores: np.ndarray, count: int) -> np.ndarray:
    """Rows of the `count` best scores per row, best first, ties by row."""
    n = scores.shape[1]
    if count >= n:
        return np.argsort(-scores, axis=1, kind="stable")
    if n >= PREFILTER_MIN_ROWS * count:
        found = _prefiltered_top_rows(scores, count)
        if found is not None:
            return found
    part = np.argpartition(-scores, count - 1, axis=1)[:, :count]
    kth = np.take_along_axis(scores, part, 1).min(axis=1, keepdims=True)
    # argpartition picks arbitrarily among rows tied with the k-th best
    # score; where such a tie straddles the cut, redo that query with a
    # stable sort of its candidates so the lowest row positions win.
    for r in np.flatnonzero((scores >= kth).sum(axis=1) > count):
        candidates = np.flatnonzero(scores[r] >= kth[r])
        best = np.argsort(-scores[r, candidates], kind="stable")[:count]
        part[r] = candidates[best]
    order = np.lexsort((part, -np.take_along_axis(scores, part, 1)), axis=1)
    return np.take_along_axis(part, order, 1)


def _prefiltered_top_rows(scores: np.ndarray, count: int) -> np.ndarray | None:
    """`top_rows` by a bound, or None where too many scores pass it.

    The maxima of `count` disjoint column groups are `count` distinct
    entries, so the smallest of them is at most the count-th best score:
    every row of the answer passes it, usually among a few dozen others.
    Two cheap passes (max, compare) then replace `argpartition`, which
    costs several times more per score. A NaN makes its row's bound NaN:
    nothing passes it and the caller falls back.
    """
    m, n = scores.shape
    starts = np.arange(count) * (n // count)
    bound = np.maximum.reduceat(scores, starts, axis=1).min(axis=1)
    passed = scores >= bound[:, None]
    counts = passed.sum(axis=1)
    if counts.min() < count or counts.sum() > PREFILTER_MAX_CANDIDATES * (
        m * count
    ):
        return None
    rows, cols = np.nonzero(passed)
    # Best score first, ties by the lower row position, query by query.
    order = np.lexsort((cols, -scores[rows, cols], rows))
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return cols[order[first[:, None] + np.arange(count)]]


def complete(rows: np.ndarray) -> bool:
    """Whether no row is padding (-1), which only ever ends a result."""
    if len(rows) == 1:  # a scalar test: no numpy reduction for one query
        return bool(rows[0, -1] >= 0) if rows.shape[1] else True
    return bool((rows[:, -1] >= 0).all()) if rows.size else True


def search_count(k: int, excluded: int, size: int) -> int:
    """Neighbours a query of `k` that excludes `excluded` rows asks for.

    Args:
        k: int. Neighbours wanted.
        excluded: int. Rows the query leaves out.
        size: int. Rows in the index.

    Returns:
        int. `max(k, SEARCH_DEPTH) + excluded`, at most `size`.
    """
    return min(max(k, SEARCH_DEPTH) + excluded, size)


class Index:
    """Base class: maximum inner product search over `embeddings`.

    Subclasses set `kind` and implement `_search_rows(queries, count)`,
    which returns row positions and float32 scores of (about) the best
    `count` distinct rows per query, best first, padded at the end with
    row -1 where it found fewer.
    """

    kind: str | None = None

    def __init__(
        self, embeddings: npt.ArrayLike, ids: npt.ArrayLike | None = None
    ) -> None:
        # Not copied: a float32, C-ordered array is used as it is.
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or 0 in embeddings.shape:
            raise ValueError(
                "`embeddings` must be a non-empty 2-D array (num_items, dim). "
                f"Received: embeddings.shape={embeddings.shape}"
            )
        if not np.isfinite(embeddings).all():
            raise ValueError("`embeddings` must not contain NaN or inf.")
        self.embeddings = embeddings
        self.ids = storable_ids(ids, len(embeddings))
        self.options: dict[str, Any] = {}
        # How the options were chosen (`recsys.index.tuning`): target,
        # measured recall and latency. Empty when they were not tuned.
        self.tuning: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dimension(self) -> int:
        return self.embeddings.shape[1]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(count={len(self)}, dims={self.dimension}, "
            f"options={self.options})"
        )

    def search(
        self,
        queries: npt.ArrayLike,
        k: int,
        exclude: Sequence[npt.ArrayLike] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns the `k` best ids and scores per query, best first.

        The score is the dot product. `k` larger than the index is clamped
        to `len(index)`. Where exclusions leave fewer than `k` rows, the
        rest is padded with id -1 (or "" for string ids) and score -inf.

        Args:
            queries: float array. `(num_queries, dim)`, or one 1-D query.
            k: int. Results per query.
            exclude: list or None. One 1-D int array of row positions
                (0..n-1) per query, never returned for that query (e.g.
                the items a user has seen). Defaults to None.

        Returns:
            `(ids, scores)`: arrays `(num_queries, k)`, scores float32.

        Example:

        ```python
        ids, scores = index.search(user_vectors, k=10, exclude=seen_rows)
        ```
        """
        rows, scores = self.search_rows(queries, k, exclude)
        if complete(rows):  # no padding: the common case
            return self.ids[rows], scores
        ids = self.ids[np.maximum(rows, 0)]
        ids[rows < 0] = missing_id(self.ids)
        return ids, scores

    def search_rows(
        self,
        queries: npt.ArrayLike,
        k: int,
        exclude: Sequence[npt.ArrayLike] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like `search`, but returns row positions (-1 for padding)."""
        # Every step is skipped where it has nothing to do: for one query
        # without exclusions this wrapper adds a few microseconds to the
        # search itself (ScaNN's takes 50-100).
        checked, k = self._check(queries, k)
        banned = self._check_exclude(exclude, len(checked))
        if len(checked) == 0:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        excluded = [len(rows) for rows in banned] if banned else None
        counts = [
            self._search_count(k, excluded[i] if excluded else 0)
            for i in range(len(checked))
        ]
        # Each query is answered as it is alone: queries whose counts lead
        # to different searches (`_count_key`) are searched apart.
        groups: dict[int, list[int]] = {}
        for i, count in enumerate(counts):
            groups.setdefault(self._count_key(count), []).append(i)
        if len(groups) == 1:
            rows, scores = self._search_rows(checked, max(counts))
            return self._finish(checked, rows, scores, banned, k)
        out_rows = np.empty((len(checked), k), np.int64)
        out_scores = np.empty((len(checked), k), np.float32)
        for members in groups.values():
            part = np.asarray(members)
            rows, scores = self._search_rows(
                checked[part], max(counts[i] for i in members)
            )
            out_rows[part], out_scores[part] = self._finish(
                checked[part],
                rows,
                scores,
                [banned[i] for i in members] if banned else None,
                k,
            )
        return out_rows, out_scores

    def _search_count(self, k: int, excluded: int) -> int:
        """Neighbours one query asks for (`search_count`)."""
        return search_count(k, excluded, len(self))

    def _count_key(self, count: int) -> int:
        """Counts of the same key get the same search: their queries can
        share one (the largest count's) and answer as alone."""
        return count

    def _search_rows(
        self, queries: np.ndarray, count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _check(self, queries: npt.ArrayLike, k: int) -> tuple[np.ndarray, int]:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(
                f"`k` must be a positive integer. Received: k={k!r}"
            )
        array = np.asarray(queries, dtype=np.float32)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.dimension:
            raise ValueError(
                f"`queries` must have shape (num_queries, {self.dimension}). "
                f"Received: queries.shape={array.shape}"
            )
        # A sum is finite when every term is (or overflows: then check).
        if not math.isfinite(array.sum()) and not np.isfinite(array).all():
            raise ValueError("`queries` must not contain NaN or inf.")
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        return array, min(int(k), len(self))

    def _check_exclude(
        self, exclude: Sequence[npt.ArrayLike] | None, num_queries: int
    ) -> list[set[int]] | None:
        if exclude is None:
            return None
        if len(exclude) != num_queries:
            raise ValueError(
                "`exclude` must hold one array per query. Received "
                f"{len(exclude)} arrays for {num_queries} queries."
            )
        arrays = [np.asarray(banned).reshape(-1) for banned in exclude]
        if not any(len(banned) for banned in arrays):
            return None  # e.g. the service's one query, nothing seen
        for banned in arrays:
            if banned.size and banned.dtype.kind not in "iu":
                raise ValueError(
                    "`exclude` must hold int row positions in "
                    f"[0, {len(self)}). Received: {banned[:10]!r}"
                )
        values = np.concatenate(arrays)
        if values.min() < 0 or values.max() >= len(self):
            wrong = values[(values < 0) | (values >= len(self))]
            raise ValueError(
                "`exclude` must hold int row positions in "
                f"[0, {len(self)}). Received: {wrong[:10]!r}"
            )
        # Python sets: a served batch holds a few queries of a few
        # exclusions, where numpy's per-call cost (`isin`: 13 us) exceeded
        # the work.
        return [set(banned.tolist()) for banned in arrays]

    def _finish(self, queries, rows, scores, exclude, k):
        """Drops excluded and missing rows; keeps `k` per query."""
        if exclude is None and complete(rows):
            # Neither exact search nor ScaNN repeats a row (ScaNN drops
            # the second copy of a SOAR-spilled row) except as padding.
            return rows[:, :k], scores[:, :k]
        out_rows = np.full((len(rows), k), -1, np.int64)
        out_scores = np.full((len(rows), k), -np.inf, np.float32)
        nothing: set[int] = set()
        for i in range(len(rows)):
            excluded = exclude[i] if exclude else nothing
            kept = []
            # A search asks for at least `k` plus the query's exclusions;
            # its `k` lie in the first `k + len(excluded)` rows (padding
            # only ever ends a row), so only those are read.
            for j, value in enumerate(rows[i, : k + len(excluded)].tolist()):
                if value >= 0 and value not in excluded:
                    kept.append(j)
                    if len(kept) == k:
                        break
            wanted = min(k, len(self) - len(excluded))
            if len(kept) >= wanted:
                out_rows[i, : len(kept)] = rows[i, kept]
                out_scores[i, : len(kept)] = scores[i, kept]
                continue
            # The approximate search came back short: score exactly.
            exact = queries[i] @ self.embeddings.T
            exact[list(excluded)] = -np.inf
            found = top_rows(exact[None, :], wanted)[0]
            out_rows[i, : len(found)] = found
            out_scores[i, : len(found)] = exact[found]
        return out_rows, out_scores

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Writes the index to `directory` (JSON and `.npy`, no pickle).

        Args:
            directory: str. Created if needed; `index.json` is written last,
                so a directory without it holds no complete index. It lists
                the size and sha256 of every other file, which `load_index`
                checks.
        """
        os.makedirs(directory, exist_ok=True)
        for name, array in (("ids", self.ids), ("embeddings", self.embeddings)):
            path = os.path.join(directory, f"{name}.npy")
            np.save(path, array, allow_pickle=False)
        self._save_extra(directory)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "options": self.options,
            "tuning": self.tuning,
            "count": len(self),
            "dims": self.dimension,
            "files": file_digests(directory, exclude=(INDEX_JSON,)),
        }
        with open(os.path.join(directory, INDEX_JSON), "w") as f:
            json.dump(meta, f, indent=2)

    def _save_extra(self, directory: str | os.PathLike[str]) -> None:
        pass

    @classmethod
    def from_files(
        cls,
        meta: dict[str, Any],
        embeddings: np.ndarray,
        ids: np.ndarray,
        files: BundleFiles,
        prefix: str,
    ) -> Index:
        """Rebuilds the index from arrays and files `read_index` checked.

        Args:
            meta: dict. The checked `index.json`.
            embeddings, ids: the checked arrays of the index.
            files: an open `recsys.storage.files.BundleFiles`.
            prefix: str. The index directory's relative path (`""` or
                `"index/"`).
        """
        raise NotImplementedError
