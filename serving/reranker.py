"""`Reranker`: the service's optional second stage, a tabular ranker.

Requests with `"rerank": true` retrieve `candidates` items from the served
two-tower bundle (with the request's exclusions) and reorder them with a
binary or regression `TabularBundle`, through
`recsys.two_stage.TwoStageRecommender.rerank`: the order is the one `recsys
recommend BUNDLE --rerank RANKER` prints. The ranker is loaded once; a
reload of the retrieval bundle keeps it. A ranker trained on another
table's ids than the retrieval bundle's is refused when the two are
paired (`check_retriever`: at load, at each reload), not per request.

The candidates are scored by a `NumpyRanker` (the model's weights read
once into numpy, the pairs' inputs looked up by a `PairEncoder`: no pandas
frame, no Keras call per request) when it implements every layer and
agrees with the Keras model at load; else by the Keras model, one call at
a time. `rerank_many` answers the reranked requests of a server's batch
window together (`recsys.serving.batching.MicroBatcher`).
"""

import contextlib
import logging
import threading
from typing import Any

import numpy as np

from recsys.bundles import load_bundle
from recsys.serving.fast_ranker import NumpyRanker
from recsys.serving.one_blas_thread import ONE_BLAS_THREAD
from recsys.serving.pair_features import PairEncoder
from recsys.two_stage import DEFAULT_BLEND
from recsys.two_stage import DEFAULT_NUM_CANDIDATES
from recsys.two_stage import TwoStageRecommender
from recsys.two_stage import check_pairing
from recsys.two_stage import check_ranker

logger = logging.getLogger(__name__)

# The ranker's inputs are padded to one of a few batch sizes: a jitted model
# compiles once per input shape (300-500 ms each on CPU), so a server would
# otherwise compile again for every new candidate count.
SMALLEST_BATCH = 128
PREDICT_BATCH = 8192  # `TabularBundle.predict`'s batch size

