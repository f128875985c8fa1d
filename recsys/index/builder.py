"""`build_index` / `load_index`: pick, build, and restore an index."""

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.index.base import FORMAT_VERSION
from recsys.index.base import INDEX_JSON
from recsys.index.base import Index
from recsys.index.brute_force_index import BruteForceIndex
from recsys.index.recall import check_seen
from recsys.index.scann_assets import ASSETS
from recsys.index.scann_assets import CONFIG
from recsys.index.scann_assets import SCANN_DIR
from recsys.index.scann_assets import SCANN_FILES
from recsys.index.scann_index import SCANN_OPTIONS
from recsys.index.scann_index import ScannIndex
from recsys.index.scann_modules import scann_available
from recsys.index.tuning import DEFAULT_RECALL_TARGET
from recsys.index.tuning import partition_options
from recsys.index.tuning import tune_search
from recsys.logs import progress_bar
from recsys.storage.files import BundleError
from recsys.storage.files import BundleFiles

logger = logging.getLogger(__name__)

# Below this many items exact search is fast enough and ScaNN's partitions
# would be too small to train well.
BRUTE_FORCE_MAX_ITEMS = 4096
SUPPORTED_KINDS = ("auto", "scann", "brute_force")
INDEX_CLASSES = {"brute_force": BruteForceIndex, "scann": ScannIndex}
INDEX_ARRAYS = ("ids.npy", "embeddings.npy")


