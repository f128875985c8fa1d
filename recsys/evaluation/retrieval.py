"""Exact retrieval evaluation per PROTOCOL.md: HR@k and the usual metrics.

The rank of a held-out item is the number of candidates scoring strictly
higher plus those scoring exactly equal that come earlier in candidate order
(ascending item id): ties are broken by id, never by chance, so the numbers are
reproducible to the last digit.

From these ranks, in the same pass, `evaluate_retrieval` computes (with
0-based `rank`, each unfiltered and filtered):

- `hr@k`: the share of test interactions with `rank < k` (PROTOCOL.md).
- `recall@k`: per user, the share of the user's test items ranked below
  `k`, averaged over users. With one relevant item per interaction, recall
  per interaction would equal `hr@k`; per user it weighs every user alike.
- `ndcg@k`: per interaction, `1 / log2(rank + 2)` if `rank < k`, else 0 (the
  single relevant item's DCG; its ideal DCG is 1), averaged.
- `mrr`: per interaction, `1 / (rank + 1)` over the whole catalog (no
  cut-off), averaged.
- `coverage@k`: the share of the catalog that appears in the top k of at
  least one evaluated user (the users with test rows).
"""

import logging
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)

DEFAULT_KS = (10, 50, 100)


# Test rows ranked against the whole catalog at once: at most this many
# (row, candidate) cells, 64 MB of float32 scores.
MAX_RANKED_CELLS = 1 << 24
# Evaluations of at least this many (user, candidate) scores, seconds or
# more on 2 cores, show a progress bar (MovieLens' 671 x 9,066: none).
PROGRESS_CELLS = 1 << 28


def metric_names(ks: tuple[int, ...] = DEFAULT_KS) -> list[str]:
    """The HR@k keys `evaluate_retrieval` returns, in report order."""
    return [f"hr@{k}" for k in ks] + [f"hr@{k}_filtered" for k in ks]


def ranking_metric_names(ks: tuple[int, ...] = DEFAULT_KS) -> list[str]:
    """The other metric keys `evaluate_retrieval` returns, in report order.

    Args:
        ks: tuple of int. Cut-offs. Defaults to `(10, 50, 100)`.

    Returns:
        list of str: `recall@k`, `ndcg@k`, `mrr` and `coverage@k`, each
        unfiltered and then `_filtered`.
    """
    names = []
    for metric in ("recall", "ndcg", "mrr", "coverage"):
        bases = [metric] if metric == "mrr" else [f"{metric}@{k}" for k in ks]
        names += bases + [f"{base}_filtered" for base in bases]
    return names


# From this share of held-out rows repeating a training pair, `recsys
# train` says to read the unfiltered metrics, and settings are chosen by
# them.
REPEATS_NOTED = 0.2


def repeat_share(
    train: pd.DataFrame, held_out: pd.DataFrame, *, user: str, item: str
) -> float:
    """The share of held-out rows whose (user, item) pair occurs in `train`.

    The filtered metrics rank such an item among the items its user has not
    seen; on a table of repeat purchases, plays or trips that flatters them.

    Args:
        train: DataFrame. The training rows.
        held_out: DataFrame. The evaluated rows.
        user, item: str. Their id columns.

    Returns:
        float in [0, 1]; 0.0 without held-out rows.
    """
    if not len(held_out):
        return 0.0
    columns = [user, item]
    seen = pd.MultiIndex.from_frame(train[columns].drop_duplicates())
    held = pd.MultiIndex.from_frame(held_out[columns])
    return float(np.mean(seen.get_indexer(held) >= 0))


