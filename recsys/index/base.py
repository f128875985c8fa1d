"""What every index shares: ids, argument checks, exclusion, persistence."""

import json
import os

import numpy as np

FORMAT_VERSION = 1
INDEX_JSON = "index.json"


def storable_ids(ids, count):
    """Validates ids: int64 or unicode (`U`) arrays store without pickle."""
    if ids is None:
        return np.arange(count, dtype=np.int64)
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) != count:
        raise ValueError(
            "`ids` must be a 1-D array with one id per embedding row. "
            f"Received: ids.shape={ids.shape}, embeddings rows={count}"
        )
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return ids.astype(str)


class Index:
    """Base class: maximum inner product search over `embeddings`.

    Subclasses implement `_search_rows(queries, count)`, which returns the
    row positions and scores of the best `count` rows per query, best first.
    """

    kind = None

    def __init__(self, embeddings, ids=None):
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or len(embeddings) == 0:
            raise ValueError(
                "`embeddings` must be a non-empty 2-D array (num_items, dim). "
                f"Received: embeddings.shape={embeddings.shape}"
            )
        self.embeddings = embeddings
        self.ids = storable_ids(ids, len(embeddings))
        self.options = {}

    def __len__(self):
        return len(self.embeddings)

    @property
    def dimension(self):
        return self.embeddings.shape[1]

    def _check(self, queries, k):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dimension:
            raise ValueError(
                f"`queries` must have shape (num_queries, {self.dimension}). "
                f"Received: queries.shape={queries.shape}"
            )
        return np.ascontiguousarray(queries), int(k)

    def search(self, queries, k, exclude=None):
        """Returns the `k` best ids and scores per query, best first.

        Args:
            queries: float array `(num_queries, dim)` (or one 1-D query).
            k: int. Results per query.
            exclude: optional list, one entry per query, of 1-D int arrays of
                row positions that must not be returned (a user's seen items).

        Returns:
            `(ids, scores)`, arrays `(num_queries, k)`. Where fewer than `k`
            rows are left (a small index, exclusions), the rest is padded
            with id -1 (or "" for string ids) and score -inf.
        """
        rows, scores = self.search_rows(queries, k, exclude)
        ids = self.ids[np.maximum(rows, 0)]
        ids[rows < 0] = -1 if ids.dtype.kind == "i" else ""
        return ids, scores

    def search_rows(self, queries, k, exclude=None):
        """Like `search`, but returns row positions (-1 for padding)."""
        queries, k = self._check(queries, k)
        if exclude is not None and len(exclude) != len(queries):
            raise ValueError(
                "`exclude` must hold one array per query. Received "
                f"{len(exclude)} arrays for {len(queries)} queries."
            )
        extra = max((len(e) for e in exclude), default=0) if exclude else 0
        count = min(k + extra, len(self))
        rows, scores = self._search_rows(queries, count)
        if exclude:
            rows, scores = self._drop_excluded(queries, rows, scores, exclude, k)
        return _pad(rows[:, :k], scores[:, :k], k)

    def _drop_excluded(self, queries, rows, scores, exclude, k):
        out_rows = np.full((len(rows), k), -1, np.int64)
        out_scores = np.full((len(rows), k), -np.inf, np.float32)
        for i, banned in enumerate(exclude):
            keep = ~np.isin(rows[i], banned) & (rows[i] >= 0)
            found, values = rows[i][keep][:k], scores[i][keep][:k]
            left = len(self) - len(np.unique(banned))
            if len(found) < min(k, left):
                # The approximate search came back short: score exactly.
                exact = queries[i] @ self.embeddings.T
                exact[np.asarray(banned, dtype=np.int64)] = -np.inf
                order = np.argsort(-exact, kind="stable")[: min(k, left)]
                found, values = order, exact[order]
            out_rows[i, : len(found)] = found
            out_scores[i, : len(found)] = values
        return out_rows, out_scores

    # -- persistence ---------------------------------------------------------

    def save(self, directory):
        """Writes the index to `directory` (JSON and `.npy`, no pickle)."""
        os.makedirs(directory, exist_ok=True)
        np.save(os.path.join(directory, "ids.npy"), self.ids, allow_pickle=False)
        np.save(
            os.path.join(directory, "embeddings.npy"),
            self.embeddings,
            allow_pickle=False,
        )
        self._save_extra(directory)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "options": self.options,
            "count": len(self),
            "dimension": self.dimension,
        }
        with open(os.path.join(directory, INDEX_JSON), "w") as f:
            json.dump(meta, f, indent=2)

    def _save_extra(self, directory):
        pass


def _pad(rows, scores, k):
    if rows.shape[1] == k:
        return rows, scores.astype(np.float32)
    pad = k - rows.shape[1]
    return (
        np.pad(rows, ((0, 0), (0, pad)), constant_values=-1),
        np.pad(
            scores.astype(np.float32), ((0, 0), (0, pad)), constant_values=-np.inf
        ),
    )


def read_index_files(directory):
    """Reads `index.json`, ids and embeddings; clear errors when missing."""
    path = os.path.join(directory, INDEX_JSON)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Not an index directory: {path} not found.")
    with open(path) as f:
        meta = json.load(f)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: unsupported index format_version "
            f"{meta.get('format_version')!r} (expected {FORMAT_VERSION})."
        )
    arrays = {}
    for name in ("ids", "embeddings"):
        file = os.path.join(directory, f"{name}.npy")
        if not os.path.isfile(file):
            raise FileNotFoundError(f"Index file missing: {file}")
        arrays[name] = np.load(file, allow_pickle=False)
    if len(arrays["ids"]) != meta["count"] or arrays["embeddings"].shape != (
        meta["count"],
        meta["dimension"],
    ):
        raise ValueError(
            f"Index in {directory} is corrupt: {INDEX_JSON} says "
            f"{meta['count']} x {meta['dimension']}, files hold "
            f"{arrays['embeddings'].shape} embeddings and "
            f"{len(arrays['ids'])} ids."
        )
    return meta, arrays["embeddings"], arrays["ids"]
