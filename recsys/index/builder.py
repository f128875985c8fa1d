"""`build_index` / `load_index`: pick, build, and restore an index."""

import json
import logging
import os

import numpy as np
from tqdm.auto import tqdm

from recsys.index.base import FORMAT_VERSION
from recsys.index.base import INDEX_JSON
from recsys.index.brute_force_index import BruteForceIndex
from recsys.index.scann_index import SCANN_OPTIONS
from recsys.index.scann_index import ScannIndex

logger = logging.getLogger(__name__)

# Below this many items exact search is fast enough and ScaNN's partitions
# would be too small to train well.
BRUTE_FORCE_MAX_ITEMS = 4096
SUPPORTED_KINDS = ("auto", "scann", "brute_force")
INDEX_CLASSES = {"brute_force": BruteForceIndex, "scann": ScannIndex}


def build_index(
    embeddings, *, kind="auto", ids=None, progress=False, **options
):
    """Builds a nearest-neighbour (dot product) index over item embeddings.

    With `kind="auto"`, catalogs of at most `BRUTE_FORCE_MAX_ITEMS` rows get
    an exact `BruteForceIndex` (ScaNN options are then checked, logged and
    ignored) and larger ones a `ScannIndex`.

    Args:
        embeddings: float array. `(num_items, dim)` item embeddings.
        kind: str. One of `"auto"`, `"scann"`, `"brute_force"`.
            Defaults to `"auto"`.
        ids: array or None. 1-D int64 or string ids, one per row.
            Defaults to `np.arange(num_items)`.
        progress: bool. Show a tqdm bar over the build stages.
            Defaults to False.
        **options: ScaNN options (see `ScannIndex`), e.g. `num_leaves`.

    Returns:
        A `BruteForceIndex` or `ScannIndex`.

    Example:

    ```python
    index = build_index(item_embeddings, ids=item_ids, num_leaves=300)
    ids, scores = index.search(user_embeddings, k=10)
    ```
    """
    if kind not in SUPPORTED_KINDS:
        raise ValueError(
            f"`kind` must be one of {SUPPORTED_KINDS}. Received: kind={kind!r}"
        )
    unknown = sorted(set(options) - set(SCANN_OPTIONS))
    if unknown:
        raise ValueError(
            f"Unknown index options {unknown}. Valid options: {SCANN_OPTIONS}"
        )
    # A bad shape is reported by the index class; 0 rows then suffices here.
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    count = len(embeddings) if embeddings.ndim else 0
    if kind == "auto":
        kind = "brute_force" if count <= BRUTE_FORCE_MAX_ITEMS else "scann"
        logger.info("Index for %d items: %s.", count, kind)
    if kind == "brute_force" and options:
        logger.info("Exact search ignores the ScaNN options %s.", options)
    # ScaNN trains its partitions and quantizer in one call, so the bar
    # can only label the stages, not measure inside them.
    stages = ["check embeddings and ids", "train partitions / quantize"]
    if kind == "brute_force":
        stages[1] = "exact search needs no training"
    with tqdm(total=len(stages), disable=not progress, desc="index") as bar:
        bar.set_postfix_str(stages[0])
        # Validates the arrays, and is already the answer for exact search.
        index = BruteForceIndex(embeddings, ids)
        bar.update()
        bar.set_postfix_str(stages[1])
        if kind == "scann":
            index = ScannIndex(index.embeddings, index.ids, **options)
        bar.update()
    return index


def build_index_from_config(embeddings, index_config, progress=True):
    """`build_index` as a run config's `[index]` table asks.

    Args:
        embeddings: float32 `(num_items, dim)` item vectors.
        index_config: dict. `kind` plus ScaNN options; options left at 0
            are chosen from the catalog size.
        progress: bool. Show a progress bar while building.

    Returns:
        The built index.
    """
    options = {
        key: value
        for key, value in index_config.items()
        if key != "kind" and value
    }
    return build_index(
        embeddings, kind=index_config["kind"], progress=progress, **options
    )


def load_index(directory):
    """Loads an index written by `index.save(directory)`.

    Args:
        directory: str. Holds `index.json`, `ids.npy`, `embeddings.npy`
            and, for ScaNN, the `scann/` searcher.

    Returns:
        The `BruteForceIndex` or `ScannIndex`, searching as before saving.

    Example:

    ```python
    index.save("artifacts/index")
    index = load_index("artifacts/index")
    ```
    """
    path = os.path.join(directory, INDEX_JSON)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Not an index directory: {path} not found.")
    try:
        with open(path) as f:
            meta = json.load(f)
        cls = INDEX_CLASSES.get(meta["kind"])
        if cls is None:
            raise ValueError(
                f"kind {meta['kind']!r} is not one of {tuple(INDEX_CLASSES)}"
            )
        count, dims = int(meta["count"]), int(meta["dims"])
        if not isinstance(meta["options"], dict):
            raise TypeError(f"options must be a dict, not {meta['options']!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"Corrupt index file {path}: {e}") from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: unsupported format_version "
            f"{meta.get('format_version')!r} (expected {FORMAT_VERSION})."
        )
    arrays = {}
    for name in ("ids", "embeddings"):
        file = os.path.join(directory, f"{name}.npy")
        if not os.path.isfile(file):
            raise FileNotFoundError(f"Index file missing: {file}")
        try:
            arrays[name] = np.load(file, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"Corrupt index file {file}: {e}") from e
    embeddings, ids = arrays["embeddings"], arrays["ids"]
    if embeddings.shape != (count, dims) or ids.shape != (count,):
        raise ValueError(
            f"Index in {directory} is corrupt: {INDEX_JSON} says {count} x "
            f"{dims}, found embeddings.shape={embeddings.shape} and "
            f"ids.shape={ids.shape}."
        )
    return cls.from_files(meta, embeddings, ids, directory)


def recall_against_exact(index, queries, k=10):
    """Mean share of the exact top-`k` ids that `index` returns per query.

    The exact answer comes from a `BruteForceIndex` over the same
    embeddings and ids. Where several items tie at the k-th score the
    exact side keeps the lowest rows, so ties can lower the recall a bit.

    Args:
        index: the index to measure (`ScannIndex` or `BruteForceIndex`).
        queries: float array. `(num_queries, dim)` query embeddings.
        k: int. Neighbours per query. Defaults to 10.

    Returns:
        float in [0, 1].

    Example:

    ```python
    recall = recall_against_exact(index, user_embeddings[:1000], k=10)
    ```
    """
    exact = BruteForceIndex(index.embeddings, index.ids)
    expected, _ = exact.search(queries, k)
    found, _ = index.search(queries, k)
    hits = (found[:, :, None] == expected[:, None, :]).any(axis=2)
    return float(hits.sum(axis=1).mean() / expected.shape[1])
