"""Choosing, building and loading an index; measuring its recall."""

import numpy as np

from recsys.index.base import read_index_files
from recsys.index.brute_force_index import BruteForceIndex
from recsys.index.scann_index import ScannIndex

SUPPORTED_KINDS = ("auto", "scann", "brute_force")
# Below this many items exact search costs well under a millisecond per query
# and needs no training, so "auto" picks it.
BRUTE_FORCE_MAX_ITEMS = 4096
INDEX_CLASSES = {cls.kind: cls for cls in (BruteForceIndex, ScannIndex)}


def build_index(embeddings, *, kind="auto", ids=None, **options):
    """Builds an index over item embeddings.

    Args:
        embeddings: float array `(num_items, dim)`.
        kind: str. `"scann"`, `"brute_force"`, or `"auto"`: brute force up
            to `BRUTE_FORCE_MAX_ITEMS` items, ScaNN above. Defaults to
            `"auto"`.
        ids: optional 1-D array of item ids; defaults to row positions.
        **options: ScaNN options (see `ScannIndex`).

    Returns:
        A `BruteForceIndex` or a `ScannIndex`.

    Example:

    ```python
    index = build_index(item_embeddings, kind="scann", num_leaves=100)
    ```
    """
    if kind not in SUPPORTED_KINDS:
        raise ValueError(
            f"`kind` must be one of {SUPPORTED_KINDS}. Received: kind={kind!r}"
        )
    if kind == "auto":
        kind = "brute_force" if len(embeddings) <= BRUTE_FORCE_MAX_ITEMS else "scann"
    if kind == "brute_force":
        return BruteForceIndex(embeddings, ids)
    return ScannIndex(embeddings, ids, **options)


def load_index(directory):
    """Loads an index written by `index.save(directory)`."""
    meta, embeddings, ids = read_index_files(directory)
    cls = INDEX_CLASSES.get(meta.get("kind"))
    if cls is None:
        raise ValueError(
            f"Unknown index kind {meta.get('kind')!r} in {directory}. "
            f"Known kinds: {sorted(INDEX_CLASSES)}"
        )
    return cls.from_files(meta, embeddings, ids, directory)


def recall_against_exact(index, queries, k=10):
    """Mean share of the exact top-k that `index` returns per query.

    Args:
        index: any index.
        queries: float array `(num_queries, dim)`.
        k: int. Cut-off. Defaults to `10`.

    Returns:
        float in [0, 1].
    """
    exact = BruteForceIndex(index.embeddings)
    truth, _ = exact.search_rows(queries, k)
    found, _ = index.search_rows(queries, k)
    hits = [len(np.intersect1d(t, f)) for t, f in zip(truth, found)]
    return float(np.sum(hits) / truth.size)
