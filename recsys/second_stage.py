"""The learned second stage (`model.second_stage`): known users' lists,
reordered by a gradient-boosted classifier.

The two-tower model and EASE see different things: the model places items
by their features and the user's latest items, EASE by which items are held
together. A classifier (scikit-learn's `HistGradientBoostingClassifier`)
reads both, and a few facts neither scores, for each (user, candidate) pair:
each scorer's score, z-score over the user's unseen items and rank (the
model, EASE and `ease_recent`); the item's share of the training rows and
its age at the user's latest row; the user's training rows; the item's
cosine with the user's `LATEST` latest items (largest, mean); how much the
item followed those items in other users' rows (`_follows`); and per
candidate feature of the config, the user's recency-weighted profile of its
values against the item's (categorical and multi-valued columns) or the
item's value and its difference from the user's recent mean (numeric
columns). The candidates are the union of the model's and `ease_recent`'s
top `CANDIDATES` unseen items.

It is fitted without the evaluated rows: the same config is trained again
on the validation carve's first part of the training rows (the run's own
`data.split` rule), and the classifier learns which candidates the carve's
held-out rows hold. The run's own model then supplies the features of every
known user's candidates, and the bundle keeps each user's best
`LIST_LENGTH` (`recsys.bundles.ranked_lists.RankedLists`).

On MovieLens (PROTOCOL.md, 3 seeds) it lifts filtered HR@10 / HR@100 from
0.0456 / 0.2497 to 0.0581 / 0.2747 (`benchmarks/learned_rerank.py`).
"""

import logging
import warnings

import numpy as np
import pandas as pd
import scipy.sparse

from recsys.baselines.retrieval import EASE_MAX_ITEMS
from recsys.baselines.retrieval import fit_retrieval_baselines
from recsys.bundles.ranked_lists import RankedLists
from recsys.data.split import split_rule
from recsys.evaluation.retrieval import REPEATS_NOTED
from recsys.evaluation.retrieval import choosing_cutoff
from recsys.logs import progress_bar

logger = logging.getLogger(__name__)

CANDIDATES = 150  # each scorer's top unseen items a user; their union
LIST_LENGTH = 100  # items a user's stored list keeps
RANKER = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 100,
}
RECENT = 20.0  # rows over which a history row's profile weight falls by e
LATEST = 5  # the user's latest items the cosine columns compare with
CHUNK = 1024  # users whose candidates are scored together
# Users whose carve candidates train the classifier (a sample above it):
# MovieLens' 671 give 139k pairs; 20,000 users, about 4M.
MAX_FIT_USERS = 20_000
SCORERS = ("model", "ease", "ease_recent")
# The features' column of the model's (log) rank: each scorer's columns
# are its score, z-score and log rank (`Candidates.chunks`).
MODEL_RANK = 3 * SCORERS.index("model") + 2
# A row's item follows the same user's rows up to this many before it.
FOLLOW_WINDOW = 20


def z_scores(scores):
    """Each row standardized over its finite entries."""
    finite = np.where(np.isfinite(scores), scores, np.nan)
    with warnings.catch_warnings():  # a user who has seen every item
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(finite, axis=1, keepdims=True)
        spread = np.nanstd(finite, axis=1, keepdims=True) + 1e-9
    return (scores - mean) / spread


def ranks(scores):
    """0 for each row's largest score."""
    return np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1)


def value_matrix(values, separator):
    """Items x distinct values, one per (item, value), rows L2-normalized."""
    text = values.astype(str)
    lists = text.str.split(separator) if separator else text.map(lambda v: [v])
    exploded = lists.explode()
    codes, _ = pd.factorize(exploded)
    rows = np.repeat(np.arange(len(values)), lists.str.len())
    keep = (
        (codes >= 0)
        & (exploded != "").to_numpy()
        & values.notna().to_numpy()[rows]
    )
    matrix = scipy.sparse.csr_matrix(
        (np.ones(keep.sum()), (rows[keep], codes[keep])),
        shape=(len(values), max(int(codes.max(initial=0)) + 1, 1)),
    )
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    return scipy.sparse.diags(1 / np.maximum(norms, 1e-9)) @ matrix


