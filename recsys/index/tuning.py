"""Recall targets: ScaNN settings chosen by measuring recall and latency.

A `recall_target` replaces ScaNN's knobs. The partitioning is chosen from
the catalog size and the target (`partition_options`): ScaNN is trained
once, since training is most of the build. The search-time settings
(leaves searched, candidates re-scored) cost nothing to change, so
`tune_search` measures them: recall@10 against exact search on a sample of
queries held out from training (the users' query vectors where there are
any, sampled item vectors otherwise), then the single-query CPU time of
settings that reach the target, walking from one to the next while they
get faster, and keeps the fastest. Where the users' seen items are known,
the recall is that of the answer they get: seen items excluded from the
search, as `Bundle.recommend` excludes them, and from the exact answer.
"""

import inspect
import logging
import math
import time
from collections.abc import Collection
from typing import Any

import numpy as np

from recsys.index.base import search_count
from recsys.index.recall import exact_rows
from recsys.index.recall import per_query_recall
from recsys.index.recall import search_each
from recsys.index.scann_index import MIN_LEAF_SIZE
from recsys.index.scann_index import ScannIndex
from recsys.index.scann_index import pre_reorder
from recsys.index.scann_modules import scann_module

logger = logging.getLogger(__name__)

DEFAULT_RECALL_TARGET = 0.95
# Neighbours per query the recall is measured at (recall@10).
TUNING_K = 10
# Above this target rows are spilled to a second leaf (SOAR): 0.99 then
# needs about half the leaves, and so half the scanning, of plain k-means.
SOAR_TARGET = 0.98
SOAR_LAMBDA = 1.5
# Leaves: ~2 sqrt(count), 2,000 at 1M rows as ScaNN tuned by hand (issue
# 17). On 100k rows of benchmarks/ann.py's catalog, 632, 1,264 and 2,000
# leaves reached recall 0.95 at 0.14, 0.12 and 0.13 ms/query (within the
# noise of a shared machine), so the shorter build decides. At 1M rows
# 1,000 leaves halve the build's k-means but need 62 leaves searched (0.36
# ms CPU/query) where 2,000 need 16 (0.12 ms). k-means is trained on 50
# rows per leaf (100k at 1M rows; `scann_builder` re-seeds only leaves of
# under 20): 16-18 leaves searched at reorder 640 for recall 0.955 as with
# 125 per leaf, for 26 s of CPU instead of 38 (k-means 6 s instead of
# 17; ScaNN's 12 iterations: 6 needed twice the leaves searched).
LEAVES_PER_SQRT = 2
TRAINING_ROWS_PER_LEAF = 50
MIN_TRAINING_SAMPLE = 20_000
# Queries the recall is measured on: 1,000, fewer for catalogs over 1M
# rows (exact ground truth costs `queries x count`), never under 600.
# Picking the fewest leaves that pass on a sample favours settings that
# were lucky on it: with 300 queries and a margin of one standard error,
# settings that measured 0.960 gave 0.936 on new queries (1M rows); with
# 600 and two, 0.9643 gave 0.9527 and, at target 0.99, 0.9952 gave 0.988
# (per-query recall is heavy-tailed: std ~0.2 at 0.95). So 1,000 queries
# and three standard errors.
TUNING_QUERIES = 1000
MIN_TUNING_QUERIES = 600
GROUND_TRUTH_SCORES = 10**9
MARGIN_ERRORS = 3.0
# Of which this many are timed one at a time, in this many rounds (CPU
# time of the searching thread: other processes on a shared machine do
# not count).
LATENCY_QUERIES = 200
LATENCY_ROUNDS = 3
# Candidates re-scored exactly: the first tried is the largest here, then
# doubled while that is faster (fewer leaves suffice), else halved down to
# the smallest while that is faster (more leaves needed, at most this
# factor more per step). Each step must be this much faster to be taken.
# On benchmarks/ann.py at 1M rows 640 was fastest for recall 0.95 and 1280
# for 0.99: the walk stops after one step past the best of each.
REORDER_LADDER = (640, 320, 160, 80, 40)
MAX_LEAVES_GROWTH = 8
FASTER = 0.97
# Where even a quarter of the leaves fall short of the target, the
# candidates double instead, up to this many (then all leaves are tried).
MAX_LEAVES_SHARE = 1 / 4
MAX_REORDER_TUNED = 5120
# The first search for leaves starts at this share of them.
FIRST_LEAVES = 1 / 32


