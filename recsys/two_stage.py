"""Two-stage recommendation: a two-tower bundle retrieves, a ranker reranks.

The retrieval stage scores the whole catalog cheaply (one dot product per
item) and keeps `num_candidates`; the ranking stage scores only those with a
`TabularBundle` that reads every column of the (user, item) pair, and keeps
the top `k`. The ranker can only reorder what retrieval found: the hit rate
of the candidate list (HR@num_candidates) bounds the two-stage hit rate.
"""

import numpy as np

from recsys.data.split import temporal_split

DEFAULT_NUM_CANDIDATES = 100


class TwoStageRecommender:
    """Retrieves candidates with a two-tower bundle, reranks with a ranker.

    Args:
        retriever: `recsys.Bundle`. The two-tower retrieval bundle.
        ranker: `recsys.tabular_bundle.TabularBundle` of a binary or
            regression task: its score orders the candidates.
        num_candidates: int. Candidates retrieved per user. Defaults to
            `100`.

    Example:

    ```python
    recommender = TwoStageRecommender(
        load_bundle("artifacts/demo"), load_bundle("artifacts/liked")
    )
    ids, scores = recommender.recommend([1, 42], k=10)
    ```
    """

    def __init__(
        self, retriever, ranker, num_candidates=DEFAULT_NUM_CANDIDATES
    ):
        if (
            isinstance(num_candidates, bool)
            or not isinstance(num_candidates, (int, np.integer))
            or num_candidates < 1
        ):
            raise ValueError(
                "`num_candidates` must be a positive integer. "
                f"Received: num_candidates={num_candidates!r}"
            )
        if getattr(ranker, "task", None) not in ("binary", "regression"):
            raise ValueError(
                "The ranker must be a tabular bundle of a binary or "
                "regression task (its score orders the candidates). Received: "
                f"{type(ranker).__name__} with task "
                f"{getattr(ranker, 'task', None)!r}"
            )
        if not hasattr(retriever, "recommend"):
            raise ValueError(
                "The retriever must be a two-tower bundle. Received: "
                f"{type(retriever).__name__}"
            )
        self.retriever = retriever
        self.ranker = ranker
        self.num_candidates = int(num_candidates)

    def recommend(self, user_ids, k=10, exclude_seen=True, exact=False):
        """Top-k items for each user, reranked, best first.

        Args:
            user_ids: 1-D list or array of user ids.
            k: int. Items per user, at most `num_candidates`. Defaults to
                `10`.
            exclude_seen: bool. Drop each user's training items. Defaults to
                `True`.
            exact: bool. Retrieve by exact search instead of the index.

        Returns:
            `(ids, scores)`: arrays `(len(user_ids), k)` of item ids and the
            ranker's float32 scores (padding: id -1 or "", score -inf).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(
                f"`k` must be a positive integer. Received: k={k!r}"
            )
        ids, found = self.retriever.recommend(
            user_ids,
            k=max(self.num_candidates, int(k)),
            exclude_seen=exclude_seen,
            exact=exact,
        )
        scores = self.rerank_scores(user_ids, ids, np.isfinite(found))
        order = np.argsort(-scores, axis=1, kind="stable")[:, : int(k)]
        return (
            np.take_along_axis(ids, order, axis=1),
            np.take_along_axis(scores, order, axis=1),
        )

    def rerank_scores(self, user_ids, candidate_ids, valid=None):
        """The ranker's scores of each user's candidates.

        Args:
            user_ids: 1-D, one per row of `candidate_ids`.
            candidate_ids: array `(len(user_ids), n)` of item ids.
            valid: optional bool array of the same shape; other entries
                (padding) score -inf.

        Returns:
            float32 array shaped like `candidate_ids`.
        """
        candidate_ids = np.asarray(candidate_ids)
        if valid is None:
            valid = np.ones(candidate_ids.shape, bool)
        users = np.repeat(
            np.asarray(user_ids, dtype=object), candidate_ids.shape[1]
        )
        scores = np.full(candidate_ids.shape, -np.inf, np.float32)
        flat = valid.reshape(-1)
        if flat.any():
            scores[valid] = self.ranker.score_pairs(
                users[flat], candidate_ids.reshape(-1)[flat]
            )
        return scores


def _hits(lists, test_users, test_items, user_rows, k):
    """Per test interaction: rank of its item in its user's list, else -1."""
    ranks = np.full(len(test_users), -1, np.int64)
    lists = lists[:, :k]
    pairs = zip(test_users, test_items, strict=True)
    for row, (user, item) in enumerate(pairs):
        found = np.flatnonzero(lists[user_rows[user]] == item)
        if found.size:
            ranks[row] = found[0]
    return ranks


def _list_metrics(ranks, k):
    hit = ranks >= 0
    gains = np.where(hit, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    return {f"hr@{k}": float(hit.mean()), f"ndcg@{k}": float(gains.mean())}


def evaluate_two_stage(recommender, frame, k=10, exact=True):
    """HR@k and NDCG@k of two-stage lists against retrieval alone.

    The protocol split of `frame` (PROTOCOL.md, the retriever's columns);
    each test user gets one list of `k` items with their training items
    removed (the filtered variant). A test interaction is a hit when its
    item is in its user's list; its NDCG is `1 / log2(rank + 2)` for a hit
    at 0-based `rank`, else 0. Means are over test interactions.

    Args:
        recommender: `TwoStageRecommender`.
        frame: the full interactions table both bundles were trained on.
        k: int. List length. Defaults to `10`.
        exact: bool. Retrieve by exact search. Defaults to `True`.

    Returns:
        dict with `"two_stage"` and `"retrieval"` (`hr@k`, `ndcg@k`),
        `"candidates"` (`hr@num_candidates`, the bound) and
        `"num_interactions"`.
    """
    data = recommender.retriever.config["data"]
    user, item = data["user"], data["item"]
    _, test = temporal_split(frame, user=user, item=item, time=data["time"])
    users = test[user].drop_duplicates().to_numpy()
    user_rows = {u: i for i, u in enumerate(users.tolist())}
    n = recommender.num_candidates
    candidates, found = recommender.retriever.recommend(
        users, k=n, exclude_seen=True, exact=exact
    )
    scores = recommender.rerank_scores(users, candidates, np.isfinite(found))
    order = np.argsort(-scores, axis=1, kind="stable")
    reranked = np.take_along_axis(candidates, order, axis=1)
    test_users = test[user].to_numpy().tolist()
    test_items = test[item].to_numpy()
    results = {}
    for name, lists, length in (
        ("two_stage", reranked, k),
        ("retrieval", candidates, k),
        ("candidates", candidates, n),
    ):
        ranks = _hits(lists, test_users, test_items, user_rows, length)
        results[name] = _list_metrics(ranks, length)
    results["num_interactions"] = int(len(test))
    results["num_candidates"] = n
    return results