class History:
    """A split's training rows as catalog and user rows, latest first.

    Args:
        train: DataFrame. The training rows.
        data: dict. The config's `[data]` (id and time columns).
        user_ids, item_ids: the bundle's users and catalog.

    Attributes:
        user, item: int arrays. Each row's user and catalog row.
        time: float array. Its time in seconds.
        back: int array. Rows of the same user after it (0: the latest).
    """

    def __init__(self, train, data, user_ids, item_ids):
        when = train[data["time"]]
        seconds = (
            when.astype("int64").to_numpy() / 1e9
            if when.dtype.kind == "M"
            else pd.to_numeric(when, errors="coerce").to_numpy(float)
        )
        user = pd.Index(user_ids).get_indexer(train[data["user"]])
        item = pd.Index(item_ids).get_indexer(train[data["item"]])
        order = np.lexsort((seconds, user))
        self.user, self.item, self.time = (
            user[order],
            item[order],
            seconds[order],
        )
        self.back = (
            pd.Series(self.user).groupby(self.user).cumcount(ascending=False)
        ).to_numpy()
        self.num_users, self.num_items = len(user_ids), len(item_ids)

    def per_user(self, values, how):
        """`how` ("min", "max", "mean") of `values` per user, NaN for none."""
        out = np.full(self.num_users, np.nan)
        reduced = pd.Series(values).groupby(self.user).agg(how)
        out[reduced.index] = reduced.to_numpy()
        return out

    def seen(self):
        """Users x catalog CSR of 1 where the user holds the item."""
        return scipy.sparse.csr_matrix(
            (np.ones(len(self.user), bool), (self.user, self.item)),
            shape=(self.num_users, self.num_items),
        )


