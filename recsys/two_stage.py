"""Two-stage recommendation: a two-tower bundle retrieves, a ranker reranks.

The retrieval stage scores the whole catalog cheaply (one dot product per
item) and keeps `num_candidates`; the ranking stage scores only those with a
`TabularBundle` that reads every column of the (user, item) pair, and keeps
the top `k`. The ranker can only reorder what retrieval found: the hit rate
of the candidate list (HR@num_candidates) bounds the two-stage hit rate.
With `blend < 1` the final order mixes both stages' scores, each
standardized within a user's candidates: `blend * ranker + (1 - blend) *
retrieval`, so a ranker that knows *how much* a user will like a movie can
correct, rather than replace, a retriever that knows *which* movies they
will watch.
"""

import contextlib
import logging
import threading
import weakref
from collections.abc import Iterable

import numpy as np
import pandas as pd

from recsys.data.retrieval_inputs import distinct_per_user
from recsys.data.retrieval_inputs import parse_times
from recsys.data.retrieval_inputs import positive_rows
from recsys.data.retrieval_inputs import with_time_column
from recsys.data.split import split_rule
from recsys.data.split import split_table
from recsys.features import canonical_strings

logger = logging.getLogger(__name__)

DEFAULT_NUM_CANDIDATES = 100
DEFAULT_BLEND = 1.0
RANKER_TASKS = ("binary", "regression")
# A ranker that knows fewer of the retrieval bundle's ids than this share
# of the smaller vocabulary (or none) was trained on another table.
MIN_SHARED_IDS = 0.01


def check_ranker(ranker):
    """Raises a `ValueError` unless `ranker` can order candidates.

    Args:
        ranker: a loaded bundle. It must be a
            `recsys.bundles.tabular.TabularBundle` of a binary or regression
            task: its one score per (user, item) pair is the order.
    """
    task = getattr(ranker, "task", None)
    if task not in RANKER_TASKS or not hasattr(ranker, "score_pairs"):
        kind = (getattr(ranker, "manifest", None) or {}).get("kind")
        received = f"a {kind!r} bundle" if kind else type(ranker).__name__
        if task is not None:
            received += f" of task {task!r}"
        raise ValueError(
            "The ranker must be a tabular bundle of a binary or regression "
            "task (its score orders the candidates). Received: "
            f"{received}. Fix: train one with a tabular config such as "
            "configs/movielens_liked.toml."
        )
    if getattr(ranker, "user_column", None) == "":  # an id-less table
        raise ValueError(
            "The ranker has no user and item ids (its config left data.user "
            "and data.item empty): it scores rows, not (user, item) pairs, "
            "so it cannot order candidates. Fix: train a ranker on a table "
            "of (user, item) rows, such as configs/movielens_liked.toml."
        )


# Pairs `check_pairing` accepted: ranker -> retrievers. The check reads
# every id (up to a second on a million-item catalog); a service checks a
# pair at load and again wherever it meets it (a forked worker, the Python
# API), so each pair is read once. Weak: a reload frees the old bundle.
_accepted: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_accepted_lock = threading.Lock()


def _id_keys(ids):
    """The canonical strings of `ids` (unicode ids are their own)."""
    ids = np.asarray(ids)
    if ids.dtype.kind == "U":
        return ids.astype(object)
    return canonical_strings(pd.Series(ids))


def _shared_ids(ranker_ids, retriever_ids):
    """How many of the retriever's ids the ranker's table holds."""
    known = pd.Index(_id_keys(retriever_ids)).isin(_id_keys(ranker_ids))
    return int(known.sum())


def _ranker_vocabularies(ranker):
    """`{side: (id column, ids)}` of the sides ("item", "user") whose
    columns the ranker reads (each looked up by id), or None for a ranker
    without id tables (nothing to compare)."""
    items = getattr(ranker, "items", None)
    users = getattr(ranker, "users", None)
    item_column = getattr(ranker, "item_column", None)
    user_column = getattr(ranker, "user_column", None)
    names = getattr(ranker, "feature_names", None)
    if (
        not isinstance(items, pd.DataFrame)
        or not isinstance(users, pd.DataFrame)
        or not item_column
        or not user_column
        or item_column not in items.columns
        or user_column not in users.columns
        or names is None
    ):
        return None
    # As `TabularBundle.pair_frame` builds a pair: the item table's columns
    # come from the item's row, the others (and the history) from the user's.
    sides = {}
    if any(name in items.columns for name in names):
        sides["item"] = (item_column, items[item_column])
    if getattr(ranker, "user_history", None) is not None or any(
        name not in items.columns for name in names
    ):
        sides["user"] = (user_column, users[user_column])
    return sides