def build_index(
    embeddings: npt.ArrayLike,
    *,
    kind: str = "auto",
    ids: npt.ArrayLike | None = None,
    progress: bool = False,
    recall_target: float | None = DEFAULT_RECALL_TARGET,
    queries: npt.ArrayLike | None = None,
    seen: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    **options: Any,
) -> Index:
    """Builds a nearest-neighbour (dot product) index over item embeddings.

    With `kind="auto"`, catalogs of at most `BRUTE_FORCE_MAX_ITEMS` rows get
    an exact `BruteForceIndex` (ScaNN options are then checked, logged and
    ignored) and larger ones a `ScannIndex`.

    A ScaNN index is tuned to `recall_target`: its partitioning follows
    the catalog size and the target (`recsys.index.tuning`), and the
    leaves searched and candidates re-scored are the fastest measured to
    reach the target's recall@10 against exact search on `queries` (or
    on sampled items). With `seen`, that is the recall of the answer
    users get, each query's seen rows excluded from the search (as
    `Bundle.recommend(..., exclude_seen=True)` runs it) and from the exact
    answer. `index.tuning` then holds the measured recall and latency.
    Options passed explicitly are kept as given.

    Args:
        embeddings: float array. `(num_items, dim)` item embeddings.
        kind: str. One of `"auto"`, `"scann"`, `"brute_force"`.
            Defaults to `"auto"`.
        ids: array or None. 1-D int64 or string ids, one per row.
            Defaults to `np.arange(num_items)`.
        progress: bool. Show a tqdm bar over the build stages.
            Defaults to False.
        recall_target: float or None. The recall@10 a ScaNN index must
            reach, in (0, 1]. None keeps the fixed defaults of
            `recsys.index.scann_index.default_options`, untuned.
            Defaults to 0.95.
        queries: float array or None. `(num_queries, dim)` typical queries
            (e.g. the training users' query vectors) to tune on. Defaults
            to None: sampled item vectors.
        seen: tuple or None. `(indptr, rows)`: query `i` excludes catalog
            rows `rows[indptr[i]:indptr[i + 1]]` (its user's training
            items: a bundle's `seen_indptr`, `seen_items`). Defaults to
            None: the recall of the plain top 10 is tuned for.
        **options: ScaNN options (see `ScannIndex`), e.g. `num_leaves`.

    Returns:
        A `BruteForceIndex` or `ScannIndex`.

    Example:

    ```python
    index = build_index(
        item_embeddings,
        ids=item_ids,
        queries=user_vectors,
        seen=(seen_indptr, seen_items),
    )
    index.tuning  # {"recall@10_filtered": 0.953, "latency_ms": 0.08, ...}
    ids, scores = index.search(user_vectors, k=10)
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
    if recall_target is not None and (
        isinstance(recall_target, bool)
        or not isinstance(recall_target, int | float)
        or not 0 < recall_target <= 1
    ):
        raise ValueError(
            "`recall_target` must be a number in (0, 1] or None. "
            f"Received: recall_target={recall_target!r}"
        )
    # A bad shape is reported by the index class; 0 rows then suffices here.
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    count = len(embeddings) if embeddings.ndim else 0
    if kind == "auto":
        kind = "brute_force" if count <= BRUTE_FORCE_MAX_ITEMS else "scann"
        logger.info("Index for %d items: %s.", count, kind)
    if kind == "scann" and not scann_available():
        kind = "brute_force"  # no ScaNN wheel here: a notice was logged
    if kind == "brute_force" and options:
        logger.info("Exact search ignores the ScaNN options %s.", options)
    if seen is not None and queries is None:
        raise ValueError(
            "`seen` lists the rows each of `queries` excludes: pass "
            "`queries` with it. Received: queries=None"
        )
    excluded = None
    if seen is not None:
        excluded = check_seen(seen, len(np.asarray(queries)), count)
    given = {key: value for key, value in options.items() if value is not None}
    tune = kind == "scann" and recall_target is not None
    # ScaNN trains its partitions and quantizer in one call, so the bar
    # can only label the stages, not measure inside them.
    stages = ["check embeddings and ids", "train partitions / quantize"]
    if kind == "brute_force":
        stages[1] = "exact search needs no training"
    if tune:
        metric = "recall@10" if excluded is None else "recall@10_filtered"
        stages.append(f"tune search for {metric} >= {recall_target}")
    with progress_bar(
        total=len(stages), disable=not progress, desc="index"
    ) as bar:
        bar.set_postfix_str(stages[0])
        # Validates the arrays, and is already the answer for exact search.
        index: Index = BruteForceIndex(embeddings, ids)
        bar.update()
        bar.set_postfix_str(stages[1])
        if kind == "scann":
            started = time.perf_counter()
            chosen = {}
            if recall_target is not None:
                chosen = partition_options(count, recall_target)
            scann = ScannIndex(
                index.embeddings, index.ids, **{**chosen, **given}
            )
            built = time.perf_counter() - started
            index = scann
        bar.update()
        if kind == "scann" and recall_target is not None:
            bar.set_postfix_str(stages[2])
            sample = None if queries is None else np.asarray(queries)
            scann.tuning = {
                **tune_search(
                    scann, sample, recall_target, fixed=given, seen=excluded
                ),
                "build_seconds": round(built, 2),
            }
            bar.update()
    return index


def build_index_from_config(
    embeddings: np.ndarray,
    index_config: Mapping[str, Any],
    progress: bool = True,
    queries: np.ndarray | None = None,
    seen: tuple[np.ndarray, np.ndarray] | None = None,
) -> Index:
    """`build_index` as a run config's `[index]` table asks.

    Args:
        embeddings: float32 `(num_items, dim)` item vectors.
        index_config: dict. `kind`, `recall_target` (0 keeps the fixed
            defaults, untuned) plus ScaNN options; options left at 0 are
            chosen (tuned to the target).
        progress: bool. Show a progress bar while building.
        queries: float32 `(num_queries, dim)` or None. The training users'
            query vectors, to tune on. Defaults to None (sampled items).
        seen: `(seen_indptr, seen_items)` or None. Each user's training
            items, excluded as `recommend` excludes them while tuning.
            Defaults to None (nothing excluded).

    Returns:
        The built index.
    """
    options = {
        key: value
        for key, value in index_config.items()
        if key not in ("kind", "recall_target") and value
    }
    target = index_config.get("recall_target", DEFAULT_RECALL_TARGET)
    return build_index(
        embeddings,
        kind=index_config["kind"],
        progress=progress,
        recall_target=target or None,
        queries=queries,
        seen=seen,
        **options,
    )


def index_files(kind: str) -> tuple[set[str], set[str]]:
    """Relative paths an index of `kind` may hold, and those it must hold.

    Returns:
        `(allowed, required)`: sets of paths relative to the index directory.
    """
    required = {INDEX_JSON, *INDEX_ARRAYS}
    allowed = set(required)
    if kind == "scann":
        scann = {f"{SCANN_DIR}/{name}" for name in SCANN_FILES}
        allowed |= scann
        required |= {f"{SCANN_DIR}/{name}" for name in (ASSETS, CONFIG)}
    return allowed, required


def _check_meta(meta: Any, where: str) -> type[Index]:
    """Checks `index.json`; returns its index class."""
    try:
        if not isinstance(meta, dict):
            raise TypeError("it does not hold a JSON object")
        cls = INDEX_CLASSES.get(meta["kind"])
        if cls is None:
            raise ValueError(
                f"kind {meta['kind']!r} is not one of {tuple(INDEX_CLASSES)}"
            )
        for key in ("count", "dims"):
            value = meta[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{key} must be an integer, not {value!r}")
        if not isinstance(meta["options"], dict):
            raise TypeError(f"options must be a dict, not {meta['options']!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise BundleError(f"Corrupt index file {where}: {e}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{where}: unsupported format_version "
            f"{meta.get('format_version')!r} (expected {FORMAT_VERSION}). "
            "Fix: rebuild the index (retrain the bundle)."
        )
    return cls


def load_index(directory: str | os.PathLike[str]) -> Index:
    """Loads an index written by `index.save(directory)`.

    The directory is a closed list of files: anything `index.json` does
    not list, any symlink or special file, and any file whose sha256
    differs is refused, and ScaNN's files are checked before ScaNN reads
    them (no pickle is ever loaded).

    Args:
        directory: str. Holds `index.json`, `ids.npy`, `embeddings.npy`
            and, for ScaNN, the `scann/` searcher.

    Returns:
        The `BruteForceIndex` or `ScannIndex`, searching as before saving.

    Raises:
        recsys.storage.files.BundleError: (a ValueError) naming the file that
            is missing, unexpected or corrupt.

    Example:

    ```python
    index.save("artifacts/index")
    index = load_index("artifacts/index")
    ```
    """
    files, meta = BundleFiles.open(directory, INDEX_JSON)
    with files:
        _check_meta(meta, os.path.join(directory, INDEX_JSON))
        allowed, required = index_files(meta["kind"])
        files.check_files(meta.get("files"), allowed, required)
        return read_index(files, "", meta)


def read_index(
    files: BundleFiles, prefix: str, meta: dict[str, Any] | None = None
) -> Index:
    """Reads the index under `prefix` of an open, checked `BundleFiles`.

    Args:
        files: `recsys.storage.files.BundleFiles` whose list was checked.
        prefix: str. The index directory relative to `files`, ending in
            `/` (or `""`).
        meta: dict or None. `index.json`, if already read.

    Returns:
        The `BruteForceIndex` or `ScannIndex`.
    """
    where = os.path.join(files.path, prefix + INDEX_JSON)
    if meta is None:
        meta = files.json(prefix + INDEX_JSON)
    cls = _check_meta(meta, where)
    if cls is ScannIndex and not scann_available():
        # Exact search over the same rows answers as well (slower); the
        # searcher's files were checked against the manifest all the same.
        cls = BruteForceIndex
    count, dims = meta["count"], meta["dims"]
    allowed, required = index_files(meta["kind"])
    listed = {
        name[len(prefix) :] for name in files.files if name.startswith(prefix)
    }
    for name in sorted(listed - allowed):
        raise BundleError(
            f"{files.path}/{prefix}{name} is not a file of a "
            f"{meta['kind']} index; refusing to load it."
        )
    for name in sorted(required - listed - {INDEX_JSON}):
        raise BundleError(f"Index file missing: {files.path}/{prefix}{name}")
    embeddings = files.npy(prefix + "embeddings.npy")
    ids = files.npy(prefix + "ids.npy")
    if (
        embeddings.shape != (count, dims)
        or ids.shape != (count,)
        or embeddings.dtype != np.float32
        or ids.dtype.kind not in "iU"
    ):
        raise BundleError(
            f"Index in {files.path}/{prefix} is corrupt: {INDEX_JSON} says "
            f"{count} x {dims}, found float32 embeddings "
            f"{embeddings.dtype} {embeddings.shape} and ids {ids.dtype} "
            f"{ids.shape}."
        )
    try:
        index = cls.from_files(meta, embeddings, ids, files, prefix)
    except BundleError:
        raise
    except ValueError as e:  # the arrays' own checks (finite, unique ids)
        raise BundleError(
            f"Index in {files.path}/{prefix} is corrupt: {e}"
        ) from None
    index.tuning = _checked_tuning(meta.get("tuning", {}), where)
    return index


def _checked_tuning(tuning: Any, where: str) -> dict[str, Any]:
    """`index.json`'s `tuning` (a report only): a flat dict of scalars."""
    if not isinstance(tuning, dict) or not all(
        isinstance(key, str)
        and (value is None or isinstance(value, str | int | float | bool))
        for key, value in tuning.items()
    ):
        raise BundleError(
            f"Corrupt index file {where}: tuning must be a JSON object of "
            f"numbers and strings, not {str(tuning)[:100]!r}"
        )
    return dict(tuning)