class Candidates:
    """One trained model's candidates and their features, by user chunks.

    Args:
        bundle: the run's in-memory `Bundle` (the model's vectors, catalog
            and users).
        train: DataFrame. The rows the model was trained on.
        items: DataFrame. The catalog's rows (one per item, any order).
        config: dict. The run config.
    """

    def __init__(self, bundle, train, items, config):
        data = config["data"]
        self.config, self.bundle = config, bundle
        self.history = history = History(
            train, data, bundle.user_ids, bundle.item_ids
        )
        self.scorers, _ = fit_retrieval_baselines(
            ["ease", "ease_recent"],
            train,
            user=data["user"],
            item=data["item"],
            candidates=bundle.item_ids,
            carve=split_rule(data).carve,
            ease_max_items=config["evaluate"].get(
                "ease_max_items", EASE_MAX_ITEMS
            ),
            time_column=data["time"],
        )
        self.seen = history.seen()
        num_items = history.num_items
        # A share, not a count: the carve's model, whose pairs the
        # classifier learns from, saw fewer rows than the run's.
        self.item_share = np.log(
            (np.bincount(history.item, minlength=num_items) + 1)
            / (len(history.item) + num_items)
        )
        first = np.full(num_items, np.nan)
        earliest = pd.Series(history.time).groupby(history.item).min()
        first[earliest.index] = earliest.to_numpy()
        self.first = first
        self.latest = history.per_user(history.time, "max")
        self.user_rows = np.log1p(
            np.bincount(history.user, minlength=history.num_users)
        )
        self.latest_items = np.full((history.num_users, LATEST), -1)
        for step in range(LATEST):
            at = history.back == step
            self.latest_items[history.user[at], step] = history.item[at]
        self.follows = _follows(history)
        vectors = bundle.item_embeddings
        self.unit = vectors / (
            np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
        )
        self.recent = scipy.sparse.csr_matrix(
            (np.exp(-history.back / RECENT), (history.user, history.item)),
            shape=(history.num_users, num_items),
        )
        self.attributes = self._attributes(items.set_index(data["item"]))

    def _attributes(self, items):
        """Per candidate feature: `("values", items x values)` or
        `("numeric", item values, each user's recent mean)`."""
        config, history = self.config, self.history
        items = items.reindex(self.bundle.item_ids)
        out = []
        for name in config["model"]["candidate_features"]:
            spec = config["features"].get(name, {})
            if name == config["data"]["item"] or name not in items:
                continue
            if spec.get("kind") in ("categorical", "multi_categorical"):
                separator = spec.get("separator", "")
                out.append(("values", value_matrix(items[name], separator)))
            elif spec.get("kind") == "numeric":
                value = pd.to_numeric(items[name], errors="coerce").to_numpy(
                    float
                )
                recent = history.back < RECENT
                mean = np.full(history.num_users, np.nan)
                means = (
                    pd.Series(value[history.item[recent]])
                    .groupby(history.user[recent])
                    .mean()
                )
                mean[means.index] = means.to_numpy()
                out.append(("numeric", value, mean))
        return out

    def chunks(self, users=None):
        """Yields `(users, u, i, features)` for each chunk of users: its
        user rows, its pairs' user and catalog rows, their float32
        features.

        Args:
            users: int array of user rows, or None for every user.
        """
        if users is None:
            users = np.arange(self.history.num_users)
        for start in range(0, len(users), CHUNK):
            chunk = users[start : start + CHUNK]
            yield (chunk, *self._chunk(chunk))

    def _chunk(self, users):
        bundle = self.bundle
        ids = bundle.user_ids[users]
        seen = self.seen[users].toarray()
        scores = {
            "model": bundle.user_embeddings[users] @ bundle.item_embeddings.T
        }
        for name in SCORERS[1:]:
            scores[name] = np.asarray(self.scorers[name](ids), np.float32)
        columns = []
        ranked = {}
        for name in SCORERS:
            scores[name][seen] = -np.inf
            ranked[name] = ranks(scores[name])
        # Never a training pair: the lists rank unseen items.
        chosen = ~seen & (
            (ranked["model"] < CANDIDATES)
            | (ranked["ease_recent"] < CANDIDATES)
        )
        local, i = np.nonzero(chosen)
        u = users[local]
        for name in SCORERS:
            columns += [
                scores[name][local, i],
                z_scores(scores[name])[local, i],
                np.log1p(ranked[name][local, i]),
            ]
        columns += [
            self.item_share[i],
            (self.latest[u] - self.first[i]) / 86400.0,
            self.user_rows[u],
        ]
        columns += self._cosines(u, i)
        columns += self._following(u, i)
        columns += self._profiles(users, local, u, i)
        features = np.column_stack(columns).astype(np.float32)
        return u, i, features

    def _following(self, u, i):
        """How much the item followed the user's latest items (`_follows`):
        after the latest one, the most after any, and recency-weighted."""
        shares = []
        for step in range(LATEST):
            latest = self.latest_items[u, step]
            share = self.follows[np.maximum(latest, 0), i]
            shares.append(np.asarray(share).ravel() * (latest >= 0))
        weights = np.exp(-np.arange(LATEST) / 2.0)
        return [shares[0], np.max(shares, axis=0), weights @ np.array(shares)]

    def _cosines(self, u, i):
        """The item's largest and mean cosine with the latest items."""
        best, mean = np.full(len(u), -1.0), np.zeros(len(u))
        for step in range(LATEST):
            latest = self.latest_items[u, step]
            has = latest >= 0
            cosine = (self.unit[i] * self.unit[np.maximum(latest, 0)]).sum(1)
            best = np.maximum(best, np.where(has, cosine, -1.0))
            mean += np.where(has, cosine, 0.0) / LATEST
        return [best, mean]

    def _profiles(self, users, local, u, i):
        """Per candidate feature: the item's values against the user's."""
        columns = []
        for attribute in self.attributes:
            if attribute[0] == "values":
                values = attribute[1]
                profile = np.asarray((self.recent[users] @ values).todense())
                profile /= np.linalg.norm(profile, axis=1, keepdims=True) + 1e-9
                columns.append(
                    np.asarray(
                        values[i].multiply(profile[local]).sum(1)
                    ).ravel()
                )
            else:
                _, value, mean = attribute
                columns += [value[i], value[i] - mean[u]]
        return columns


def _follows(history):
    """Items x items: how much each item followed each other, as a share.

    A row's item follows the same user's `FOLLOW_WINDOW` rows before it,
    weighing 1 / distance; each item's row of the matrix is divided by its
    total (plus 1). EASE scores which items are held together; this, which
    come after which: on MovieLens' validation carve, filtered HR@10 0.0568
    without it, 0.0603 for the next row alone, 0.0643 for the next 20
    (seeds 0-1).
    """
    before, after, weight = [], [], []
    for gap in range(1, FOLLOW_WINDOW + 1):
        same = history.user[gap:] == history.user[:-gap]
        before.append(history.item[:-gap][same])
        after.append(history.item[gap:][same])
        weight.append(np.full(int(same.sum()), 1.0 / gap))
    counts = scipy.sparse.csr_matrix(
        (
            np.concatenate(weight),
            (np.concatenate(before), np.concatenate(after)),
        ),
        shape=(history.num_items, history.num_items),
    )
    totals = np.asarray(counts.sum(axis=1)).ravel()
    return (scipy.sparse.diags(1 / (totals + 1)) @ counts).tocsr()