def check_pairing(retriever, ranker):
    """Raises a `ValueError` when `ranker` was trained on another table.

    The ranker looks each candidate (and user) up by id in the tables it was
    trained on; an id it never saw gets its unknown-id inputs, so a ranker
    of another table's ids scores every candidate of a user alike, and
    silently. Compared: the retrieval catalog against the ranker's item
    table where the ranker reads item columns; the retrieval bundle's users
    against the ranker's user table where it reads user columns (or
    histories). A side is refused when the ids both hold are fewer than
    `MIN_SHARED_IDS` of the smaller vocabulary, or none (a ranker of a slice
    of the table knows a small share of a big catalog, all of its own ids),
    and every side when the two configs name other sources and other id
    columns (`_other_table`). Hashed or exact, a ranker's tables hold every
    id it was trained on, so both are compared. A ranker or retriever
    without id tables (as the service's per-request scorer) has nothing to
    compare and is accepted, and so is a side either holds no id of. A pair
    once accepted is not read again.

    Args:
        retriever: a two-tower `recsys.Bundle` (`item_ids`, `user_ids`).
        ranker: a `TabularBundle` that passed `check_ranker`.
    """
    # First: a served pair meets this on every reranked request.
    with _accepted_lock, contextlib.suppress(TypeError):  # no weak refs
        if retriever in _accepted.get(ranker, ()):
            return
    sides = _ranker_vocabularies(ranker)
    if sides is None:
        return
    data = (getattr(retriever, "config", None) or {}).get("data") or {}
    other = _other_table(data, ranker)
    refused = {}
    for side, (column, ranker_ids) in sides.items():
        ids = getattr(retriever, f"{side}_ids", None)
        if ids is None or not len(ids) or not len(ranker_ids):
            continue
        shared = _shared_ids(ranker_ids, ids)
        if other or shared < max(
            1, MIN_SHARED_IDS * min(len(ids), len(ranker_ids))
        ):
            refused[side] = (
                f"{shared:,} of the bundle's {len(ids):,} {side}s "
                f"({data.get(side, '?')!r}) are among the ranker's "
                f"{len(ranker_ids):,} ({column!r})"
            )
    if refused:
        effect = "every candidate as an item it never saw"
        if "item" not in refused:
            effect = "every user as one it never saw"
        elif "user" in refused:
            effect += ", for a user it never saw"
        ranker_name = getattr(ranker, "path", None) or "the ranker"
        retriever_name = getattr(retriever, "path", None) or "the retriever"
        source = data.get("source") or data.get("path")
        table = f" ({source})" if isinstance(source, str) and source else ""
        raise ValueError(
            f"Ranker {ranker_name} was trained on another table than "
            f"retrieval bundle {retriever_name}: "
            + "; ".join(refused.values())
            + f". It would score {effect}. Fix: train the ranker on the "
            f"same table's ids{table}."
        )
    with _accepted_lock, contextlib.suppress(TypeError):
        _accepted.setdefault(ranker, weakref.WeakSet()).add(retriever)


def _other_table(data, ranker):
    """Whether the retriever's config (`data`) and the ranker's name other
    sources and other id columns for every side: tables of small whole
    numbers as ids (0, 1, 2, ...) share most of them by chance (a
    synthetic table's `user_id` and MovieLens' `userId` passed the id
    check), so the names decide there. The same source with renamed
    columns, or another file of the same columns, is left to the ids."""
    theirs = (getattr(ranker, "config", None) or {}).get("data") or {}
    source = data.get("source") or data.get("path")
    if not source or source == (theirs.get("source") or theirs.get("path")):
        return False
    return all(
        data.get(side) and theirs.get(side) and data[side] != theirs[side]
        for side in ("user", "item")
    )