def soar_supported() -> bool:
    """Whether the installed ScaNN builds SOAR partitions (ScaNN >= 1.3)."""
    tree = scann_module("scann_ops.py.scann_builder").ScannBuilder.tree
    # ScaNN's builder methods wrap the function that takes the arguments.
    tree = getattr(tree, "proto_maker", tree)
    return "soar_lambda" in inspect.signature(tree).parameters


def partition_options(count: int, recall_target: float) -> dict[str, Any]:
    """ScaNN's build options for `count` rows and a recall target.

    Args:
        count: int. Rows in the catalog.
        recall_target: float. The recall@10 the index must reach.

    Returns:
        dict with `num_leaves`, `training_sample_size`, `soar_lambda`
        and `reorder` (the most candidates `tune_search` may re-score:
        ScaNN then keeps the float rows it re-scores with).
    """
    leaves = round(LEAVES_PER_SQRT * math.sqrt(count))
    num_leaves = max(1, min(leaves, count // MIN_LEAF_SIZE))
    soar = recall_target > SOAR_TARGET and soar_supported()
    return {
        "num_leaves": num_leaves,
        "training_sample_size": min(
            count,
            max(MIN_TRAINING_SAMPLE, TRAINING_ROWS_PER_LEAF * num_leaves),
        ),
        "soar_lambda": SOAR_LAMBDA if soar else 0.0,
        "reorder": min(REORDER_LADDER[0], count),
    }


def tuning_queries(
    index: ScannIndex,
    queries: np.ndarray | None,
    seen: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, list[np.ndarray] | None, str]:
    """The sample of queries the settings are measured on, and its source.

    Args:
        index: the built index.
        queries: float array `(n, dim)` or None. Real queries (e.g. the
            training users' query vectors). None or empty samples the
            index's own rows instead.
        seen: `(indptr, rows)` or None. The catalog rows each of
            `queries` excludes (`check_seen`).
        seed: int. Seed of the sample.

    Returns:
        `(sample, exclude, source)`: float32 `(m, dim)`; the sampled
        queries' excluded rows (one array each, as `Index.search` takes
        them), or None without `seen`; and `"queries"` or `"items"`.
    """
    if queries is not None and len(queries):
        pool, source = index._check(queries, 1)[0], "queries"
    else:
        pool, source, seen = index.embeddings, "items", None
    wanted = min(
        TUNING_QUERIES,
        max(MIN_TUNING_QUERIES, GROUND_TRUTH_SCORES // len(index)),
    )
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(pool), min(wanted, len(pool)), False))
    exclude = None
    if seen is not None:
        indptr, seen_rows = seen
        exclude = [seen_rows[indptr[i] : indptr[i + 1]] for i in rows]
    return pool[rows], exclude, source


class _Trials:
    """Recall of search settings on the tuning sample, each measured once.

    With exclusions each query is answered as `Index.search_rows` answers
    it alone (`recsys.index.recall.search_each`), as the service searches
    one user: ScaNN asks for `k` plus the user's seen items, these are
    dropped, and an answer left short is completed by exact search.
    """

    def __init__(
        self,
        index: ScannIndex,
        sample: np.ndarray,
        k: int,
        exclude: list[np.ndarray] | None = None,
    ):
        self.index = index
        self.searcher = index._searcher
        self.sample = sample
        self.k = k
        self.exclude = exclude
        self.exact = exact_rows(index.embeddings, sample, k, exclude)
        self.recalls: dict[tuple[int, int], np.ndarray] = {}

    def recall(self, leaves: int, reorder: int) -> np.ndarray:
        """Per-query recall@k with these settings, exclusions left out."""
        key = (leaves, reorder)
        if key not in self.recalls:
            if self.exclude is None:
                rows = self._search(leaves, reorder)
            else:
                rows = self._search_each(leaves, reorder)
            self.recalls[key] = per_query_recall(rows, self.exact)
        return self.recalls[key]

    def unfiltered_recall(self, leaves: int, reorder: int) -> float:
        """Mean recall@k with these settings, nothing excluded."""
        if self.exclude is None:
            return float(self.recall(leaves, reorder).mean())
        expected = exact_rows(self.index.embeddings, self.sample, self.k)
        found = self._search(leaves, reorder)
        return float(per_query_recall(found, expected).mean())

    def counts(self, queries: int) -> np.ndarray:
        """Neighbours ScaNN is asked for by each of the first queries."""
        excluded = (
            [len(banned) for banned in self.exclude[:queries]]
            if self.exclude is not None
            else [0] * queries
        )
        return np.array(
            [search_count(self.k, n, len(self.index)) for n in excluded],
            np.int64,
        )

    def _search(self, leaves: int, reorder: int) -> np.ndarray:
        """The sample's rows, searched as one batch for as many neighbours
        as the index asks for (`search_count`: a reorder below it would
        be measured on a search the index never runs)."""
        count = search_count(self.k, 0, len(self.index))
        rows, _ = self.searcher.search_batched(
            self.sample,
            count,
            pre_reorder(reorder, count),
            leaves,
            True,  # ScaNN's threads: the results do not depend on it.
            256,
        )
        return np.asarray(rows)[:, : self.k]

    def _search_each(self, leaves: int, reorder: int) -> np.ndarray:
        """Each query's rows as the index, set so, answers it alone."""
        options = self.index.options
        saved = options["num_leaves_to_search"], options["reorder"]
        options["num_leaves_to_search"], options["reorder"] = leaves, reorder
        try:
            return search_each(
                self.index, self.sample, self.k, self.exclude or []
            )
        finally:
            options["num_leaves_to_search"], options["reorder"] = saved

    def meets(self, leaves: int, reorder: int, target: float) -> bool:
        """Whether the recall is above target by `MARGIN_ERRORS` errors.

        The margin makes settings chosen on this sample reach the target
        on other queries from the same distribution, too.
        """
        recall = self.recall(leaves, reorder)
        error = recall.std() / math.sqrt(len(recall))
        return bool(recall.mean() - MARGIN_ERRORS * error >= target)

    def fewest_leaves(
        self, reorder: int, low: int, high: int, target: float, first: bool
    ) -> int | None:
        """About the fewest leaves in `[low, high]` that meet `target`.

        A trial costs about its number of leaves, so the search grows the
        leaves geometrically from `low` (doubling when `first`; else by an
        eighth: `low` is then the answer for more candidates, and fewer
        candidates need a few more leaves at most) and then bisects to
        within a sixteenth: about six times the cost of one trial at the
        answer, however large `high` is.

        Returns:
            int, or None if even `high` leaves fall short.
        """
        below, leaves = low - 1, low
        while not self.meets(leaves, reorder, target):
            if leaves >= high:
                return None
            grown = 2 * leaves if first else leaves + leaves // 8 + 1
            below, leaves = leaves, min(grown, high)
        if first and below < low:  # `low` met: there may be fewer
            below = 0
        while leaves - below > max(1, leaves // 16):
            middle = (below + leaves) // 2
            if self.meets(middle, reorder, target):
                leaves = middle
            else:
                below = middle
        return leaves


def _latencies(
    searcher: Any,
    queries: np.ndarray,
    counts: np.ndarray,
    settings: list[tuple[int, int]],
) -> list[float]:
    """Median single-query seconds of each setting, best of a few rounds.

    ScaNN searches one query in the calling thread, so that thread's CPU
    time is the search's cost whatever else the machine runs (wall time
    on 2 shared cores varied 2-3x). Rounds alternate between the settings
    all the same. Query `j` asks for `counts[j]` neighbours, as
    `ScannIndex` asks for `k` plus the rows the query excludes.
    """
    best = [math.inf] * len(settings)
    times = np.empty(len(queries))
    clock = time.thread_time_ns
    counts = counts.tolist()
    # One setting needs no comparison: one round.
    for _ in range(LATENCY_ROUNDS if len(settings) > 1 else 1):
        for i, (leaves, reorder) in enumerate(settings):
            for j, query in enumerate(queries):
                count = counts[j]
                pre = pre_reorder(reorder, count)
                started = clock()
                searcher.search(query, count, pre, leaves)
                times[j] = clock() - started
            best[i] = min(best[i], 1e-9 * float(np.median(times)))
    return best


def _walk(
    trials: _Trials,
    timed: np.ndarray,
    first: tuple[int, int],
    num_leaves: int,
    most: int,
    target: float,
    floor: int = 0,
) -> tuple[tuple[int, int], dict[tuple[int, int], float]]:
    """The fastest setting found from `first` on, and those timed.

    From `first` (the fewest leaves for its candidates), doubles the
    candidates re-scored (needing fewer leaves) while that is faster,
    else halves them (needing more leaves) while that is faster. Each
    step's leaves are found within bounds the last step gives, and timed
    against the best so far: the walk stops at the first step that is
    not `FASTER`, so a few settings are measured, not the whole ladder.
    Candidates of `floor` or fewer already fell short with a quarter of
    the leaves: they are not tried again (at 1M rows and recall 0.99 that
    was 17 searches of up to 368 leaves each, most of the tuning).

    Returns:
        `(best, timings)`: `(leaves, reorder)` and each timed setting's
        latest median seconds.
    """
    counts = trials.counts(len(timed))
    timings = {first: _latencies(trials.searcher, timed, counts, [first])[0]}
    best = first
    for up in (True, False):
        while True:
            leaves, reorder = best
            if up:
                if reorder >= most:
                    break
                reorder = min(2 * reorder, most)
                low = max(1, leaves // MAX_LEAVES_GROWTH)
                found = trials.fewest_leaves(
                    reorder, low, leaves, target, first=True
                )
            else:
                reorder //= 2
                if reorder < REORDER_LADDER[-1] or reorder <= floor:
                    break
                high = min(num_leaves, MAX_LEAVES_GROWTH * leaves)
                found = trials.fewest_leaves(
                    reorder, leaves, high, target, first=False
                )
            if found is None:
                break
            step = (found, reorder)
            old, new = _latencies(trials.searcher, timed, counts, [best, step])
            timings[best], timings[step] = old, new
            if new >= FASTER * old:
                break
            best = step
        if best != first:  # more candidates paid off: no need for fewer
            break
    return best, timings


def tune_search(
    index: ScannIndex,
    queries: np.ndarray | None,
    recall_target: float,
    fixed: Collection[str] = (),
    seen: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Sets the fastest search settings of `index` that reach the target.

    With the largest number of re-scored candidates in `REORDER_LADDER`
    (doubled up to `MAX_REORDER_TUNED` while a quarter of the leaves cannot
    reach the target), finds the fewest leaves whose recall@10 against
    exact search reaches `recall_target`; then doubles or halves the
    candidates, each time with the fewest leaves that reach the target,
    while single queries get faster (`_walk`), and keeps the fastest in
    `index.options`. If no setting reaches the target the most thorough
    one is kept, with a warning.

    With `seen`, the recall tuned for is that of the answer users get:
    each query's seen rows excluded from both the search (run as
    `Bundle.recommend` runs it for one user, `_Trials`) and the exact
    answer. The true neighbours are then further from the query than its
    nearest rows, so the same recall takes more leaves: on MovieLens the
    setting chosen for the plain top 10 (9 of 181 leaves, recall 0.967)
    served 0.934 with seen items excluded; tuned for that, 13 leaves
    served 0.962 (11-13 leaves and 0.961-0.967 from run to run).

    Args:
        index: a built `ScannIndex`; its `num_leaves_to_search` and
            `reorder` options are replaced.
        queries: float array `(n, dim)` or None. Queries to measure on
            (see `tuning_queries`).
        recall_target: float in (0, 1]. The recall@10 to reach.
        fixed: names among `num_leaves_to_search` and `reorder` that the
            user set: they are kept as they are.
        seen: `(indptr, rows)` or None. The catalog rows each of
            `queries` excludes (its user's training items; `check_seen`).
            Defaults to None: nothing excluded.

    Returns:
        dict for `index.tuning`: the target; `target_metric`, the recall
        it applies to (`"recall@10_filtered"` with `seen`, else
        `"recall@10"`); the chosen settings' `recall@10` (nothing
        excluded), `recall@10_filtered` (with `seen` only: seen rows
        excluded) and `latency_ms` (median single query as searched,
        CPU time of the searching thread); the number of queries and
        their source, and `met` (whether the target was reached).

    Example:

    ```python
    index = ScannIndex(items, **partition_options(len(items), 0.95))
    tuning = tune_search(index, user_vectors, 0.95, seen=(indptr, rows))
    ```
    """
    started = time.perf_counter()
    options = index.options
    sample, exclude, source = tuning_queries(index, queries, seen)
    k = min(TUNING_K, len(index))
    trials = _Trials(index, sample, k, exclude)
    metric = "recall@10" if exclude is None else "recall@10_filtered"
    num_leaves = options["num_leaves"]
    growable = "reorder" not in fixed and options["reorder"] > 0
    most = min(MAX_REORDER_TUNED, len(index))
    if growable:
        ladder = [r for r in REORDER_LADDER if r <= most] or [most]
    else:
        ladder = [options["reorder"]]
    candidates = []
    if "num_leaves_to_search" in fixed:
        leaves = options["num_leaves_to_search"]
        for reorder in ladder:
            if not trials.meets(leaves, reorder, recall_target):
                break
            candidates.append((leaves, reorder))
    else:
        low = max(1, int(FIRST_LEAVES * num_leaves))
        # First the most candidates of the ladder, doubled while the
        # target needs more than a quarter of the leaves (when the
        # quantized scores confuse many near neighbours).
        reorder, cap, floor = ladder[0], num_leaves, 0
        if growable:
            cap = max(low, int(MAX_LEAVES_SHARE * num_leaves))
        leaves = trials.fewest_leaves(
            reorder, low, cap, recall_target, first=True
        )
        while leaves is None and growable and reorder < most:
            floor, reorder = reorder, min(2 * reorder, most)
            leaves = trials.fewest_leaves(
                reorder, low, cap, recall_target, first=True
            )
        if leaves is None and cap < num_leaves:
            # Poorly partitioned rows: more than a quarter of the leaves
            # (`cap` is only below them when `growable`), with the first
            # candidates, else with the most.
            floor = 0
            for reorder in dict.fromkeys((ladder[0], most)):
                leaves = trials.fewest_leaves(
                    reorder, cap, num_leaves, recall_target, first=True
                )
                if leaves is not None:
                    break
        if leaves is not None:
            candidates.append((leaves, reorder))
        ladder = [reorder]
    met = bool(candidates)
    if not met:
        leaves = options["num_leaves_to_search"]
        if "num_leaves_to_search" not in fixed:
            leaves = num_leaves
        candidates = [(leaves, ladder[0])]
    timed = sample[: min(LATENCY_QUERIES, len(sample))]
    if met and growable and "num_leaves_to_search" not in fixed:
        (leaves, reorder), timings = _walk(
            trials,
            timed,
            candidates[0],
            num_leaves,
            most,
            recall_target,
            floor,
        )
    else:
        counts = trials.counts(len(timed))
        times = _latencies(trials.searcher, timed, counts, candidates)
        timings = dict(zip(candidates, times, strict=True))
        leaves, reorder = min(timings, key=timings.__getitem__)
    options["num_leaves_to_search"], options["reorder"] = leaves, reorder
    recall = float(trials.recall(leaves, reorder).mean())
    recalls = {metric: round(recall, 4)}
    if exclude is not None:
        unfiltered = trials.unfiltered_recall(leaves, reorder)
        recalls = {"recall@10": round(unfiltered, 4), **recalls}
    if not met:
        if "num_leaves_to_search" in fixed:
            best = f"{leaves} of {num_leaves} leaves searched"
            fix = "raise index.num_leaves_to_search or remove it (tuned); "
        elif not growable:
            best = f"all {num_leaves} leaves searched, {reorder} re-scored"
            fix = "raise index.reorder or remove it (tuned); "
        else:  # the quantized scores cannot get there on these vectors
            best = f"all {num_leaves} leaves searched, {reorder} re-scored"
            fix = ""
        logger.warning(
            "No ScaNN setting reached %s %.3f (best: %.4f with %s). Fix: "
            '%sor index.kind = "brute_force" (exact search).',
            metric,
            recall_target,
            recall,
            best,
            fix,
        )
    logger.info(
        "ScaNN settings for %s >= %s: %d of %d leaves, reorder %d "
        "(recall %.4f on %d %s, %.3f ms/query; tried %s).",
        metric,
        recall_target,
        leaves,
        num_leaves,
        reorder,
        recall,
        len(sample),
        source + (", seen items excluded" if exclude is not None else ""),
        1e3 * timings[leaves, reorder],
        {c: round(1e3 * t, 3) for c, t in timings.items()},
    )
    return {
        "recall_target": recall_target,
        "target_metric": metric,
        **recalls,
        "latency_ms": round(1e3 * timings[leaves, reorder], 4),
        "met": met,
        "queries": len(sample),
        "query_source": source,
        "tuning_seconds": round(time.perf_counter() - started, 2),
    }