def skip_reason(config, num_items, carve_rows, repeats):
    """Why the second stage cannot run on this run, or None.

    Args:
        config: dict. The run config.
        num_items: int. The catalog's size.
        carve_rows: int. Rows of the training rows' validation carve.
        repeats: float. The carve's share of held-out rows that repeat a
            training pair (`recsys.evaluation.retrieval.repeat_share`).
    """
    most = config["evaluate"].get("ease_max_items", EASE_MAX_ITEMS)
    if num_items > most:
        return (
            f"the catalog's {num_items:,} items exceed evaluate.ease_max_items "
            f"({most:,}): EASE, whose scores the second stage reads, would "
            "not fit."
        )
    if not carve_rows:
        return "the training rows' validation carve holds no rows."
    if repeats >= REPEATS_NOTED:
        # plyr's baseball (53% repeats): filtered HR@10 0.74 -> 0.27.
        return (
            f"{repeats:.0%} of the validation carve's held-out rows repeat "
            "a training pair of their user (users come back to their "
            "items), and the second stage's lists hold items a user has not "
            "had: their own items would come after the lists. Fix: remove "
            "model.second_stage."
        )
    return None


def fit_second_stage(
    carved, carve_bundle, prepared, bundle, *, progress=False, step=None
):
    """Fits the classifier on the carve; returns the run's lists.

    Args:
        carved: `PreparedData` of the carve: its `train` the rows the
            carve's model was trained on, its `test` the held-out rows.
        carve_bundle: the in-memory `Bundle` of the carve's model.
        prepared: the run's `PreparedData`.
        bundle: the run's in-memory `Bundle` (its model's vectors).
        progress: bool. A bar of the users ranked.
        step: callable or None, called without arguments between its
            parts and chunks of users: `recsys tune` stops a trial past
            its time budget there (it raises). Defaults to None.

    Returns:
        `(lists, details)`: a `RankedLists` and a dict for metrics.json
        (the pairs fitted on, `carve_hits`); or None and `{"skipped":
        why}` when no candidate of the carve is held out, or when the
        classifier's order does not beat the model's on the carve
        (`carve_hits`, 2 folds of its users).
    """
    config = prepared.config
    seed = config["train"]["seed"]
    step = step or (lambda: None)
    features, labels, owners = _carve_examples(carve_bundle, carved, config)
    step()
    if not labels.any():
        reason = _no_positives(carve_bundle, carved)
        logger.warning("model.second_stage is skipped: %s", reason)
        return None, {"skipped": reason}
    k = choosing_cutoff(config["evaluate"]["ks"], len(bundle.item_ids))
    hits = carve_hits(features, labels, owners, k, seed)
    step()
    if hits is None or hits["reranked"] <= hits["model"]:
        reason = _no_better(hits, k)
        logger.warning("model.second_stage is skipped: %s", reason)
        return None, {"skipped": reason, "carve_hits": hits}
    ranker = _fit_ranker(features, labels, seed)
    step()
    candidates = Candidates(bundle, prepared.train, prepared.items, config)
    lists = _ranked_lists(ranker, candidates, bundle, progress, step)
    return lists, {
        "fit_pairs": int(len(labels)),
        "fit_positives": int(labels.sum()),
        "candidates": CANDIDATES,
        "list_length": LIST_LENGTH,
        "carve_hits": hits,
    }


def carve_hits(features, labels, owners, k, seed):
    """Held-out pairs in the users' top k candidates on the carve: in the
    model's order, and reordered by a classifier fitted on the other half
    of the users (2 folds), so that neither half is scored by a classifier
    that learnt from it.

    Args:
        features: float32 array. The carve's pairs' features (the model's
            log rank in column `MODEL_RANK`).
        labels: bool array. Whether each pair is held out.
        owners: int array. Each pair's user row.
        k: int. The cut-off.
        seed: int. Draws the folds and seeds the classifiers.

    Returns:
        `{"k", "model", "reranked"}` (pair counts), or None when a half
        holds no held-out pair (too few to tell).
    """
    fold = np.random.default_rng(seed).integers(0, 2, owners.max() + 1)
    fold = fold[owners]
    reranked = np.zeros(len(labels))
    for part in (0, 1):
        fit = fold != part
        if not labels[fit].any() or labels[fit].all() or fit.all():
            return None
        ranker = _fit_ranker(features[fit], labels[fit], seed)
        reranked[~fit] = ranker.decision_function(features[~fit])
    return {
        "k": int(k),
        "model": top_hits(owners, features[:, MODEL_RANK], labels, k),
        "reranked": top_hits(owners, -reranked, labels, k),
    }