# How close the numpy scores of the load-time check must be to Keras'.
CHECK_RTOL = 1e-4
CHECK_ATOL = 1e-5


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
    """A ranker's `score_pairs`: numpy where it can, else Keras.

    Keras' `predict` is not safe to run from two threads at once (the JAX
    trainer takes the model's variables out while it runs): its calls are
    padded to few shapes and made one at a time. The numpy path keeps no
    state and runs in any thread.
    """

    def __init__(self, ranker, fast=True, numpy_ranker=None, encoder=None):
        self.ranker = ranker
        self.task = ranker.task
        self._lock = threading.Lock()
        self.numpy = None
        self.encoder = None
        if fast and numpy_ranker is not None:
            # Converted and checked against Keras by another process
            # (`recsys.serving.shared_ranker`): no Keras here.
            self.numpy = numpy_ranker
            self.encoder = encoder or PairEncoder(ranker)
            return
        users = ranker.users[ranker.user_column].to_numpy()
        items = ranker.items[ranker.item_column].to_numpy()
        # Compile the model for the default candidate count now, not on
        # the first request: a few known pairs, and an unknown user (one
        # padded batch of `SMALLEST_BATCH`).
        count = min(SMALLEST_BATCH - 1, max(len(users), len(items)))
        sample_users = np.asarray(
            [*np.resize(users, count), "recsys: no such user"], dtype=object
        )
        sample_items = np.resize(items, count + 1)
        expected = self._keras(sample_users, sample_items)
        if fast:
            self._try_numpy(sample_users, sample_items, expected)

    @property
    def kind(self):
        """`"numpy"` or `"keras"`: what scores the pairs."""
        return "keras" if self.numpy is None else "numpy"

    def _try_numpy(self, users, items, expected):
        """Uses the numpy path if it converts and agrees with Keras."""
        fast = NumpyRanker.from_keras(self.ranker.model)
        if fast is None:
            return
        try:
            encoder = PairEncoder(self.ranker)
            inputs = encoder.encode(users, items)
            found = fast(inputs)[:, 0] if fast.supports(inputs) else None
        except Exception:  # Keras answers as it always did
            logger.exception("Ranker served by Keras: the numpy path failed")
            return
        if found is None or not np.allclose(
            found, expected, rtol=CHECK_RTOL, atol=CHECK_ATOL
        ):
            logger.warning(
                "Ranker served by Keras: its numpy scores differ from "
                "Keras' on the load-time check."
            )
            return
        self.numpy, self.encoder = fast, encoder

    def score_pairs(self, user_ids, item_ids):
        if self.numpy is not None:
            inputs = self.encoder.encode(user_ids, item_ids)
            if self.numpy.supports(inputs):
                return self.numpy(inputs)[:, 0]
        return self._keras(user_ids, item_ids)

    def _keras(self, user_ids, item_ids):
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
        fast: bool. Score with a `NumpyRanker` where it implements the
            model (and agrees with Keras on a load-time check); `False`
            always calls the Keras model. Defaults to `True`.
        numpy_ranker: a `NumpyRanker` of `ranker`'s model already checked
            against Keras (`recsys.serving.shared_ranker`), used without
            converting or calling Keras. Defaults to `None`.
        encoder: the `PairEncoder` of `ranker` to use with `numpy_ranker`
            (else one is built). Defaults to `None`.

    Raises:
        ValueError: for any other bundle (see
            `recsys.two_stage.check_ranker`). A ranker trained on another
            table than a retrieval bundle is refused when paired with it
            (`check_retriever`).

    Example:

    ```python
    reranker = Reranker.load("artifacts/movielens_liked")
    service = RetrievalService.load("artifacts/demo")
    [(ids, scores, fallback)] = reranker.retrieve(
        service, [{"user_id": 42, "k": 10, "candidates": 100}]
    )
    ```
    """

    def __init__(self, ranker, fast=True, numpy_ranker=None, encoder=None):
        check_ranker(ranker)
        self.ranker = ranker
        self.version = ranker.version
        self._scorer = _ServedRanker(ranker, fast, numpy_ranker, encoder)

    def check_retriever(self, bundle):
        """Raises a `ValueError` unless this ranker can rerank `bundle`'s
        candidates: a ranker trained on another table's ids scores every
        candidate alike (`recsys.two_stage.check_pairing`). Reads every id
        once per pair (up to a second on a million-item catalog): call it
        when pairing, off the event loop.

        Args:
            bundle: the two-tower `recsys.Bundle` whose candidates it
                reranks.
        """
        check_pairing(bundle, self.ranker)

    @property
    def kind(self):
        """`"numpy"` or `"keras"`: what scores the candidates."""
        return self._scorer.kind

    @property
    def numpy_ranker(self):
        """The `NumpyRanker` scoring the candidates, or None (Keras)."""
        return self._scorer.numpy

    def serving(self):
        """A context for the time a server answers with this reranker.

        With the numpy ranker, BLAS stays on one thread until it exits
        (`recsys.serving.fast_ranker.OneBlasThread`): set and restored
        around each call instead, OpenBLAS's idle pool threads spun on a
        core between calls, and the server answered several times fewer
        reranked requests (`benchmarks/rerank_load.py`, target
        `blas_per_call`).

        Returns:
            A context manager.
        """
        if self.kind == "numpy":
            return ONE_BLAS_THREAD
        return contextlib.nullcontext()

    @classmethod
    def load(cls, path, **options):
        """Loads the ranker bundle at `path` and checks it can rerank.

        Args:
            path: str. A tabular bundle directory.
            **options: the constructor's keyword arguments.

        Raises:
            BundleError: if `path` holds no bundle, or one
                with a missing, unexpected or corrupt file (every file is
                read once and checked; the model comes from those bytes).
            ValueError: if it holds a bundle that cannot rerank.
        """
        return cls(load_bundle(path), **options)

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
            recsys.serving.service.QueryError: for a query the service
                refuses (the first one).
        """
        results = self.retrieve_many(service, queries)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def rerank_many(self, batch: list[tuple[Any, dict]]) -> list[Any]:
        """Answers `(service, query)` pairs: a `MicroBatcher`'s `run`.

        The queries of one service are answered together
        (`retrieve_many`); a batch can hold several services when a
        reload swapped the bundle while it filled.

        Args:
            batch: list of `(service, query)`, `query` as `retrieve` takes
                it.

        Returns:
            list: per pair, `(ids, scores, fallback)` or the exception its
            query alone raised.
        """
        results: list[Any] = [None] * len(batch)
        groups: dict[int, tuple[Any, list[int]]] = {}
        for i, (service, _) in enumerate(batch):
            groups.setdefault(id(service), (service, []))[1].append(i)
        for service, rows in groups.values():
            found = self.retrieve_many(service, [batch[i][1] for i in rows])
            for i, answer in zip(rows, found, strict=True):
                results[i] = answer
        return results

    def retrieve_many(self, service, queries):
        """`retrieve`, with each refused query's error in its place.

        The candidates come from one `RetrievalService.retrieve_many` call
        (one query tower call and one index search for those that need
        them), and the queries of one `blend` are scored in one ranker
        call. A query that breaks a shared ranker call is scored alone, so
        it fails alone.

        Returns:
            list: per query, `(ids, scores, fallback)` or an exception (a
            `QueryError` for a query the service refuses).

        Raises:
            ValueError: the ranker cannot rerank the service's bundle
                (`check_retriever`: a server checks it at load).
        """
        self.check_retriever(service.bundle)
        found = service.retrieve_many(
            [
                {
                    "user_id": query["user_id"],
                    "features": query.get("features"),
                    "k": query.get("candidates")
                    or max(DEFAULT_NUM_CANDIDATES, query["k"]),
                    "exclude": query.get("exclude") or (),
                    "exclude_seen": query.get("exclude_seen", True),
                }
                for query in queries
            ]
        )
        results = list(found)
        blends = {
            i: DEFAULT_BLEND if query.get("blend") is None else query["blend"]
            for i, query in enumerate(queries)
            if not isinstance(found[i], Exception)
        }
        for blend in dict.fromkeys(blends.values()):
            rows = [i for i, b in blends.items() if b == blend]
            answers = self._reranked(service, queries, found, rows, blend)
            for i, answer in zip(rows, answers, strict=True):
                results[i] = answer
        return results

    def _reranked(self, service, queries, found, rows, blend):
        """The answers of `rows` (one blend), alone if together fails."""
        try:
            ids, scores = self._rerank(
                service,
                [queries[i]["user_id"] for i in rows],
                [found[i] for i in rows],
                max(queries[i]["k"] for i in rows),
                blend,
            )
        except Exception as error:  # returned to its query, not hidden
            if len(rows) == 1:
                return [error]
            return [
                self._reranked(service, queries, found, [i], blend)[0]
                for i in rows
            ]
        answers = []
        for row, i in enumerate(rows):
            keep = np.isfinite(scores[row])[: queries[i]["k"]]
            answers.append(
                (
                    ids[row][: len(keep)][keep],
                    scores[row][: len(keep)][keep],
                    found[i][2],
                )
            )
        return answers

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
