"""`ScannIndex`: approximate search with ScaNN (tree + AH + reorder)."""

import logging
import math
import os
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.index.base import Index
from recsys.index.scann_assets import CONFIG
from recsys.index.scann_assets import SCANN_DIR
from recsys.index.scann_assets import expected_config
from recsys.index.scann_assets import load_checked_searcher
from recsys.index.scann_builder import scann_builder
from recsys.logs import native_logs
from recsys.storage.files import BundleError
from recsys.storage.files import BundleFiles

logger = logging.getLogger(__name__)

# ScaNN's asymmetric hashing trains 16 centers per block on the rows.
SCANN_MIN_ITEMS = 16
# Matches ScaNN's `min_partition_size`: fewer rows per leaf gives
# near-empty partitions, so small catalogs get fewer leaves.
MIN_LEAF_SIZE = 50
# Share of the leaves searched by default. Trained embeddings are clustered,
# and a quarter of the leaves finds their neighbours (recall@10 1.0 on
# clustered test data, 0.99 on MovieLens item vectors). Large catalogs need a
# smaller share: on 1M clustered 64-d rows (1,000 leaves) 50 leaves give
# recall@10 0.991 at 0.13 ms/query, 250 leaves 0.995 at 0.41 ms. So at most
# max(50, 5%) leaves are searched. Isotropic data needs about 0.8.
LEAVES_SEARCHED = 0.25
LARGE_LEAVES_SEARCHED = 0.05
MIN_LEAVES_SEARCHED = 50
# Batches of at least this many queries are searched by ScaNN's threads,
# this many queries per task.
PARALLEL_BATCH = 256
# Largest `reorder` accepted beyond the catalog size.
MAX_REORDER = 10_000
SCANN_OPTIONS = (
    "num_leaves",
    "num_leaves_to_search",
    "training_sample_size",
    "dimensions_per_block",
    "anisotropic_quantization_threshold",
    "reorder",
    "soar_lambda",
)


def _leaves_to_search(num_leaves: int) -> int:
    large = max(MIN_LEAVES_SEARCHED, LARGE_LEAVES_SEARCHED * num_leaves)
    return max(1, math.ceil(min(LEAVES_SEARCHED * num_leaves, large)))