def top_hits(owners, key, labels, k):
    """Labelled pairs among each owner's `k` smallest `key`s."""
    order = np.lexsort((key, owners))
    place = pd.Series(owners[order]).groupby(owners[order]).cumcount()
    return int(labels[order][place.to_numpy() < k].sum())


def _no_better(hits, k):
    if hits is None:
        return (
            "too few of the validation carve's held-out rows are among its "
            "users' candidates to tell whether reordering them helps (one "
            "half of its users holds none). Fix: remove model.second_stage."
        )
    return (
        f"on the training rows' validation carve, the reordered top {k} "
        f"held {hits['reranked']:,} of its held-out pairs against the "
        f"model's {hits['model']:,} (each half of its users reordered by a "
        "classifier fitted on the other half): no better. Fix: remove "
        "model.second_stage."
    )


def _no_positives(bundle, carved):
    """Why no carve candidate is held out: the reason `fit_second_stage`
    gives, naming the split when the held-out users are new."""
    user = carved.config["data"]["user"]
    known = bundle.user_rows(carved.test[user].to_numpy()) >= 0
    if not known.any():
        return (
            f"none of the {len(known):,} held-out rows of the training rows' "
            "validation carve is of a user in its training part, so no "
            f"candidate can be learnt from (data.split = "
            f"{carved.config['data']['split']!r} holds out whole users). "
            'Fix: data.split = "user_time" (each user\'s latest rows), or '
            "remove model.second_stage."
        )
    return (
        f"none of the {int(known.sum()):,} held-out rows of known users in "
        "the training rows' validation carve is among their candidates "
        f"(each scorer's top {CANDIDATES} unseen items): nothing to learn "
        "from. Fix: remove model.second_stage."
    )


def _carve_examples(bundle, carved, config):
    """The carve's candidates' features, whether each is held out, and
    each one's user row."""
    data = config["data"]
    candidates = Candidates(bundle, carved.train, carved.items, config)
    users = np.arange(len(bundle.user_ids))
    if len(users) > MAX_FIT_USERS:
        rng = np.random.default_rng(config["train"]["seed"])
        users = np.sort(rng.choice(users, MAX_FIT_USERS, replace=False))
    held = pd.MultiIndex.from_arrays(
        [
            bundle.user_rows(carved.test[data["user"]].to_numpy()),
            bundle.item_rows(carved.test[data["item"]].to_numpy()),
        ]
    )
    features, labels, owners = [], [], []
    for _, u, i, chunk in candidates.chunks(users):
        features.append(chunk)
        labels.append(pd.MultiIndex.from_arrays([u, i]).isin(held))
        owners.append(u)
    return (
        np.concatenate(features),
        np.concatenate(labels),
        np.concatenate(owners),
    )


def _fit_ranker(features, labels, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier

    ranker = HistGradientBoostingClassifier(random_state=seed, **RANKER)
    return ranker.fit(features, labels)


def _ranked_lists(ranker, candidates, bundle, progress, step):
    """Each user's best `LIST_LENGTH` candidates by the ranker's score
    (`step()` after each chunk of users)."""
    num_users = len(bundle.user_ids)
    lengths = np.zeros(num_users, np.int64)
    rows, scores = [], []
    bar = progress_bar(
        total=num_users, desc="second stage", unit="users", disable=not progress
    )
    for users, u, i, features in candidates.chunks():
        score = ranker.decision_function(features).astype(np.float32)
        # Per user, best first (ties by catalog row); then the first few.
        order = np.lexsort((i, -score, u))
        u, i, score = u[order], i[order], score[order]
        place = pd.Series(u).groupby(u).cumcount().to_numpy()
        keep = place < LIST_LENGTH
        lengths += np.bincount(u[keep], minlength=num_users)
        rows.append(i[keep].astype(np.int32))
        scores.append(score[keep])
        bar.update(len(users))
        step()
    bar.close()
    indptr = np.zeros(num_users + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return RankedLists(
        indptr,
        np.concatenate(rows) if rows else np.zeros(0, np.int32),
        np.concatenate(scores) if scores else np.zeros(0, np.float32),
        bundle.user_embeddings,
        bundle.item_embeddings,
    )