def choosing_metric(
    ks: Iterable[int], catalog_size: int | None, repeat_share: float = 0.0
) -> str:
    """The HR@k key that chooses a retrieval run's settings.

    Filtered HR at `choosing_cutoff`, unfiltered where users repeat their
    items (`repeat_share` from `REPEATS_NOTED` up): the filtered one leaves
    out what they come back to.

    Args:
        ks: the run's cut-offs (`evaluate.ks`).
        catalog_size: int or None. Distinct items; None takes the largest.
        repeat_share: float. The share of held-out rows repeating a
            training (user, item) pair.

    Returns:
        str, e.g. `"hr@100_filtered"`.
    """
    k = choosing_cutoff(ks, catalog_size)
    return f"hr@{k}" + ("" if repeat_share >= REPEATS_NOTED else "_filtered")


def choosing_cutoff(ks: Iterable[int], catalog_size: int | None) -> int:
    """The k whose HR@k chooses settings (tune's trials, EASE's L2).

    The largest of `ks` that is at most a tenth of the catalog, or 5 (the
    smallest otherwise): on 132 items HR@100 is near 1 for any model and
    tells settings apart no more than a coin, and on 32 HR@1 is too few
    hits to choose by. Never the catalog's size or more, where HR is 1 for
    any model (5 items and `ks = [10, 50, 100]`: HR@4; early stopping kept
    epoch 1 on HR@10's ties), so the run evaluates that k too
    (`evaluated_ks`).

    Args:
        ks: the run's cut-offs (`evaluate.ks`).
        catalog_size: int or None. Distinct items; None takes the largest.

    Returns:
        int.
    """
    ks = sorted(ks)
    if catalog_size is None:
        return ks[-1]
    ks = [k for k in ks if k <= max(catalog_size / 10, 5)] or ks[:1]
    return max(1, min(ks[-1], catalog_size - 1))


def evaluated_ks(ks: Iterable[int], catalog_size: int) -> tuple[int, ...]:
    """`ks` and the k that chooses settings (`choosing_cutoff`), sorted."""
    return tuple(sorted(set(ks) | {choosing_cutoff(ks, catalog_size)}))


def popularity_scores(
    train_items: ArrayLike, candidates: ArrayLike
) -> np.ndarray:
    """Train interaction counts of each candidate (the most-popular baseline).

    Args:
        train_items: array-like of item ids, one per training interaction.
        candidates: 1-D array of candidate item ids.

    Returns:
        float32 array of shape `(len(candidates),)`.
    """
    counts = pd.Series(np.asarray(train_items)).value_counts()
    return counts.reindex(candidates, fill_value=0).to_numpy(np.float32)


def check_evaluation(
    candidates: ArrayLike,
    test_users: ArrayLike,
    ks: tuple[int, ...] = DEFAULT_KS,
    split: str = "test",
) -> None:
    """Refuses an empty evaluation and warns of cut-offs past the catalog.

    Args:
        candidates: 1-D array of candidate item ids.
        test_users: array-like. User of each test interaction.
        ks: tuple of int. Cut-offs. Defaults to `(10, 50, 100)`.
        split: str. The evaluated split's name, for the messages. Defaults
            to `"test"`.

    Raises:
        ValueError: if the split has no test rows, the catalog is empty or
            a cut-off is below 1.
    """
    num_items = len(np.asarray(candidates))
    if not len(np.asarray(test_users)):
        carve = (
            ' (or `evaluate.split = "test"`: the validation carve needs '
            "more rows per user)"
            if split == "validation"
            else ""
        )
        raise ValueError(
            f"The {split!r} split has no test rows, so there is nothing to "
            "evaluate. Fix: use a table with more rows per user, or a split "
            f"that holds some rows out{carve}."
        )
    if not num_items:
        raise ValueError("`candidates` must hold at least one item.")
    if any(int(k) < 1 for k in ks):
        raise ValueError(
            f"Every cut-off `k` must be at least 1. Received: ks={ks}"
        )
    for k in ks:
        if k >= num_items and (k, num_items) not in _SAID_WHOLE_CATALOG:
            # Once a process: early stopping evaluates every epoch.
            _SAID_WHOLE_CATALOG.add((k, num_items))
            logger.warning(
                "HR@%d is 1 by construction: k=%d is at least the catalog "
                "size (%d items), so every item is in every top %d. Choose "
                "smaller `evaluate.ks` or a larger catalog.",
                k,
                k,
                num_items,
                k,
            )