class TwoStageRecommender:
    """Retrieves candidates with a two-tower bundle, reranks with a ranker.

    Args:
        retriever: `recsys.Bundle`. The two-tower retrieval bundle.
        ranker: `recsys.bundles.tabular.TabularBundle` of a binary or
            regression task: its score orders the candidates.
        num_candidates: int. Candidates retrieved per user. Defaults to
            `100`.
        blend: float in [0, 1]. Weight of the ranker's standardized score
            against the retriever's; `1.0` orders by the ranker alone, `0.0`
            keeps the retrieval order. Defaults to `1.0`.

    Raises:
        ValueError: for a bad argument, a ranker that cannot order
            candidates (`check_ranker`), or one trained on another table's
            ids than the retriever's (`check_pairing`).

    Example:

    ```python
    recommender = TwoStageRecommender(
        load_bundle("artifacts/demo"), load_bundle("artifacts/liked")
    )
    ids, scores = recommender.recommend([1, 42], k=10)
    ```
    """

    def __init__(
        self,
        retriever,
        ranker,
        num_candidates=DEFAULT_NUM_CANDIDATES,
        blend=DEFAULT_BLEND,
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
        check_ranker(ranker)
        if (
            isinstance(blend, bool)
            or not isinstance(blend, int | float | np.number)
            or not 0.0 <= blend <= 1.0
        ):
            raise ValueError(
                f"`blend` must be a number in [0, 1]. Received: blend={blend!r}"
            )
        if not hasattr(retriever, "recommend"):
            raise ValueError(
                "The retriever must be a two-tower bundle. Received: "
                f"{type(retriever).__name__}"
            )
        check_pairing(retriever, ranker)
        self.retriever = retriever
        self.ranker = ranker
        self.num_candidates = int(num_candidates)
        self.blend = float(blend)

    def recommend(self, user_ids, k=10, exclude_seen=True, exact=False):
        """Top-k items for each user, reranked, best first.

        Args:
            user_ids: 1-D list or array of user ids.
            k: int. Items per user; above `num_candidates`, `k`
                candidates are retrieved. Defaults to `10`.
            exclude_seen: bool. Drop each user's training items. Defaults to
                `True`.
            exact: bool. Retrieve by exact search instead of the index.

        Returns:
            `(ids, scores)`: arrays `(len(user_ids), k)` of item ids and the
            float32 scores they are ordered by: the ranker's (`blend=1`) or
            the blend (padding: id -1 or "", score -inf).
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
        return self.rerank(user_ids, ids, found, k)

    def rerank(self, user_ids, candidate_ids, retrieval_scores, k):
        """Orders retrieved candidates by the ranker (or the blend); top k.

        The second stage alone, for candidates retrieved elsewhere (the
        retrieval service retrieves them itself: `recsys.serving.reranker`).

        Args:
            user_ids: 1-D, one per row of `candidate_ids`.
            candidate_ids: array `(len(user_ids), n)` of item ids.
            retrieval_scores: float array of the same shape: the
                retriever's scores; -inf marks padding (never scored).
            k: int. Items to keep per row.

        Returns:
            `(ids, scores)` as `recommend` returns them, `min(k, n)` columns.
        """
        candidate_ids = np.asarray(candidate_ids)
        retrieval_scores = np.asarray(retrieval_scores)
        valid = np.isfinite(retrieval_scores)
        scores = blended(
            retrieval_scores,
            self.rerank_scores(user_ids, candidate_ids, valid),
            valid,
            self.blend,
        )
        order = np.argsort(-scores, axis=1, kind="stable")[:, : int(k)]
        return (
            np.take_along_axis(candidate_ids, order, axis=1),
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


def _standardized(scores, valid):
    # Means over the valid entries only; a row with none stays finite (and
    # is masked by the caller) instead of warning about an empty mean.
    x = np.where(valid, scores, 0.0).astype(np.float64)
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mean = x.sum(axis=1, keepdims=True) / count
    centered = np.where(valid, x - mean, 0.0)
    std = np.sqrt((centered**2).sum(axis=1, keepdims=True) / count)
    return centered / np.where(std > 0, std, 1.0)


def blended(retrieval, ranker, valid, blend):
    """Final scores of candidates: see `TwoStageRecommender`'s `blend`.

    Args:
        retrieval, ranker: float arrays `(users, candidates)`.
        valid: bool array of the same shape (others score -inf).
        blend: float in [0, 1].

    Returns:
        float32 array of the same shape.
    """
    if blend == 1.0:
        return np.where(valid, ranker, -np.inf).astype(np.float32)
    mixed = blend * _standardized(ranker, valid) + (1 - blend) * (
        _standardized(retrieval, valid)
    )
    return np.where(valid, mixed, -np.inf).astype(np.float32)


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


def _check_whole_table(retriever, train_rows):
    """Warns where the training part of the table given is not the one the
    retriever learnt from: a table of the test rows alone splits again
    into other, smaller parts, silently (HR@10 0.031 on 4,307 rows against
    0.046 on 20,256 for MovieLens' test rows). The retriever's seen items
    hold one entry a (user, item) pair, counted against the table's pairs;
    a bundle written before held one a training row, counted against its
    rows."""
    indptr, seen = retriever.seen_indptr, retriever.seen_items
    known = int(indptr[-1])
    repeats = int(distinct_per_user(indptr, seen)[0][-1]) < known
    what = "rows" if repeats else "distinct (user, item) pairs"
    given = len(train_rows) if repeats else len(train_rows.drop_duplicates())
    if abs(given - known) > 0.1 * known:
        logger.warning(
            "The table's training part holds %s %s; the retriever was "
            "trained on %s. Pass the whole table both bundles were trained "
            "on (for the shipped configs, "
            "recsys.data.movielens.load_movielens()), not some of its rows.",
            f"{given:,}",
            what,
            f"{known:,}",
        )


def evaluate_two_stage(
    recommender: TwoStageRecommender,
    frame: pd.DataFrame,
    k: int = 10,
    exact: bool = True,
    split: str = "test",
    blends: Iterable[float] = (),
) -> dict:
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
        split: str. `"test"`, or `"validation"` (the training split's own
            last fifth, for bundles trained with `evaluate.split =
            "validation"`: how to choose `blend`). Defaults to `"test"`.
        blends: iterable of float. More `blend` values to score, each as
            `"two_stage@<blend>"`.

    Returns:
        dict with `"two_stage"` (at the recommender's `blend`) and
        `"retrieval"` (`hr@k`, `ndcg@k`), `"candidates"`
        (`hr@num_candidates`, the bound) and `"num_interactions"`.

    Raises:
        ValueError: for another `split`, a split that leaves a part
            empty (`recsys.data.split.split_table`), or the test split of
            a retriever trained with `data.split = "none"` (no test rows).
    """
    data = recommender.retriever.config["data"]
    user, item = data["user"], data["item"]
    if split not in ("test", "validation"):
        raise ValueError(
            f'`split` must be "test" or "validation". Received: {split!r}'
        )
    if split == "test" and data.get("split") == "none":
        raise ValueError(
            'The retriever was trained with data.split = "none": no row is '
            "held out, so there is no test split to score the two stages "
            "on. Fix: to measure them, train both bundles with data.split "
            "left out (its default) or another split."
        )
    frame = with_time_column(frame, data)
    frame = parse_times(frame, data["time"], data.get("time_format", "ISO8601"))
    train, test = split_table(
        frame, split_rule(data), validation=split == "validation"
    )
    _check_whole_table(
        recommender.retriever, positive_rows(train, data)[[user, item]]
    )
    users = test[user].drop_duplicates().to_numpy()
    user_rows = {u: i for i, u in enumerate(users.tolist())}
    n = recommender.num_candidates
    candidates, found = recommender.retriever.recommend(
        users, k=n, exclude_seen=True, exact=exact
    )
    valid = np.isfinite(found)
    ranker = recommender.rerank_scores(users, candidates, valid)

    def reorder(blend):
        scores = blended(found, ranker, valid, blend)
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(candidates, order, axis=1)

    test_users = test[user].to_numpy().tolist()
    test_items = test[item].to_numpy()
    results = {}
    named_lists = [
        ("two_stage", reorder(recommender.blend), k),
        ("retrieval", candidates, k),
        ("candidates", candidates, n),
    ] + [(f"two_stage@{float(b)}", reorder(float(b)), k) for b in blends]
    for name, lists, length in named_lists:
        ranks = _hits(lists, test_users, test_items, user_rows, length)
        results[name] = _list_metrics(ranks, length)
    results["num_interactions"] = int(len(test))
    results["num_candidates"] = n
    return results