def default_options(count: int, dims: int) -> dict[str, Any]:
    """ScaNN options for a catalog of `count` rows of `dims` floats.

    `num_leaves` is about `sqrt(count)` (at most one leaf per 50 rows), a
    quarter of the leaves are searched (at most max(50, 5%) of them in large
    catalogs) and the best 250 AH candidates are
    re-scored exactly. On 9,000 x 64 catalogs this gives recall@10 of 1.0
    on clustered, unit-norm rows (what trained embeddings look like); on
    structureless gaussian rows, which partition poorly, pass
    `num_leaves_to_search` of about 0.8 * num_leaves to reach 0.98.
    """
    num_leaves = max(1, min(round(math.sqrt(count)), count // MIN_LEAF_SIZE))
    return {
        "num_leaves": num_leaves,
        "num_leaves_to_search": _leaves_to_search(num_leaves),
        "training_sample_size": min(count, 100_000),
        "dimensions_per_block": min(2, dims),
        "anisotropic_quantization_threshold": 0.2,
        "reorder": 250,
        "soar_lambda": 0.0,
    }


def resolve_options(count: int, dims: int, /, **options: Any) -> dict[str, Any]:
    """Fills in defaults and checks the ScaNN options; returns the dict."""
    unknown = sorted(set(options) - set(SCANN_OPTIONS))
    if unknown:
        raise ValueError(
            f"Unknown ScaNN options {unknown}. Valid options: {SCANN_OPTIONS}"
        )
    given = {
        name: value for name, value in options.items() if value is not None
    }
    resolved = {**default_options(count, dims), **given}
    if "num_leaves" in given and "num_leaves_to_search" not in given:
        leaves = resolved["num_leaves"]
        resolved["num_leaves_to_search"] = _leaves_to_search(leaves)
    limits = {
        "num_leaves": (1, count),
        "num_leaves_to_search": (1, resolved["num_leaves"]),
        # ScaNN's config stores it as an int32.
        "training_sample_size": (1, 2**31 - 1),
        "dimensions_per_block": (1, dims),
        # More candidates than rows re-scores nothing more, and a huge
        # value (from a hostile index.json) makes ScaNN allocate for it.
        "reorder": (0, max(count, MAX_REORDER)),
    }
    for name, (low, high) in limits.items():
        value = resolved[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or value < low
            or (high is not None and value > high)
        ):
            raise ValueError(
                f"`{name}` must be an integer in [{low}, {high or 'inf'}]. "
                f"Received: {name}={value!r}"
            )
        resolved[name] = int(value)
    for name, floor in (
        ("anisotropic_quantization_threshold", -math.inf),
        ("soar_lambda", 0.0),
    ):
        value = resolved[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float | np.number)
            or not floor <= value < math.inf
        ):
            raise ValueError(
                f"`{name}` must be a finite number >= {floor}. "
                f"Received: {name}={value!r}"
            )
        resolved[name] = float(value)
    return resolved


def pre_reorder(reorder: int, count: int) -> int:
    """ScaNN's `pre_reorder_num_neighbors` for `count` neighbours.

    It returns no more than it re-scores, so at least `count`; -1 (no
    re-scoring) where `reorder` is 0. Served searches and the tuner's
    measurements call this one rule, so they measure what is served.

    Args:
        reorder: int. The index's `reorder` option.
        count: int. Neighbours asked for.

    Returns:
        int.
    """
    return max(reorder, count) if reorder else -1


class ScannIndex(Index):
    """Approximate maximum inner product search with ScaNN.

    Partitions the items into `num_leaves` k-means leaves, scores the items
    of the `num_leaves_to_search` nearest leaves with anisotropic vector
    quantization, and re-scores the best `reorder` candidates exactly, so
    the returned scores are exact dot products when `reorder > 0` (ScaNN's
    approximations otherwise). Options left as None get the defaults of
    `default_options`. Needs at least 16 items.

    Args:
        embeddings: float array. `(num_items, dim)` item embeddings.
        ids: array or None. 1-D int64 or string item ids, one per row.
            Defaults to `np.arange(num_items)`.
        num_leaves: int or None. Partitions. Defaults to ~`sqrt(num_items)`.
        num_leaves_to_search: int or None. Partitions scanned per query.
            Defaults to a quarter of `num_leaves` (at most max(50, 5%)).
        training_sample_size: int or None. Rows used to train the
            partitions. Defaults to `min(num_items, 100_000)`.
        dimensions_per_block: int or None. Dimensions per quantization
            block. Defaults to 2.
        anisotropic_quantization_threshold: float or None. Defaults to 0.2.
        reorder: int or None. Candidates re-scored exactly; 0 disables it.
            Defaults to 250.
        soar_lambda: float or None. With SOAR (> 0), each row is also put
            in a second leaf, chosen by this weight (1.5 in ScaNN's paper):
            high recalls then need fewer leaves searched. Defaults to 0
            (off).

    The options here are fixed; `recsys.index.build_index` chooses them
    for a recall target (`recsys.index.tuning`) and records how in
    `index.tuning`.

    Example:

    ```python
    index = ScannIndex(item_embeddings, ids=item_ids, num_leaves=200)
    ids, scores = index.search(user_embeddings, k=10)
    ```
    """

    kind = "scann"
    # Whether batches of `PARALLEL_BATCH` or more queries use ScaNN's
    # thread pool. A forked serving worker sets it to False: the pool's
    # threads stayed in the parent (`recsys.serving.workers`).
    parallel = True

    def __init__(
        self,
        embeddings: npt.ArrayLike,
        ids: npt.ArrayLike | None = None,
        **options: Any,
    ) -> None:
        super().__init__(embeddings, ids)
        count, dims = self.embeddings.shape
        if count < SCANN_MIN_ITEMS:
            raise ValueError(
                f"ScaNN needs at least {SCANN_MIN_ITEMS} embeddings; use "
                f"kind='brute_force'. Received: {count} embeddings."
            )
        self.options = resolve_options(count, dims, **options)
        builder = scann_builder(self.embeddings, self.options, train=True)
        try:
            # No docids: ScaNN would pickle them on `serialize`. ScaNN's C++
            # logs (leaf sizes, empty partitions) go to DEBUG, not stderr.
            with native_logs(logger):
                self.searcher = builder.build()
        except RuntimeError as e:
            raise ValueError(
                f"ScaNN could not index {count} x {dims} embeddings with "
                f"options {self.options}: {e}"
            ) from e

    def _count_key(self, count: int) -> int:
        # The candidates re-scored: counts up to `reorder` share them, and
        # a query's top rows are the head of that one ordering (without
        # reordering, each count its own search).
        return max(pre_reorder(self.options["reorder"], count), count)

    def _search_rows(
        self, queries: np.ndarray, count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        options = self.options
        reorder = options["reorder"]
        # ScaNN re-scores only `pre_reorder_num_neighbors` candidates and
        # returns no more than that, so ask for at least `count`. The
        # settings are passed on every call (the tuned ones may differ from
        # those the searcher was built with), and the pybind searcher is
        # called directly: its Python wrapper only adds a call.
        pre = pre_reorder(reorder, count)
        leaves = options["num_leaves_to_search"]
        # When the searched leaves hold fewer than `count` rows, ScaNN pads
        # the end with row 0 and a NaN score; those are marked missing.
        if len(queries) == 1:
            rows, scores = self._searcher.search(queries[0], count, pre, leaves)
            rows, scores = rows[None], scores[None]
            # Leaves that hold no row return nothing at all.
            padded = scores.shape[1] > 0 and math.isnan(scores[0, -1])
        else:
            # ScaNN's own threads for big batches (`recommend --all`).
            parallel = self.parallel and len(queries) >= PARALLEL_BATCH
            rows, scores = self._searcher.search_batched(
                queries, count, pre, leaves, parallel, PARALLEL_BATCH
            )
            padded = scores.shape[1] > 0 and np.isnan(scores[:, -1]).any()
        rows = rows.astype(np.int64)
        if padded:
            missing = np.isnan(scores)
            rows[missing], scores[missing] = -1, -np.inf
        short = count - rows.shape[1]
        if short > 0:
            # One query's search returns only the rows its leaves hold.
            rows = np.pad(rows, ((0, 0), (0, short)), constant_values=-1)
            scores = np.pad(
                scores, ((0, 0), (0, short)), constant_values=-np.inf
            )
        return rows, scores

    @property
    def _searcher(self) -> Any:
        return self.searcher.searcher

    def _save_extra(self, directory: str | os.PathLike[str]) -> None:
        path = os.path.join(directory, SCANN_DIR)
        os.makedirs(path, exist_ok=True)  # serialize() does not create it.
        # Relative asset paths, so the directory can be moved or copied.
        self.searcher.serialize(path, relative_path=True)
        # ScaNN writes the config it was built with; the search settings
        # tuned after building go in its place, so the config is the one
        # `load_checked_searcher` expects of `self.options`.
        config = expected_config(self.embeddings, self.options)
        with open(os.path.join(path, CONFIG), "wb") as f:
            f.write(config.SerializeToString())

    @classmethod
    def from_files(
        cls,
        meta: dict[str, Any],
        embeddings: np.ndarray,
        ids: np.ndarray,
        files: BundleFiles,
        prefix: str,
    ) -> "ScannIndex":
        """Restores the index and its ScaNN searcher without retraining.

        The searcher's files are checked and copied before ScaNN sees them
        (`recsys.index.scann_assets.load_checked_searcher`).

        Args:
            meta: dict. The checked `index.json`.
            embeddings, ids: the checked arrays of the index.
            files: an open `recsys.storage.files.BundleFiles`.
            prefix: str. The index directory's relative path (`""` or
                `"index/"`).
        """
        index = cls.__new__(cls)
        # Ids 0..n-1 (what a bundle's index holds) are unique by
        # construction: skip `storable_ids`' sort of a million ids.
        rows = ids.dtype == np.int64 and np.array_equal(
            ids, np.arange(len(ids))
        )
        Index.__init__(index, embeddings, None if rows else ids)
        try:
            index.options = resolve_options(
                *embeddings.shape, **meta["options"]
            )
        except ValueError as e:
            raise BundleError(
                f"Bad options in {files.path}/{prefix}index.json: {e}"
            ) from None
        with native_logs(logger):
            index.searcher = load_checked_searcher(
                files, f"{prefix}{SCANN_DIR}/", index.embeddings, index.options
            )
        return index