# The (k, catalog size) pairs already warned about.
_SAID_WHOLE_CATALOG: set[tuple[int, int]] = set()


def evaluate_retrieval(
    score_fn: Callable[[np.ndarray], np.ndarray],
    *,
    candidates: ArrayLike,
    test_users: ArrayLike,
    test_items: ArrayLike,
    train_users: ArrayLike,
    train_items: ArrayLike,
    ks: tuple[int, ...] = DEFAULT_KS,
    users_per_batch: int = 64,
    split: str = "test",
) -> dict[str, float]:
    """Computes HR@k, recall@k, NDCG@k, MRR and coverage@k over all candidates.

    Each metric comes unfiltered and filtered (`_filtered`: the user's
    training items removed from the user's ranking); the module docstring
    defines them. Warns when a `k` is at least the catalog size.

    Args:
        score_fn: callable. Takes a 1-D array of user ids and returns a
            float32 array `(len(users), len(candidates))` of scores.
        candidates: 1-D array of candidate item ids in ascending order.
        test_users: array-like. User of each test interaction.
        test_items: array-like. Item of each test interaction.
        train_users: array-like. User of each training interaction (filtered
            metrics drop these items from the user's ranking).
        train_items: array-like. Item of each training interaction.
        ks: tuple of int. Cut-offs. Defaults to `(10, 50, 100)`.
        users_per_batch: int. Users scored per `score_fn` call.
        split: str. The evaluated split's name, for messages. Defaults to
            `"test"`.

    Returns:
        dict with the `metric_names(ks)` (`"hr@k"`, `"hr@k_filtered"`),
        then the `ranking_metric_names(ks)` (floats), `"num_interactions"`
        and `"num_users"`.

    Raises:
        ValueError: if there are no test rows (naming `split`), a test item
            is not a candidate or `candidates` is not ascending.

    Example:

    ```python
    metrics = evaluate_retrieval(
        lambda users: np.tile([0.1, 0.9, 0.5], (len(users), 1)),
        candidates=np.array([1, 2, 3]),
        test_users=np.array([7]),
        test_items=np.array([3]),
        train_users=np.array([7]),
        train_items=np.array([2]),
        ks=(1,),
    )
    metrics["hr@1"], metrics["hr@1_filtered"]  # (0.0, 1.0)
    metrics["mrr"]  # 0.5: item 3 is second
    ```
    """
    check_evaluation(candidates, test_users, ks, split)
    return _evaluate(
        score_fn,
        candidates=candidates,
        test_users=test_users,
        test_items=test_items,
        train_users=train_users,
        train_items=train_items,
        ks=ks,
        users_per_batch=users_per_batch,
    )


