"""`SharedRanker`: one `--ranker` for all forked workers, no Keras in them.

With `recsys serve --workers N --ranker DIR`, the supervisor loads the
ranker bundle's tables without its model and builds the `PairEncoder` (the
tables transformed once, the id lookups warmed) before forking, so every
worker reads them from pages it shares. A helper process
(`SharedModel.fork_writer`) loads Keras, converts the model into a
`NumpyRanker`, checks its scores against Keras as a single server does
(`Reranker`), and writes it into shared memory; the supervisor waits
for it before forking the workers (`join`): a model that does not load,
or a helper that dies, stops the server at start. Each worker builds its
`Reranker` from these without importing Keras; a model the numpy code
cannot evaluate makes each worker load Keras itself, as before.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from recsys.bundles import load_bundle
from recsys.bundles.tabular import TabularBundle
from recsys.bundles.two_tower import read_manifest
from recsys.serving.fast_ranker import NumpyRanker
from recsys.serving.pair_features import PairEncoder
from recsys.serving.reranker import Reranker
from recsys.serving.shared_model import SharedModel
from recsys.serving.shared_model import capacity_for
from recsys.two_stage import check_pairing
from recsys.two_stage import check_ranker


class SharedRanker:
    """A ranker bundle loaded once, its numpy model shared by workers.

    Args:
        bundle: a `TabularBundle`, loaded with `load_model=False` (else its
            Keras model is in this process already).

    Raises:
        ValueError: for a bundle that cannot rerank
            (`recsys.two_stage.check_ranker`).

    Example:

    ```python
    shared = SharedRanker.load("artifacts/movielens_liked")
    shared.fill_in_child()  # before forking the workers
    shared.join()  # BundleError: the model does not load
    reranker = shared.reranker()  # in a worker
    ```
    """

    def __init__(self, bundle: Any) -> None:
        check_ranker(bundle)
        self.bundle = bundle
        self.encoder = PairEncoder(bundle)
        self._warm(self.encoder, bundle)
        capacity = capacity_for(getattr(bundle, "_model_bytes", None))
        self.shared = (
            None if capacity is None else SharedModel(NumpyRanker, capacity)
        )

    @classmethod
    def load(cls, path: str) -> "SharedRanker":
        """Loads the ranker bundle at `path` without building its model.

        Raises:
            BundleError: as `Reranker.load`.
            ValueError: for a bundle that cannot rerank.
        """
        if read_manifest(path).get("kind") == "tabular":
            return cls(TabularBundle.load(path, load_model=False))
        return cls(load_bundle(path))  # refused, its kind named

    @staticmethod
    def _warm(encoder, bundle):
        """Builds the encoder's id lookups now, in the shared pages: a
        pandas index builds its hash table on its first lookup (ids
        spelled as strings take that path; integer ids are searched in a
        sorted array built with the encoder)."""
        count = min(len(bundle.users), len(bundle.items), 2)
        if count:
            users = bundle.users[bundle.user_column].head(count).astype(str)
            items = bundle.items[bundle.item_column].head(count).astype(str)
            encoder.encode(
                np.asarray(users, dtype=object), np.asarray(items, dtype=object)
            )

    def check_retriever(self, bundle: Any) -> None:
        """Raises a `ValueError` unless the ranker can rerank `bundle`'s
        candidates (`Reranker.check_retriever`). Checked here, before the
        workers fork, a pair is not read again in them."""
        check_pairing(bundle, self.bundle)

    def fill_in_child(self) -> int | None:
        """Forks the helper that writes the `NumpyRanker`; its pid, or None
        when the model file cannot be sized (each worker loads Keras).

        Call it from a process with no other threads.
        """
        if self.shared is None:
            return None
        return self.shared.fork_writer(self._convert, "ranker")

    def join(self, stop: Callable[[], bool] | None = None) -> None:
        """Waits for the helper of `fill_in_child` (`SharedModel.join`).

        Raises:
            BundleError: the model does not load, or its helper died.
        """
        if self.shared is not None:
            self.shared.join(stop=stop)

    def _convert(self) -> NumpyRanker | None:
        # In the helper: Keras loads, and the load-time check runs.
        return Reranker(self.bundle).numpy_ranker

    def reranker(self) -> Reranker:
        """This worker's `Reranker`: the shared numpy model, or Keras."""
        fast = None if self.shared is None else self.shared.wait()
        if fast is None:
            return Reranker(self.bundle)
        return Reranker(self.bundle, numpy_ranker=fast, encoder=self.encoder)
