"""`RetrievalService`: a loaded bundle answering retrieval queries."""

import threading
from typing import Any

import numpy as np

from recsys.bundles.two_tower import Bundle
from recsys.names import HISTORY
from recsys.serving.top_items import TopItemsTable


class QueryError(ValueError):
    """A query the service cannot answer as asked (a client error)."""


class RetrievalService:
    """Answers top-k queries from one bundle; immutable once built.

    Known users are answered from their precomputed query vectors (no model
    call), and the common query of a known user (top-k with seen items
    excluded) from a `TopItemsTable` searched at load; queries with
    `features` run the query tower; unknown users without features get the
    most popular items. Everything that can be done once (vectors, known
    users' top items, the index, id lookups, the query tower) is done at
    load; with `load_tower=False` the query tower (and Keras, seconds to
    import) is left to `load_query_tower`, which a server calls in the
    background once it answers, and which the first query with `features`
    calls (or waits for).

    Args:
        bundle: a loaded `recsys.Bundle`.
        exact: bool. Search exactly (brute force) instead of with the
            bundle's index. Defaults to `False`.
        precompute_depth: int. Items per user in the `TopItemsTable`; `0`
            searches the index for every request. Defaults to `100`.
        precompute_max_users: int. Most users in the table (the most
            active first). Defaults to `200_000`.
        load_tower: bool. Load and warm the query tower now. Defaults to
            `True`.

    Example:

    ```python
    service = RetrievalService(Bundle.load("artifacts/demo"))
    ids, scores, fallback = service.retrieve(user_id=42, k=10)
    ```
    """

    def __init__(
        self,
        bundle: Bundle,
        exact: bool = False,
        precompute_depth: int = 100,
        precompute_max_users: int = 200_000,
        load_tower: bool = True,
    ) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.index = bundle.exact_index if exact else bundle.index
        config = bundle.config
        self.item_column = config["data"]["item"]
        self.user_column = config["data"]["user"]
        self.query_features = list(config["model"]["query_features"])
        self.history_length = config["model"]["history_length"]
        self.feature_names = self.query_features + (
            [HISTORY] if self.history_length else []
        )
        # Build the user lookup now, not on the first request.
        bundle.user_row(None)
        self._query_tower: Any = None
        self._tower_lock = threading.Lock()
        if load_tower:
            self.load_query_tower()
        self.top_items = None
        if precompute_depth > 0 and precompute_max_users > 0:
            self.top_items = TopItemsTable(
                bundle,
                self.index,
                depth=precompute_depth,
                max_users=precompute_max_users,
            )

    @classmethod
    def load(cls, path: str, **options: Any) -> "RetrievalService":
        """Loads the bundle at `path` and builds the service.

        Every file is read once and checked (`recsys.Bundle.load`), the
        query tower included, so the service never reopens the directory:
        a bundle swapped in later is served only by a new `load`.

        Args:
            path: str. A bundle directory.
            **options: the constructor's keyword arguments.

        Raises:
            BundleError: naming the file that is missing,
                unexpected or corrupt (the caller keeps its old service).
        """
        return cls(Bundle.load(path), **options)

    @property
    def query_tower(self) -> Any:
        """The query tower (loaded now if it is not yet)."""
        return self.load_query_tower()

    @property
    def tower_loaded(self) -> bool:
        """Whether the query tower is loaded and warmed."""
        return self._query_tower is not None

    def load_query_tower(self) -> Any:
        """Loads the query tower and runs it once; returns it.

        Thread-safe and done once: a second caller waits for the first.
        The tower is built from the bytes read (and checked) at load.

        Returns:
            The Keras query tower.
        """
        with self._tower_lock:
            if self._query_tower is None:
                tower = self.bundle.query_tower
                # The first call traces and compiles: do it here, not in a
                # request.
                tower(
                    self._inputs({name: None for name in self.query_features})
                )
                self._query_tower = tower
        return self._query_tower

    # -- queries -----------------------------------------------------------

    def _embed(self, features):
        inputs = self._inputs(features)
        tower = self._query_tower
        if tower is None:
            tower = self.load_query_tower()
        try:
            vector = tower(inputs)
        except ValueError as error:  # e.g. a non-numeric numeric feature
            raise QueryError(str(error)) from None
        return np.asarray(vector, np.float32)

    def _inputs(self, features):
        """The query tower's inputs for one query's raw features."""
        unknown = sorted(set(features) - set(self.feature_names))
        if unknown:
            raise QueryError(
                f"Unknown query features {unknown}. This bundle's query "
                f"features: {self.feature_names}"
            )
        pre = self.bundle.preprocessor
        inputs = {}
        for name in self.query_features:
            value = features.get(name)
            if isinstance(value, (list, dict)):
                raise QueryError(
                    f"Feature '{name}' must be a single value. Received: "
                    f"{value!r}"
                )
            inputs[name] = pre.transform_column(name, [value])
        if self.history_length:
            history = features.get(HISTORY)
            history = [] if history is None else history
            if isinstance(history, list):  # 42.0 is item 42, as in JSON
                history = [
                    int(v) if isinstance(v, float) and v.is_integer() else v
                    for v in history
                ]
            if not isinstance(history, list) or any(
                not isinstance(v, (str, int)) or isinstance(v, bool)
                for v in history
            ):
                raise QueryError(
                    f"Feature '{HISTORY}' must be a list of item ids, most "
                    f"recent first. Received: {history!r}"
                )
            ids = pre.transform_column(self.item_column, history)
            row = np.zeros((1, self.history_length), np.int32)
            row[0, : min(len(ids), self.history_length)] = ids[
                : self.history_length
            ]
            inputs[HISTORY] = row
        return inputs

    def retrieve(
        self, user_id=None, features=None, k=10, exclude=(), exclude_seen=True
    ):
        """Top-k items for one query.

        Args:
            user_id: the user's id (any spelling of it), or None.
            features: dict of query features (see `RetrievalService`).
            k: int. Items to return (capped at the catalog size).
            exclude: item ids never to return.
            exclude_seen: bool. Drop the user's training items and the
                items of `features["history"]`.

        Returns:
            `(ids, scores, fallback)`: item ids and scores, best first (fewer
            than `k` when exclusions leave fewer items), and `"popular"` when
            the popular-items fallback answered, else None.
        """
        if user_id is None and features is None:
            raise QueryError("Give a `user_id`, `features`, or both.")
        bundle = self.bundle
        row = -1 if user_id is None else bundle.user_row(user_id)
        explicit = bundle.item_rows(list(exclude)) if exclude else None
        if (
            row >= 0
            and features is None
            and exclude_seen
            and self.top_items is not None
        ):
            found = self.top_items.lookup(
                row, k, None if explicit is None else explicit[explicit >= 0]
            )
            if found is not None:
                return bundle.item_ids[found[0]], found[1], None
        banned = [explicit] if exclude else []
        if exclude_seen and row >= 0:
            banned.append(bundle.seen(row))
        if (
            exclude_seen
            and features
            and isinstance(features.get(HISTORY), list)
        ):
            # The given history is what this query has seen.
            banned.append(bundle.item_rows(features[HISTORY]))
        banned = (
            np.unique(np.concatenate(banned)) if banned else np.zeros(0, int)
        )
        banned = banned[banned >= 0]
        fallback = None
        if features is not None:
            features = dict(features)
            if user_id is not None and self.user_column in self.query_features:
                features.setdefault(self.user_column, user_id)
            query = self._embed(features)
        elif row >= 0:
            query = bundle.user_embeddings[row : row + 1]
        else:
            return (*self._popular_items(k, banned), "popular")
        positions, scores = self.index.search_rows(query, k, exclude=[banned])
        keep = positions[0] >= 0
        ids = bundle.item_ids[positions[0][keep]]
        return ids, scores[0][keep], fallback

    def _popular_items(self, k, banned):
        order = self.bundle.popular_rows
        order = order[~np.isin(order, banned)][:k]
        return self.bundle.item_ids[order], self.bundle.item_popularity[order]

    def similar(self, item_id, k=10):
        """The `k` items nearest to `item_id`; KeyError if it is unknown."""
        row = int(self.bundle.item_rows([item_id])[0])
        if row < 0:
            raise KeyError(item_id)
        positions, scores = self.index.search_rows(
            self.bundle.item_embeddings[row : row + 1], k, exclude=[[row]]
        )
        keep = positions[0] >= 0
        return self.bundle.item_ids[positions[0][keep]], scores[0][keep]