def _evaluate(
    score_fn,
    *,
    candidates,
    test_users,
    test_items,
    train_users,
    train_items,
    ks=DEFAULT_KS,
    users_per_batch=64,
    progress=False,
    desc="evaluate",
):
    """`evaluate_retrieval` without its checks and warnings; `progress`: a
    bar of the users scored, named `desc`, on a large evaluation."""
    from recsys.logs import progress_bar

    candidates = np.asarray(candidates)
    if np.any(candidates[1:] <= candidates[:-1]):
        raise ValueError("`candidates` must be unique and in ascending order.")
    position = pd.Index(candidates)
    test_users = np.asarray(test_users)
    test_cols = position.get_indexer(np.asarray(test_items))
    if (test_cols < 0).any():
        raise ValueError("Every test item must be among the candidates.")
    train_users = np.asarray(train_users)
    train_cols = position.get_indexer(np.asarray(train_items))
    keep = train_cols >= 0
    train_users, train_cols = train_users[keep], train_cols[keep]

    users, user_index = np.unique(test_users, return_inverse=True)
    ranks = np.empty(len(test_users), np.int64)
    ranks_filtered = np.empty(len(test_users), np.int64)
    # covered[k][j]: item j is in some user's top k (row 0 unfiltered, row 1
    # filtered).
    covered = {k: np.zeros((2, len(candidates)), bool) for k in ks}
    order = np.argsort(test_users, kind="stable")
    sorted_users = test_users[order]
    train_order = np.argsort(train_users, kind="stable")
    sorted_train_users = train_users[train_order]
    bar = progress_bar(
        total=len(users),
        desc=desc,
        unit="users",
        leave=False,
        disable=not progress or len(users) * len(candidates) < PROGRESS_CELLS,
    )
    for start in range(0, len(users), users_per_batch):
        batch = users[start : start + users_per_batch]
        bar.update(len(batch))
        scores = np.asarray(score_fn(batch), dtype=np.float32)
        if scores.shape != (len(batch), len(candidates)):
            raise ValueError(
                "`score_fn` must return shape (num_users, num_candidates) = "
                f"{(len(batch), len(candidates))}. Received: {scores.shape}"
            )
        lo = np.searchsorted(sorted_users, batch[0], "left")
        hi = np.searchsorted(sorted_users, batch[-1], "right")
        rows = order[lo:hi]
        seen = np.zeros_like(scores, dtype=bool)
        tlo = np.searchsorted(sorted_train_users, batch[0], "left")
        thi = np.searchsorted(sorted_train_users, batch[-1], "right")
        trows = train_order[tlo:thi]
        # Only the batch's users: one with training rows alone (a random
        # split's) may fall between two of them.
        position = np.searchsorted(batch, train_users[trows])
        ours = batch[np.minimum(position, len(batch) - 1)] == train_users[trows]
        seen[position[ours], train_cols[trows[ours]]] = True
        # A few test rows at a time: one user may hold tens of thousands
        # (a Zipf table's heaviest: 16,271 rows x 20,000 items took 7 GB).
        step = max(1, MAX_RANKED_CELLS // len(candidates))
        row_of_user = np.searchsorted(batch, test_users[rows])
        cols = test_cols[rows]
        target = np.empty(len(rows), np.float32)
        for first in range(0, len(rows), step):
            part = slice(first, first + step)
            ranks[rows[part]], target[part] = _ranks(
                scores, row_of_user[part], cols[part]
            )
        ranks_filtered[rows] = ranks[rows] - _seen_ahead(
            scores, seen, row_of_user, cols, target
        )
        for variant, excluded in enumerate((None, seen)):
            top, position_in_list = _top_lists(scores, max(ks), excluded)
            for k in ks:
                covered[k][variant, top[position_in_list < k]] = True
    bar.close()
    metrics = {f"hr@{k}": float(np.mean(ranks < k)) for k in ks}
    metrics.update(
        {f"hr@{k}_filtered": float(np.mean(ranks_filtered < k)) for k in ks}
    )
    # recall@k is per user: each user's share of hits, then their mean.
    per_user = np.bincount(user_index)
    both = {"": ranks, "_filtered": ranks_filtered}
    for suffix, r in both.items():
        for k in ks:
            hits = np.bincount(user_index, weights=r < k) / per_user
            metrics[f"recall@{k}{suffix}"] = float(np.mean(hits))
    for suffix, r in both.items():
        gain = 1.0 / np.log2(r + 2.0)
        for k in ks:
            metrics[f"ndcg@{k}{suffix}"] = float(
                np.mean(np.where(r < k, gain, 0))
            )
    for suffix, r in both.items():
        metrics[f"mrr{suffix}"] = float(np.mean(1.0 / (r + 1.0)))
    for variant, suffix in enumerate(both):
        for k in ks:
            metrics[f"coverage@{k}{suffix}"] = float(
                np.mean(covered[k][variant])
            )
    metrics["num_interactions"] = int(len(test_users))
    metrics["num_users"] = int(len(users))
    return metrics


def _ranks(scores, row_of_user, cols):
    """The 0-based rank of each test item in its user's row of `scores`.

    Args:
        scores: float32 array `(users, num_candidates)`.
        row_of_user: int array. Each test row's user row in `scores`.
        cols: int array. Each test row's item column.

    Returns:
        `(ranks, target)`: int64 ranks and the items' own scores.
    """
    user_scores = scores[row_of_user]
    target = user_scores[np.arange(len(cols)), cols][:, None]
    ranks = _row_counts(user_scores > target)
    equal = user_scores == target
    # Equal scores in earlier columns rank ahead too. Ties are rare in a
    # model's scores, so only rows with one pay for the column comparison.
    tied = np.flatnonzero(_row_counts(equal) > 1)
    if 2 * len(tied) > len(cols):
        # Mostly ties (the popularity baseline): every row at once.
        tied = np.arange(len(cols))
    else:
        equal = equal[tied]
    if len(tied):
        earlier = np.arange(scores.shape[1]) < cols[tied, None]
        ranks[tied] += _row_counts(equal & earlier)
    return ranks, target[:, 0]


def _row_counts(mask):
    """The number of true entries in each row of a 2-D bool array.

    Summing the bytes in uint16 over at most 65,535 columns at a time is
    several times faster than `np.count_nonzero(mask, axis=1)`, which
    sums in int64.
    """
    counts = np.zeros(len(mask), np.int64)
    for start in range(0, mask.shape[1], 65_535):
        chunk = mask[:, start : start + 65_535].view(np.uint8)
        counts += chunk.sum(axis=1, dtype=np.uint16)
    return counts


def _seen_ahead(scores, seen, row_of_user, cols, target):
    """How many of its user's seen items rank ahead of each test item.

    Per user, the seen items' scores are sorted once (ties by column), and
    each test item's count is a binary search: memory grows with the seen
    items and the test rows, never with their product (a heavy user's
    70,000 seen items times 16,000 test rows would be a billion pairs).
    The filtered rank is the rank minus this count.

    Args:
        scores: float32 array `(users, num_candidates)`.
        seen: bool array like `scores`. The users' training items.
        row_of_user: int array. Each test row's user row in `scores`.
        cols: int array. Each test row's item column.
        target: float32 array. Each test row's item score.

    Returns:
        int64 array, one count per test row.
    """
    ahead = np.zeros(len(cols), np.int64)
    order = np.argsort(row_of_user, kind="stable")
    users, starts = np.unique(row_of_user[order], return_index=True)
    for user, mine in zip(users, np.split(order, starts[1:]), strict=True):
        seen_cols = np.flatnonzero(seen[user])
        if not len(seen_cols):
            continue
        seen_scores = scores[user, seen_cols]
        by_score = np.lexsort((seen_cols, seen_scores))  # ties by column
        seen_scores, seen_cols = seen_scores[by_score], seen_cols[by_score]
        mine_target = target[mine]
        lo = np.searchsorted(seen_scores, mine_target, "left")
        hi = np.searchsorted(seen_scores, mine_target, "right")
        ahead[mine] = len(seen_cols) - hi
        # Equal scores in earlier columns rank ahead too: within the run
        # of equal scores the columns are ascending.
        for row in np.flatnonzero(hi > lo):
            run = seen_cols[lo[row] : hi[row]]
            ahead[mine[row]] += np.searchsorted(run, cols[mine[row]])
    return ahead


def _top_lists(scores, k, excluded=None):
    """Each row's top `k` columns, ties by column, as flat arrays.

    Args:
        scores: float array `(rows, num_candidates)`.
        k: int. List length (a row with fewer candidates lists them all).
        excluded: optional bool array like `scores`. Columns left out of
            each row's list (the filtered ranking).

    Returns:
        `(columns, positions)`: int arrays, one entry per listed item, with
        its column and its 0-based position in its row's list.
    """
    num_rows, num_columns = scores.shape
    k = min(k, num_columns)
    if excluded is not None:
        scores = np.where(excluded, -np.inf, scores)
    # A partition per row costs O(num_candidates), unlike a full sort: its
    # last k columns hold the row's k best scores, and the lowest of them
    # (`kth`) is the list's last score.
    top = np.argpartition(scores, num_columns - k, axis=1)[:, -k:]
    values = np.take_along_axis(scores, top, axis=1)
    kth = values.min(axis=1, keepdims=True)
    better = _row_counts(scores > kth)
    tied = scores == kth
    # The partition is the list unless ties at `kth` overflow it (then the
    # lowest columns win) or excluded columns fill it (a short list).
    exact = _row_counts(tied) == k - better
    if excluded is not None:
        tied &= ~excluded
    top = top[exact]
    ordered = np.lexsort((top, -values[exact]), axis=1)
    columns = [np.take_along_axis(top, ordered, axis=1).ravel()]
    positions = [np.tile(np.arange(k), int(exact.sum()))]
    for row in np.flatnonzero(~exact):
        room = k - better[row]
        listed = (scores[row] > kth[row]) | (
            tied[row] & (np.cumsum(tied[row]) <= room)
        )
        (listed_columns,) = np.nonzero(listed)
        order = np.lexsort((listed_columns, -scores[row, listed_columns]))
        columns.append(listed_columns[order])
        positions.append(np.arange(len(order)))
    return np.concatenate(columns), np.concatenate(positions)


def evaluate_beside_popularity(
    score_fn: Callable[[np.ndarray], np.ndarray],
    popularity: np.ndarray,
    *,
    split: str = "test",
    baselines: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    progress: bool = False,
    **kwargs: Any,
) -> dict[str, dict[str, float]]:
    """The metrics of `score_fn` and of the baselines, on the same rows.

    Checks the rows once (`check_evaluation`), then evaluates the model,
    the most-popular baseline and each of `baselines` as
    `evaluate_retrieval` does.

    Args:
        score_fn: callable, as `evaluate_retrieval` takes.
        popularity: float array `(len(candidates),)`. The baseline's score
            of each candidate (e.g. `popularity_scores`), the same for
            every user.
        split: str. The key of the model's metrics. Defaults to `"test"`.
        baselines: optional dict mapping a name to a score function like
            `score_fn` (e.g. from
            `recsys.baselines.retrieval.fit_retrieval_baselines`).
        progress: bool. A bar of the users scored, for each scorer.
        **kwargs: the arguments of `evaluate_retrieval` (`candidates`,
            `test_users`, `test_items`, `train_users`, `train_items`, `ks`,
            `users_per_batch`).

    Returns:
        dict with `split` (the model's metrics), `"baseline_popularity"`
        and `"baseline_<name>"` for each of `baselines`, each as
        `evaluate_retrieval` returns.

    Example:

    ```python
    metrics = evaluate_beside_popularity(
        bundle.score,
        popularity_scores(train_items, candidates),
        baselines={"ease": ease.score},
        candidates=candidates,
        test_users=test_users,
        test_items=test_items,
        train_users=train_users,
        train_items=train_items,
    )
    metrics["test"]["hr@10"], metrics["baseline_ease"]["hr@10"]
    ```
    """
    check_evaluation(
        kwargs["candidates"],
        kwargs["test_users"],
        kwargs.get("ks", DEFAULT_KS),
        split,
    )
    scorers = {
        split: score_fn,
        "baseline_popularity": lambda users: np.broadcast_to(
            popularity, (len(users), len(popularity))
        ),
    }
    for name, baseline in (baselines or {}).items():
        scorers[f"baseline_{name}"] = baseline
    return {
        key: _evaluate(
            scorer,
            progress=progress,
            desc=f"evaluate {key.removeprefix('baseline_')}",
            **kwargs,
        )
        for key, scorer in scorers.items()
    }
