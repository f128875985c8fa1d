"""`RetrievalService`: a loaded bundle answering retrieval queries."""

import logging
import math
import reprlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from recsys.bundles.two_tower import Bundle
from recsys.features import BucketizedFeature
from recsys.features import CategoricalFeature
from recsys.features import NumericFeature
from recsys.features.numeric_transform import NO_NUMBER
from recsys.features.numeric_transform import as_numbers
from recsys.names import HISTORY
from recsys.serving.batching import MicroBatcher
from recsys.serving.fast_tower import NumpyTower
from recsys.serving.feature_cache import FeatureCache
from recsys.serving.top_items import TopItemsTable

logger = logging.getLogger(__name__)

# Batch sizes the Keras tower (the fallback for towers `NumpyTower` does not
# implement) is called with: a batch is padded up to the next one, so JAX
# compiles a handful of shapes, once each, instead of one per batch size.
KERAS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


# Exclusion lists up to this long are looked up through the `FeatureCache`.
CACHED_EXCLUDE = 64


class QueryError(ValueError):
    """A query the service cannot answer as asked (a client error).

    Args:
        message: str. What is wrong, and the fix.
        loc: tuple. Where in the query: e.g. `("features", "age")`; empty
            for the query as a whole. Defaults to `()`.
    """

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc


class TowerUnavailable(RuntimeError):
    """The query tower failed to load: queries with `features` cannot be
    answered (the server's fault, not the client's)."""


class _Plan:
    """One query on its way: its answer, or what is left to compute."""

    __slots__ = ("answer", "banned", "inputs", "k", "listed", "vector")

    def __init__(
        self, k, banned, vector=None, inputs=None, answer=None, listed=None
    ):
        self.k = k
        self.banned = banned
        self.vector = vector
        self.inputs = inputs
        self.answer = answer
        # A second stage's list: `(rows, scores, offset)`, searched past.
        self.listed = listed


