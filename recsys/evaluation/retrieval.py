"""Exact retrieval evaluation (HR@k, unfiltered and filtered) per PROTOCOL.md.

The rank of a held-out item is the number of candidates scoring strictly
higher plus those scoring exactly equal that come earlier in candidate order
(ascending item id): ties are broken by id, never by chance, so the numbers are
reproducible to the last digit.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_KS = (10, 50, 100)


def metric_names(ks=DEFAULT_KS):
    """The metric keys `evaluate_retrieval` returns, in report order."""
    return [f"hr@{k}" for k in ks] + [f"hr@{k}_filtered" for k in ks]


def popularity_scores(train_items, candidates):
    """Train interaction counts of each candidate (the most-popular baseline).

    Args:
        train_items: array-like of item ids, one per training interaction.
        candidates: 1-D array of candidate item ids.

    Returns:
        float32 array of shape `(len(candidates),)`.
    """
    counts = pd.Series(np.asarray(train_items)).value_counts()
    return counts.reindex(candidates, fill_value=0).to_numpy(np.float32)


def evaluate_retrieval(
    score_fn,
    *,
    candidates,
    test_users,
    test_items,
    train_users,
    train_items,
    ks=DEFAULT_KS,
    users_per_batch=64,
):
    """Computes HR@k over all candidates, unfiltered and filtered.

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

    Returns:
        dict with `"hr@k"` and `"hr@k_filtered"` for each k (floats), and
        `"num_interactions"`.
    """
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

    users = np.unique(test_users)
    ranks = np.empty(len(test_users), np.int64)
    ranks_filtered = np.empty(len(test_users), np.int64)
    order = np.argsort(test_users, kind="stable")
    sorted_users = test_users[order]
    train_order = np.argsort(train_users, kind="stable")
    sorted_train_users = train_users[train_order]
    arange = np.arange(len(candidates))
    for start in range(0, len(users), users_per_batch):
        batch = users[start : start + users_per_batch]
        scores = np.asarray(score_fn(batch), dtype=np.float32)
        if scores.shape != (len(batch), len(candidates)):
            raise ValueError(
                "`score_fn` must return shape (num_users, num_candidates) = "
                f"{(len(batch), len(candidates))}. Received: {scores.shape}"
            )
        lo = np.searchsorted(sorted_users, batch[0], "left")
        hi = np.searchsorted(sorted_users, batch[-1], "right")
        rows = order[lo:hi]
        row_of_user = np.searchsorted(batch, test_users[rows])
        user_scores = scores[row_of_user]
        cols = test_cols[rows]
        target = user_scores[np.arange(len(rows)), cols][:, None]
        ahead = (user_scores > target) | (
            (user_scores == target) & (arange[None, :] < cols[:, None])
        )
        ranks[rows] = ahead.sum(axis=1)
        seen = np.zeros_like(scores, dtype=bool)
        tlo = np.searchsorted(sorted_train_users, batch[0], "left")
        thi = np.searchsorted(sorted_train_users, batch[-1], "right")
        trows = train_order[tlo:thi]
        seen[np.searchsorted(batch, train_users[trows]), train_cols[trows]] = (
            True
        )
        ranks_filtered[rows] = (ahead & ~seen[row_of_user]).sum(axis=1)
    metrics = {f"hr@{k}": float(np.mean(ranks < k)) for k in ks}
    metrics.update(
        {f"hr@{k}_filtered": float(np.mean(ranks_filtered < k)) for k in ks}
    )
    metrics["num_interactions"] = int(len(test_users))
    return metrics


def evaluate_beside_popularity(
    score_fn: Callable[[np.ndarray], np.ndarray],
    popularity: np.ndarray,
    *,
    split: str = "test",
    **kwargs: Any,
) -> dict[str, dict[str, float]]:
    """HR@k of `score_fn` and of the most-popular baseline, on the same rows.

    Args:
        score_fn: callable, as `evaluate_retrieval` takes.
        popularity: float array `(len(candidates),)`. The baseline's score
            of each candidate (e.g. `popularity_scores`), the same for
            every user.
        split: str. The key of the model's metrics. Defaults to `"test"`.
        **kwargs: the arguments of `evaluate_retrieval` (`candidates`,
            `test_users`, `test_items`, `train_users`, `train_items`, `ks`,
            `users_per_batch`).

    Returns:
        dict with `split` (the model's metrics) and `"baseline_popularity"`,
        each as `evaluate_retrieval` returns.

    Example:

    ```python
    metrics = evaluate_beside_popularity(
        bundle.score,
        popularity_scores(train_items, candidates),
        candidates=candidates,
        test_users=test_users,
        test_items=test_items,
        train_users=train_users,
        train_items=train_items,
    )
    metrics["test"]["hr@10"], metrics["baseline_popularity"]["hr@10"]
    ```
    """
    return {
        split: evaluate_retrieval(score_fn, **kwargs),
        "baseline_popularity": evaluate_retrieval(
            lambda users: np.broadcast_to(
                popularity, (len(users), len(popularity))
            ),
            **kwargs,
        ),
    }
