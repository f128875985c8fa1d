"""`Reranker`: the service's optional second stage, a tabular ranker.

Requests with `"rerank": true` retrieve `candidates` items from the served
two-tower bundle (with the request's exclusions) and reorder them with a
binary or regression `TabularBundle`, through
`recsys.two_stage.TwoStageRecommender.rerank`: the order is the one `recsys
recommend BUNDLE --rerank RANKER` prints. The ranker is loaded once; a
reload of the retrieval bundle keeps it.
"""

import threading

import numpy as np

from recsys.bundles import load_bundle
from recsys.two_stage import DEFAULT_BLEND
from recsys.two_stage import DEFAULT_NUM_CANDIDATES
from recsys.two_stage import TwoStageRecommender
from recsys.two_stage import check_ranker

# The ranker's inputs are padded to one of a few batch sizes: a jitted model
# compiles once per input shape (300-500 ms each on CPU), so a server would
# otherwise compile again for every new candidate count.
SMALLEST_BATCH = 128
PREDICT_BATCH = 8192  # `TabularBundle.predict`'s batch size


def padded_size(n):
    """The batch size `n` scored pairs are padded to.

    Args:
        n: int. Number of pairs, `>= 1`.

    Returns:
        int: the next power of two from `SMALLEST_BATCH` up to
        `PREDICT_BATCH`, then the next multiple of `PREDICT_BATCH`.
    """
    if n <= SMALLEST_BATCH:
        return SMALLEST_BATCH
    if n <= PREDICT_BATCH:
        return 1 << (n - 1).bit_length()
    return -(-n // PREDICT_BATCH) * PREDICT_BATCH


class _ServedRanker:
    """A ranker's `score_pairs`, padded to few shapes and one call at a time.

    Keras' `predict` is not safe to run from two threads at once (the JAX
    trainer takes the model's variables out while it runs).
    """

    def __init__(self, ranker):
        self.ranker = ranker
        self.task = ranker.task
        self._lock = threading.Lock()

    def score_pairs(self, user_ids, item_ids):
        user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
        n = len(item_ids)
        extra = padded_size(n) - n
        users = np.concatenate([user_ids, np.repeat(user_ids[-1:], extra)])
        items = np.concatenate([item_ids, np.repeat(item_ids[-1:], extra)])
        with self._lock:
            return self.ranker.score_pairs(users, items)[:n]


class Reranker:
    """Reorders the served bundle's candidates with a tabular ranker.

    Args:
        ranker: a loaded `recsys.bundles.tabular.TabularBundle` of a binary or
            regression task.

    Raises:
        ValueError: for any other bundle (see
            `recsys.two_stage.check_ranker`).

    Example:

    ```python
    reranker = Reranker.load("artifacts/movielens_liked")
    service = RetrievalService.load("artifacts/demo")
    [(ids, scores, fallback)] = reranker.retrieve(
        service, [{"user_id": 42, "k": 10, "candidates": 100}]
    )
    ```
    """

    def __init__(self, ranker):
        check_ranker(ranker)
        self.ranker = ranker
        self.version = ranker.version
        self._scorer = _ServedRanker(ranker)
        # Compile the model for the default candidate count now, not on the
        # first request.
        users = ranker.users[ranker.user_column].to_numpy()[:1]
        items = ranker.items[ranker.item_column].to_numpy()[:1]
        self._scorer.score_pairs(users, items)

    @classmethod
    def load(cls, path):
        """Loads the ranker bundle at `path` and checks it can rerank.

        Raises:
            BundleError: if `path` holds no bundle, or one
                with a missing, unexpected or corrupt file (every file is
                read once and checked; the model comes from those bytes).
            ValueError: if it holds a bundle that cannot rerank.
        """
        return cls(load_bundle(path))

    def retrieve(self, service, queries):
        """Retrieves and reranks several queries, one ranker call per blend.

        Args:
            service: the `service.RetrievalService` retrieving the
                candidates.
            queries: list of dicts with `user_id` (the user the ranker
                scores for; required), `k`, and optionally `candidates`
                (defaults to `max(100, k)`), `blend` (defaults to `1.0`),
                `features`, `exclude` and `exclude_seen` (as
                `RetrievalService.retrieve` takes them); other keys are
                ignored, and `None` means the default.

        Returns:
            One `(ids, scores, fallback)` per query, as
            `RetrievalService.retrieve` returns it: the top `k` candidates
            by the ranker's score (or the blend), best first.

        Raises:
            recsys.serving.service.QueryError: for a query the service refuses.
        """
        found = []
        for query in queries:
            k = query["k"]
            candidates = query.get("candidates") or max(
                DEFAULT_NUM_CANDIDATES, k
            )
            found.append(
                service.retrieve(
                    user_id=query["user_id"],
                    features=query.get("features"),
                    k=candidates,
                    exclude=query.get("exclude") or (),
                    exclude_seen=query.get("exclude_seen", True),
                )
            )
        results = [None] * len(queries)
        blends = [
            DEFAULT_BLEND if query.get("blend") is None else query["blend"]
            for query in queries
        ]
        for blend in dict.fromkeys(blends):
            rows = [i for i, b in enumerate(blends) if b == blend]
            ids, scores = self._rerank(
                service,
                [queries[i]["user_id"] for i in rows],
                [found[i] for i in rows],
                max(queries[i]["k"] for i in rows),
                blend,
            )
            for row, i in enumerate(rows):
                keep = np.isfinite(scores[row])[: queries[i]["k"]]
                results[i] = (
                    ids[row][: len(keep)][keep],
                    scores[row][: len(keep)][keep],
                    found[i][2],
                )
        return results

    def _rerank(self, service, user_ids, found, k, blend):
        """`TwoStageRecommender.rerank` of retrieved lists of any lengths."""
        width = max([1] + [len(ids) for ids, _, _ in found])
        ids = np.empty((len(found), width), service.bundle.item_ids.dtype)
        ids[:] = service.bundle.item_ids[0]  # padding: scored -inf, dropped
        scores = np.full((len(found), width), -np.inf, np.float32)
        for row, (row_ids, row_scores, _) in enumerate(found):
            ids[row, : len(row_ids)] = row_ids
            scores[row, : len(row_scores)] = row_scores
        recommender = TwoStageRecommender(
            service.bundle, self._scorer, num_candidates=width, blend=blend
        )
        return recommender.rerank(
            np.asarray(user_ids, dtype=object), ids, scores, k
        )