class RetrievalService:
    """Answers top-k queries from one bundle; immutable once built.

    Known users are answered from their precomputed query vectors (no model
    call), and the common query of a known user (top-k with seen items
    excluded) from a `TopItemsTable` searched at load; queries with
    `features` run the query tower; unknown users whose features say
    nothing of them (none, or only unknown ids and items: `_describes`)
    get the most popular items. Everything that can be done once (vectors,
    known users' top items, the index, id lookups, the query tower) is done
    at load; with `load_tower=False` the query tower (and Keras, seconds to
    import) is left to `load_query_tower`, which a server calls in the
    background once it answers, and which the first query with `features`
    calls (or waits for).

    The query tower is evaluated by `NumpyTower` (its weights read once into
    numpy: no Keras dispatch per request) when it implements every layer,
    else by the Keras tower. `retrieve_many` answers several queries with
    one tower call and one index search per distinct `k`; `batcher` feeds it
    the concurrent requests of a server (`MicroBatcher`).

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
        precompute_in_background: bool. Build the `TopItemsTable` in a
            thread; until it is done, `top_items` is None and known users
            are answered through the index. Defaults to `False`.
        batch_window: float. Seconds `batcher` holds a request for others
            to share its tower call and index search. Defaults to `0.001`.
        batch_max_size: int. Requests that close a batch early. Defaults
            to `64`.
        fast_tower: bool. Evaluate the query tower with `NumpyTower` where
            it can. Defaults to `True`.
        defer_precompute: bool. With `precompute_in_background`, start
            no thread yet: `start_precompute` starts it (a server that
            forks workers calls it in each, as threads do not survive a
            fork). Defaults to `False`.
        check: callable or None. Called with `bundle` before anything is
            built (a server's ranker: `Reranker.check_retriever`); what it
            raises refuses the bundle. Defaults to `None`.

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
        precompute_in_background: bool = False,
        batch_window: float = 0.001,
        batch_max_size: int = 64,
        fast_tower: bool = True,
        defer_precompute: bool = False,
        check: Callable[[Bundle], Any] | None = None,
    ) -> None:
        if check is not None:
            check(bundle)
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
        self._names = frozenset(self.feature_names)
        # What of each query feature says nothing of a user (`_describes`).
        self._silent_ids = {
            name: _silent_ids(bundle.preprocessor.feature(name))
            for name in self.query_features
        }
        pre = bundle.preprocessor
        # A JSON boolean is no id and no number: refused, except by these
        # features, whose vocabulary holds booleans (a column of them).
        self.boolean_features = frozenset(
            name
            for name in self.query_features
            if _holds_booleans(pre.feature(name), pre, name)
        )
        self._numeric = {
            name
            for name in self.query_features
            if isinstance(
                pre.feature(name), (NumericFeature, BucketizedFeature)
            )
        }
        # Build the user lookup now, not on the first request.
        bundle.user_row(None)
        self.cache = FeatureCache(
            bundle,
            self.item_column,
            # An id outside the vocabulary says nothing of the user
            # (`_describes`): it enters the tower as a null, not through
            # an out-of-vocabulary row no training row reached, which
            # made "a new user_id + a history" another query than the
            # history alone (a random vector added).
            nulls={
                name: last
                for name in self.query_features
                if (last := _untrained_ids(pre.feature(name), pre, name))
            },
        )
        # History codes at or below this are out of the query tower's
        # vocabulary: items added by `recsys index` after training (or
        # unknown ids), which all share one vector (none, hashed ids).
        item = bundle.preprocessor.feature(self.item_column)
        self._unknown_codes = (
            0 if item.vocabulary == "hash" else int(item.num_oov_buckets)
        )
        self._query_tower: Any = None
        self._fast_tower: NumpyTower | None = None
        self._use_fast_tower = fast_tower
        self._tower_lock = threading.Lock()
        # Keras' predict_on_batch swaps the model's state in and out.
        self._keras_lock = threading.Lock()
        self.tower_error: str | None = None
        # A `recsys.serving.shared_tower.SharedTower` that another process
        # fills (set by a server that forks workers, before the tower loads).
        self.shared_tower: Any = None
        self._exact = exact
        self.batcher = MicroBatcher(
            self.retrieve_many,
            window=batch_window,
            max_size=batch_max_size,
            inline=lambda: self.answers_quickly,
        )
        if load_tower:
            self.load_query_tower()
        self.top_items: TopItemsTable | None = None
        self._stop = threading.Event()
        self.top_items_done = threading.Event()
        self._table = {
            "depth": precompute_depth,
            "max_users": precompute_max_users,
        }
        self._precompute_started = False
        if not precompute_in_background:
            self._precompute_started = True
            self._precompute(**self._table)
        elif not defer_precompute:
            self.start_precompute()

    def start_precompute(self) -> None:
        """Starts building the top-items table in a thread (once).

        Until it is done, `top_items` is None and known users are answered
        through the index.
        """
        if self._precompute_started:
            return
        self._precompute_started = True
        threading.Thread(
            target=self._precompute,
            kwargs={**self._table, "background": True},
            name="precompute",
            daemon=True,
        ).start()

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

    def _precompute(self, depth, max_users, background=False):
        """Item id lookups, then known users' top items (`TopItemsTable`)."""
        try:
            self.cache.prepare(stop=self._stop)
            if depth <= 0 or max_users <= 0 or self.bundle.ranked is not None:
                return  # a second stage's lists answer known users
            table = TopItemsTable(
                self.bundle,
                self.index,
                depth=depth,
                max_users=max_users,
                stop=self._stop,
            )
            if not self._stop.is_set():
                self.top_items = table  # one assignment: requests see all
        except Exception:
            if not background:
                raise
            # The index keeps answering known users.
            logger.exception("Precomputing at load failed")
        finally:
            self.top_items_done.set()

    def close(self) -> None:
        """Stops building the top-items table (a reload replaced us).

        Requests still holding this service are answered as before.
        """
        self._stop.set()

    @property
    def query_tower(self) -> Any:
        """The Keras query tower (loaded now if it is not yet)."""
        self.load_query_tower()
        return self._keras_tower()

    @property
    def tower_loaded(self) -> bool:
        """Whether the query tower is loaded and warmed."""
        return self._query_tower is not None or self._fast_tower is not None

    @property
    def tower_kind(self) -> str | None:
        """`"numpy"` or `"keras"`: what evaluates the query tower (None
        until it is loaded)."""
        if self._fast_tower is not None:
            return "numpy"
        return None if self._query_tower is None else "keras"

    @property
    def answers_quickly(self) -> bool:
        """Whether a batch of queries takes a millisecond or so (the numpy
        tower and an approximate index), so a `MicroBatcher` runs it on
        the event loop rather than in a thread (the Keras tower, exact
        search: long calls that release the GIL)."""
        return not self._exact and self._fast_tower is not None

    def _keras_tower(self) -> Any:
        """The Keras tower, loaded now where only the shared numpy tower
        was (a query `NumpyTower` cannot evaluate)."""
        with self._tower_lock:
            if self._query_tower is None:
                self._query_tower = self.bundle.query_tower
        return self._query_tower

    def load_query_tower(self) -> Any:
        """Loads the query tower and runs it once; returns it.

        Thread-safe and done once: a second caller waits for the first.
        The tower is built from the bytes read (and checked) at load, and
        its weights are read into a `NumpyTower` when it supports them.
        With a `shared_tower` (forked workers), the `NumpyTower` written
        there by another process is used and Keras is not loaded.

        Returns:
            The Keras query tower, or None when the shared numpy tower
            serves (`query_tower` then loads Keras).
        """
        with self._tower_lock:
            if self._query_tower is None and self._fast_tower is None:
                try:
                    fast = tower = None
                    if self._use_fast_tower and self.shared_tower is not None:
                        fast = self.shared_tower.wait()
                    if fast is None:
                        tower = self.bundle.query_tower
                    if fast is None and self._use_fast_tower:
                        fast = NumpyTower.from_keras(tower)
                    empty = self._inputs(
                        {name: None for name in self.query_features}
                    )
                    if fast is not None:
                        fast(empty)
                    else:
                        # The first call of each batch size traces and
                        # compiles: do it here, not in a request.
                        for size in KERAS_BUCKETS:
                            if size <= self.batcher.max_size:
                                tower.predict_on_batch(_repeat(empty, size))
                except Exception as error:
                    self.tower_error = repr(error)
                    raise
                self._fast_tower = fast
                self.tower_error = None
                self._query_tower = tower
        return self._query_tower

    def convert_tower(self) -> NumpyTower | None:
        """Loads the Keras query tower, runs it once, and returns its
        `NumpyTower` (None when numpy cannot evaluate it, or with
        `fast_tower=False`: Keras then serves it).

        What the helper process of a server with workers runs before it
        forks them (`recsys.serving.shared_tower.SharedTower`): this
        service keeps nothing of it, and a tower that fails here refuses
        the bundle.

        Raises:
            BundleError: a tower Keras refuses (`safe_mode`), or one of
                other inputs than the bundle's; whatever else loading or
                running it raises.
        """
        tower = self.bundle.query_tower
        empty = self._inputs({name: None for name in self.query_features})
        fast = NumpyTower.from_keras(tower) if self._use_fast_tower else None
        (tower if fast is None else fast)(empty)
        return fast

    # -- queries -----------------------------------------------------------

    def _inputs(self, features, history=None):
        """The query tower's inputs for one query's raw features.

        `history`: the vocabulary ids of `features["history"]` where the
        caller looked them up already (`_history`).
        """
        unknown = sorted(name for name in features if name not in self._names)
        if unknown:
            raise QueryError(
                f"Unknown query features {unknown}. This bundle's "
                f"query features: {self.feature_names}",
                ("features", unknown[0]),
            )
        cache = self.cache
        inputs = {}
        for name in self.query_features:
            value = features.get(name)
            if isinstance(value, (list, dict)):
                # `reprlib`: shortened, and a few levels deep (`repr` of a
                # request's 990-deep list ran out of stack).
                raise QueryError(
                    f"`features[{name!r}]` must be a single value. "
                    f"Received: {reprlib.repr(value)}",
                    ("features", name),
                )
            if isinstance(value, bool) and name not in self.boolean_features:
                raise QueryError(
                    _boolean_refused(name, value, name in self._numeric),
                    ("features", name),
                )
            try:
                inputs[name] = cache.value(name, value)
            # OverflowError: an integer past any float (`10**400`).
            except (ValueError, TypeError, OverflowError) as error:
                # The preprocessor speaks of a table's cells and rows.
                message = (
                    _number_refused(name, value)
                    if name in self._numeric
                    else str(error)
                )
                raise QueryError(message, ("features", name)) from None
        if self.history_length:
            if history is None:
                history = self._history(features)[1]
            # Items the tower never trained on say nothing of the user:
            # their shared out-of-vocabulary vector made every history of
            # newly indexed items one query. Left out, as padding.
            history = history[history > self._unknown_codes]
            row = np.zeros((1, self.history_length), np.int32)
            row[0, : min(len(history), self.history_length)] = history[
                : self.history_length
            ]
            inputs[HISTORY] = row
        return inputs

    def _history(self, features):
        """`(rows, vocabulary_ids)` of a query's history (empty if none)."""
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
                f"`features[{HISTORY!r}]` must be a list of item ids, most "
                f"recent first. Received: {reprlib.repr(history)}",
                ("features", HISTORY),
            )
        return self.cache.items(history)

    def embed(self, features_list: list[dict[str, Any]]) -> np.ndarray:
        """Query vectors of raw feature dicts, in one tower call.

        Args:
            features_list: list of dicts of query features.

        Returns:
            float32 array `(len(features_list), dim)`.

        Raises:
            QueryError: for the first query the tower cannot embed.
            TowerUnavailable: if the query tower failed to load.
        """
        vectors = self._embed_all([self._inputs(f) for f in features_list])
        for vector in vectors:
            if isinstance(vector, Exception):
                raise vector
        return np.stack(vectors)

    def _tower_call(self, inputs):
        if not self.tower_loaded:
            self._require_tower()
        fast = self._fast_tower
        if fast is not None and fast.supports(inputs):
            return fast(inputs)
        count = len(next(iter(inputs.values())))
        size = next((b for b in KERAS_BUCKETS if b >= count), count)
        tower = self._keras_tower()
        # Compiled once per batch size: an eager call of an ordered
        # history encoder (a GRU's scan) took ~115 ms and kept ~2 MB of
        # traces a call, against 0.1 ms (a scratch timing, 50 calls).
        with self._keras_lock:
            vectors = tower.predict_on_batch(_repeat(inputs, size, count))
        return np.asarray(vectors, np.float32)[:count]

    def _require_tower(self) -> None:
        """Loads the query tower, or raises `TowerUnavailable`.

        A tower that failed to load is not loaded again: it comes from the
        bytes read at load, so it would fail the same way, and each try
        would hold a thread for seconds.
        """
        if self.tower_error is None:
            try:
                self.load_query_tower()
            except Exception:
                logger.exception("Loading the query tower failed")
        if not self.tower_loaded:
            raise TowerUnavailable(
                "The query tower of this bundle failed to load, so queries "
                "with `features` cannot be answered (queries by `user_id` "
                "alone still are). Fix: the server's operator reloads a "
                "bundle whose tower loads; the server log has the error."
            )

    def _embed_all(self, batch):
        """One vector (or `QueryError`) per inputs dict of `batch`."""
        try:
            stacked = {
                name: np.concatenate([inputs[name] for inputs in batch])
                for name in batch[0]
            }
            return list(self._tower_call(stacked))
        except ValueError as error:  # e.g. a non-numeric numeric feature
            if len(batch) == 1:
                return [QueryError(str(error))]
        # Someone's input broke the batch: embed each alone.
        return [self._embed_all([inputs])[0] for inputs in batch]

    def _search_all(self, plans, k):
        """`(rows, scores)` (or `QueryError`) per plan, searched together."""
        try:
            rows, scores = self.index.search_rows(
                np.stack([plan.vector for plan in plans]),
                k,
                exclude=[plan.banned for plan in plans],
            )
            return list(zip(rows, scores, strict=True))
        except ValueError as error:  # e.g. a query vector with inf
            if len(plans) == 1:
                return [QueryError(str(error))]
        return [self._search_all([plan], k)[0] for plan in plans]

    def _plan(
        self, user_id=None, features=None, k=10, exclude=(), exclude_seen=True
    ):
        """What answering one query takes (see `retrieve`)."""
        if user_id is None and features is None:
            raise QueryError("Give a `user_id`, `features`, or both.")
        if user_id is not None and features is not None and not features:
            # `{}` says nothing new of a known user: their stored vector and
            # history answer (a client that always sends the object got
            # the tower's answer for an empty history instead).
            features = None
        bundle = self.bundle
        row = -1 if user_id is None else bundle.user_row(user_id)
        explicit = None
        if exclude:
            # A long list is looked up at once, not value by value.
            explicit = (
                self.cache.items(list(exclude))[0]
                if len(exclude) <= CACHED_EXCLUDE
                else bundle.item_rows(list(exclude))
            )
        table = self.top_items
        if row >= 0 and features is None and exclude_seen and table is not None:
            found = table.lookup(
                row, k, None if explicit is None else explicit[explicit >= 0]
            )
            if found is not None:
                return _Plan(
                    k, None, answer=(bundle.item_ids[found[0]], found[1], None)
                )
        banned = [explicit] if exclude else []
        if exclude_seen and row >= 0:
            banned.append(bundle.seen(row))
        history, history_rows = None, np.zeros(0, int)
        if features is not None and self.history_length:
            history_rows, history = self._history(features)
            if exclude_seen:  # the given history is what this query saw
                banned.append(history_rows)
        banned = (
            np.unique(np.concatenate(banned)) if banned else np.zeros(0, int)
        )
        banned = banned[banned >= 0]
        if features is not None:
            features = dict(features)
            if user_id is not None and self.user_column in self.query_features:
                features.setdefault(self.user_column, user_id)
            # Checked whoever asks: a feature the bundle has no input for
            # is refused alike with a known user, an unknown one or none.
            inputs = self._inputs(features, history)
            if row >= 0 or self._describes(features, inputs):
                return _Plan(k, banned, inputs=inputs)
        if row >= 0 and bundle.ranked is not None:
            return self._listed_plan(row, k, banned, explicit)
        if row >= 0:
            return _Plan(k, banned, vector=bundle.user_embeddings[row])
        return _Plan(
            k, banned, answer=(*self._popular_items(k, banned), "popular")
        )

    def _listed_plan(self, row, k, banned, explicit):
        """A known user's query with a second stage: their list, less
        `explicit` exclusions, then the index's best items off it."""
        bundle = self.bundle
        listed, scores = bundle.ranked.of(row)
        rows = listed
        if explicit is not None and len(explicit):
            keep = ~np.isin(rows, explicit)
            rows, scores = rows[keep], scores[keep]
        if len(rows) >= k:
            return _Plan(
                k, None, answer=(bundle.item_ids[rows[:k]], scores[:k], None)
            )
        banned = np.union1d(banned, listed).astype(np.int64)
        return _Plan(
            k,
            banned,
            vector=bundle.user_embeddings[row],
            listed=(rows, scores, bundle.ranked.offsets[row]),
        )

    def _describes(self, features, inputs):
        """Whether a query of an unknown user says anything of them.

        Something the query tower learnt from does: an item of the history
        it knows, a known value of a categorical or text feature (any value
        of a hashed one), a numeric value that is not null. A query of
        nothing else (an empty history, items added by `recsys index`
        after training, unknown ids or categories, nulls) gets the popular
        items, as an unknown `user_id` does, not the tower's vector of
        padding and out-of-vocabulary rows: one list for every new user.

        Args:
            features: dict. The query's raw features.
            inputs: dict. Their tower inputs (`_inputs`).
        """
        if HISTORY in inputs and inputs[HISTORY].any():
            return True  # `_inputs` keeps only known items
        for name, silent in self._silent_ids.items():
            if silent is None:
                if not _is_null(features.get(name)):
                    return True
            elif (inputs[name] > silent).any():
                return True
        return False

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

        Raises:
            QueryError: for a query the service cannot answer as asked.
            TowerUnavailable: for a query with `features` when the query
                tower failed to load.
        """
        query = {
            "user_id": user_id,
            "features": features,
            "k": k,
            "exclude": exclude,
            "exclude_seen": exclude_seen,
        }
        result = self.retrieve_many([query])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def retrieve_many(self, queries: list[dict[str, Any]]) -> list[Any]:
        """Answers several queries together, each as `retrieve` would.

        The queries that need the query tower share one call of it, and
        those that search the index one search per distinct `k`; a query
        the service refuses gets its `QueryError` in its place and the
        others are answered.

        Args:
            queries: list of dicts of `retrieve`'s keyword arguments.

        Returns:
            list: per query, `retrieve`'s `(ids, scores, fallback)` or a
            `QueryError`.

        Raises:
            TowerUnavailable: when a query needs the query tower and it
                failed to load.
        """
        results: list[Any] = [None] * len(queries)
        plans = {}
        for i, query in enumerate(queries):
            try:
                plan = self._plan(**query)
            except QueryError as error:
                results[i] = error
                continue
            if plan.answer is not None:
                results[i] = plan.answer
            else:
                plans[i] = plan
        embed = [i for i, plan in plans.items() if plan.inputs is not None]
        if embed:
            vectors = self._embed_all([plans[i].inputs for i in embed])
            for i, vector in zip(embed, vectors, strict=True):
                if isinstance(vector, Exception):
                    results[i] = vector
                    del plans[i]
                else:
                    plans[i].vector = vector
        # One search a k: the index answers each query as it would alone
        # (`Index.search_rows` searches apart those it must).
        groups: dict[int, list[int]] = {}
        for i, plan in plans.items():
            groups.setdefault(plan.k, []).append(i)
        item_ids = self.bundle.item_ids
        for k, group in groups.items():
            found = self._search_all([plans[i] for i in group], k)
            for i, answer in zip(group, found, strict=True):
                if isinstance(answer, Exception):
                    results[i] = answer
                    continue
                rows, scores = answer
                keep = rows >= 0
                rows, scores = rows[keep], scores[keep]
                listed = plans[i].listed
                if listed is not None:
                    more = k - len(listed[0])
                    rows = np.concatenate([listed[0], rows[:more]])
                    scores = np.concatenate(
                        [listed[1], scores[:more] + listed[2]]
                    )
                results[i] = (item_ids[rows], scores, None)
        return results

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


def _silent_ids(spec):
    """The largest input id of feature `spec` that says nothing of a user,
    or None for a numeric feature (where only a null says nothing).

    Id 0 is a null (or padding). An exact vocabulary's out-of-vocabulary
    buckets follow: their rows were trained only on values seen fewer than
    `min_frequency` times, never at all when every training user is in the
    vocabulary (`min_frequency = 1`), so an unknown id there is no one's.
    A hashed value shares a trained bucket: only its null says nothing.
    """
    if isinstance(spec, NumericFeature):
        return None
    if isinstance(spec, CategoricalFeature) and spec.vocabulary == "exact":
        return spec.num_oov_buckets
    return 0


def _untrained_ids(spec, preprocessor, name):
    """The largest input id of feature `spec` whose embedding row no
    training row reached, or 0 when every row was trained.

    The preprocessor is fit on the training rows
    (`recsys.kinds.base.fit_preprocessor`): an exact vocabulary that kept
    every value (`min_frequency = 1`, no `max_tokens` cut) holds every
    value the model trained on, so its out-of-vocabulary buckets kept
    their random initial rows. Where the fit left values out, those
    buckets learnt them (the row of a rare user, which a new one is
    read with), and a hashed value shares a trained bucket.
    """
    if not isinstance(spec, CategoricalFeature) or spec.vocabulary != "exact":
        return 0
    size = len(preprocessor.vocabularies_[name])
    if spec.min_frequency > 1 or (
        spec.max_tokens is not None and size >= spec.max_tokens
    ):
        return 0
    return spec.num_oov_buckets


def _holds_booleans(spec, preprocessor, name):
    """Whether feature `spec` learnt booleans as categories (its exact
    vocabulary holds `True` or `False`, as a column of booleans gives)."""
    if not isinstance(spec, CategoricalFeature) or spec.vocabulary != "exact":
        return False
    return not {"True", "False"}.isdisjoint(preprocessor.vocabularies_[name])


def _boolean_refused(name, value, numeric):
    """The message of a JSON boolean sent as an id or (`numeric`) a
    number."""
    expected = (
        "a number (1 or 0 for a flag)"
        if numeric
        else "a string or a whole number (an id or a category)"
    )
    return (
        f"`features[{name!r}]` must be {expected}, not a boolean. "
        f"Received: {str(value).lower()}"
    )


def _number_refused(name, value):
    """Why the preprocessor refused `value` of numeric feature `name`, in
    the request's words (its own message speaks of a table's cells)."""
    where = f"`features[{name!r}]`"
    shown = reprlib.repr(value)
    try:
        number = as_numbers([value]).iloc[0]
    except OverflowError:  # an integer past any float: the last message
        number = 0.0
    if math.isnan(number):
        return (
            f"{where} must be a number, or null for a missing value. "
            f"Received: {shown}"
        )
    if math.isinf(number):
        return f"{where} must be a finite number. Received: {shown}"
    return (
        f"{where} is too large for the model: beyond float32's +-3.4e38 "
        f"once scaled. Received: {shown}. Fix: send a number of the "
        "range the feature was trained on, or null for a missing value."
    )


def _is_null(value):
    """Whether a raw numeric feature value is missing: None, a NaN float,
    or text with no number in it (`""`, `"None"`), which the query tower
    reads as missing too (`recsys.features.Preprocessor`)."""
    if isinstance(value, str):
        return value.strip() in NO_NUMBER
    return value is None or (isinstance(value, float) and math.isnan(value))


def _repeat(inputs, size, count=1):
    """`inputs` of `count` rows padded to `size` rows (copies of the last)."""
    if size == count:
        return inputs
    return {
        name: np.concatenate(
            [value, np.repeat(value[-1:], size - count, axis=0)]
        )
        for name, value in inputs.items()
    }
