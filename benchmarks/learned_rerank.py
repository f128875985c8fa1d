"""A learned second stage over the two-tower's and EASE's candidates.

Issue #16's MovieLens goal, explored: a gradient-boosted classifier
(scikit-learn's `HistGradientBoostingClassifier`) reorders each user's
candidates, the union of the two-tower model's and the recency-weighted
EASE baseline's (`ease_recent`) top `--candidates` unseen items. It is fitted
on the validation carve only: the config trained with `evaluate.split =
"validation"` (its training rows the carve's first part) supplies the
candidates, their features, and their labels (whether the user holds the
item in the carve's held-out rows); the same features of the model trained
on the whole training split then rank the evaluated split's candidates.
Nothing of the evaluated split is seen before it is scored.

Features of a (user, candidate) pair, from the config's columns only:
the model's score, its z-score over the user's unseen items and its rank;
the same of `ease_recent` and of EASE; the item's training rows (log), its
age at the user's latest training row (the time since its first training
row); the user's training rows (log); the cosine of the item's vector with
the user's 5 latest items' (largest and mean); per candidate feature of the
config, the user's recency-weighted profile of its values against the
item's (categorical and multi-valued columns), or the item's value and its
difference from the user's 20 latest items' mean (numeric columns).

Prints one JSON object: per seed, filtered HR@10 / HR@100 of the model,
of `ease_recent` and of the reranked lists (the evaluated split, and the
reranker's own 2-fold estimate on the carve), and their means.

Usage:

```
python benchmarks/learned_rerank.py [--config C] [--seeds 0,1,2]
    [--candidates 150] [--windows]
```

`--windows` adds the item's training rows within 365 days before and
after, and 90 days around, the user's latest training row (time-local
popularity): on MovieLens' carve no better (RESULTS.md), so off.
"""

import argparse
import time

import numpy as np
import pandas as pd
import scipy.sparse
from _common import command_line
from _common import config_path
from _common import machine
from _common import print_json
from sklearn.ensemble import HistGradientBoostingClassifier

import recsys
from recsys.baselines.retrieval import fit_retrieval_baselines
from recsys.data.split import split_rule
from recsys.evaluation.retrieval import evaluate_retrieval
from recsys.kinds.two_tower import unwritten_bundle

DEFAULT_CONFIG = config_path("movielens_two_tower.toml")
RANKER = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 100,
}
RECENT = 20.0  # rows over which a history row's profile weight falls by e
# `--windows`: the item's training rows within these spans of days around
# the user's latest training row (time-local popularity; off by default).
WINDOWS = ((-365, 0), (0, 365), (-90, 90))


def z_scores(scores):
    """Each row standardized over its finite entries."""
    finite = np.where(np.isfinite(scores), scores, np.nan)
    mean = np.nanmean(finite, axis=1, keepdims=True)
    return (scores - mean) / (np.nanstd(finite, axis=1, keepdims=True) + 1e-9)


def ranks(scores):
    """0 for each row's largest score."""
    return np.argsort(np.argsort(-scores, axis=1), axis=1)


def value_matrix(values, separator):
    """Items x distinct values, one per (item, value), rows normalized."""
    lists = (
        values.astype(str).str.split(separator)
        if separator
        else values.astype(str).map(lambda value: [value])
    )
    exploded = lists.explode()
    codes, _ = pd.factorize(exploded)
    rows = np.repeat(np.arange(len(values)), lists.str.len())
    keep = (codes >= 0) & (exploded != "").to_numpy()
    matrix = scipy.sparse.csr_matrix(
        (np.ones(keep.sum()), (rows[keep], codes[keep])),
        shape=(len(values), max(codes.max() + 1, 1)),
    )
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    return scipy.sparse.diags(1 / np.maximum(norms, 1e-9)) @ matrix


class History:
    """The training rows as positions, each user's latest first.

    Attributes:
        user, item: int arrays. Each row's user and item position.
        time: float array. Its time in seconds.
        back: int array. Rows of the same user after it (0: the latest).
    """

    def __init__(self, train, data, users, catalog):
        when = train[data["time"]]
        seconds = (
            when.astype("int64").to_numpy() / 1e9
            if when.dtype.kind == "M"
            else when.to_numpy(float)
        )
        user = users.get_indexer(train[data["user"]])
        order = np.lexsort((seconds, user))
        self.user, self.time = user[order], seconds[order]
        self.item = catalog.get_indexer(train[data["item"]])[order]
        self.back = (
            pd.Series(self.user).groupby(self.user).cumcount(ascending=False)
        ).to_numpy()


class Stage:
    """One trained model's candidates and their features.

    Args:
        config: the run config (`evaluate.split` says which split).
        candidates: int. Each scorer's top unseen items per user.
    """

    def __init__(self, config, candidates, windows=False):
        data = config["data"]
        user, item = data["user"], data["item"]
        result = recsys.train(config, write=False, progress=False)
        bundle = unwritten_bundle(config, result.exported)
        train, test = result.prepared.train, result.prepared.test
        catalog, users = pd.Index(bundle.item_ids), pd.Index(bundle.user_ids)
        self.num_items, self.num_users = len(catalog), len(users)
        scorers, self.baselines = fit_retrieval_baselines(
            ["ease", "ease_recent"],
            train,
            user=user,
            item=item,
            candidates=bundle.item_ids,
            carve=split_rule(data).carve,
            time_column=data["time"],
        )
        seen = np.zeros((len(users), len(catalog)), bool)
        seen[
            users.get_indexer(train[user]), catalog.get_indexer(train[item])
        ] = True
        self.scores = {"model": bundle.score(bundle.user_ids)}
        for name, score in scorers.items():
            self.scores[name] = score(bundle.user_ids)
        for matrix in self.scores.values():
            matrix[seen] = -np.inf
        self.ranks = {name: ranks(m) for name, m in self.scores.items()}
        # Never a training pair: the filtered metrics rank unseen items.
        chosen = ~seen & (
            (self.ranks["model"] < candidates)
            | (self.ranks["ease_recent"] < candidates)
        )
        self.u, self.i = np.nonzero(chosen)
        history = History(train, data, users, catalog)
        items = result.prepared.items.set_index(item).reindex(catalog)
        self.features = np.column_stack(
            self._score_columns()
            + self._count_columns(history, windows)
            + self._cosine_columns(history, bundle.item_embeddings)
            + self._attribute_columns(history, items, config)
        ).astype(np.float32)
        held_rows = users.get_indexer(test[user])
        held = pd.MultiIndex.from_arrays(
            [held_rows, catalog.get_indexer(test[item])]
        )
        self.labels = pd.MultiIndex.from_arrays([self.u, self.i]).isin(held)
        self.users, self.item_ids = users, bundle.item_ids
        self.train_pairs = (train[user].to_numpy(), train[item].to_numpy())
        # A held-out user without training rows has no row here: a miss.
        self.held_pairs = (
            test[user].to_numpy()[held_rows >= 0],
            test[item].to_numpy()[held_rows >= 0],
        )
        self.held_count = len(test)

    def _score_columns(self):
        """Each scorer's score, z-score and rank (log) of the pairs."""
        u, i = self.u, self.i
        columns = []
        for name, matrix in self.scores.items():
            columns += [
                matrix[u, i],
                z_scores(matrix)[u, i],
                np.log1p(self.ranks[name][u, i]),
            ]
        return columns

    def _count_columns(self, history, windows):
        """The item's training rows and age, the user's training rows; with
        `windows`, the item's rows in each of `WINDOWS` (log)."""
        u, i = self.u, self.i
        counts = np.bincount(history.item, minlength=self.num_items)
        first = np.full(self.num_items, np.nan)
        seconds = pd.Series(history.time).groupby(history.item).min()
        first[seconds.index] = seconds.to_numpy()
        latest = np.full(self.num_users, np.nan)
        seconds = pd.Series(history.time).groupby(history.user).max()
        latest[seconds.index] = seconds.to_numpy()
        user_counts = np.bincount(history.user, minlength=self.num_users)
        columns = [
            np.log1p(counts[i]),
            (latest[u] - first[i]) / 86400.0,
            np.log1p(user_counts[u]),
        ]
        if windows:
            # Each item's rows in time order, found by (item, time) keys.
            span = history.time.max() - history.time.min() + 1
            keys = np.sort(
                history.item * span + (history.time - history.time.min())
            )
            at = i * span + (latest[u] - history.time.min())
            own = (i * span, (i + 1) * span - 1)  # this item's keys only
            for low, high in WINDOWS:
                lower = np.maximum(at + low * 86400.0, own[0])
                upper = np.minimum(at + high * 86400.0, own[1])
                start = np.searchsorted(keys, lower)
                end = np.searchsorted(keys, upper, side="right")
                columns.append(np.log1p(np.maximum(end - start, 0)))
        return columns

    def _cosine_columns(self, history, embeddings):
        """The item's largest and mean cosine with the 5 latest items."""
        u, i = self.u, self.i
        vectors = embeddings / (
            np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-9
        )
        best, mean = np.full(len(u), -1.0), np.zeros(len(u))
        for step in range(5):
            latest = np.full(self.num_users, -1)
            at = history.back == step
            latest[history.user[at]] = history.item[at]
            has = latest[u] >= 0
            cosine = (vectors[i] * vectors[np.maximum(latest[u], 0)]).sum(1)
            best = np.maximum(best, np.where(has, cosine, -1.0))
            mean += np.where(has, cosine, 0.0) / 5
        return [best, mean]

    def _attribute_columns(self, history, items, config):
        """Per candidate feature: the item's values against the user's."""
        u, i = self.u, self.i
        columns = []
        weights = np.exp(-history.back / RECENT)
        recent_rows = scipy.sparse.csr_matrix(
            (weights, (history.user, history.item)),
            shape=(self.num_users, self.num_items),
        )
        for name in config["model"]["candidate_features"]:
            kind = config["features"].get(name, {}).get("kind")
            if name == config["data"]["item"] or name not in items:
                continue
            if kind in ("categorical", "multi_categorical"):
                separator = config["features"][name].get("separator", "")
                values = value_matrix(items[name], separator)
                profile = (recent_rows @ values).toarray()
                profile /= np.linalg.norm(profile, axis=1, keepdims=True) + 1e-9
                columns.append(
                    np.asarray(values[i].multiply(profile[u]).sum(1)).ravel()
                )
            elif kind == "numeric":
                value = pd.to_numeric(items[name], errors="coerce").to_numpy()
                recent = history.back < RECENT
                user_mean = np.full(self.num_users, np.nan)
                means = (
                    pd.Series(value[history.item[recent]])
                    .groupby(history.user[recent])
                    .mean()
                )
                user_mean[means.index] = means.to_numpy()
                columns += [value[i], value[i] - user_mean[u]]
        return columns

    def hit_rates(self, candidate_scores, ks=(10, 100)):
        """Filtered HR@k of scores of the candidates (the rest after them)."""
        full = np.full((self.num_users, self.num_items), -np.inf, np.float32)
        full[self.u, self.i] = candidate_scores
        return self.hit_rates_of(full, ks)

    def hit_rates_of(self, full, ks=(10, 100)):
        """PROTOCOL.md's filtered HR@k (`evaluate_retrieval`) of the score
        matrix `full` (users x catalog); -inf ranks after every score."""
        metrics = evaluate_retrieval(
            lambda users: full[self.users.get_indexer(users)],
            candidates=self.item_ids,
            test_users=self.held_pairs[0],
            test_items=self.held_pairs[1],
            train_users=self.train_pairs[0],
            train_items=self.train_pairs[1],
            ks=ks,
        )
        share = len(self.held_pairs[0]) / self.held_count
        return {
            f"hr@{k}_filtered": round(metrics[f"hr@{k}_filtered"] * share, 4)
            for k in ks
        }


def run(config_file, seed, candidates, windows=False):
    """Both stages of one seed, the reranker fitted on the first."""
    started = time.perf_counter()
    stages = {}
    for split in ("validation", "test"):
        config = recsys.load_config(config_file)
        config["evaluate"]["split"] = split
        config["evaluate"]["baselines"] = []
        config["train"]["seed"] = seed
        stages[split] = Stage(config, candidates, windows)
    carve, held = stages["validation"], stages["test"]
    # The reranker's own estimate: two folds of the carve's users.
    fold = np.random.default_rng(seed).integers(0, 2, carve.num_users)[carve.u]
    out_of_fold = np.zeros(len(carve.labels))
    for part in (0, 1):
        fit = fold != part
        ranker = HistGradientBoostingClassifier(random_state=seed, **RANKER)
        ranker.fit(carve.features[fit], carve.labels[fit])
        out_of_fold[~fit] = ranker.decision_function(carve.features[~fit])
    ranker = HistGradientBoostingClassifier(random_state=seed, **RANKER)
    ranker.fit(carve.features, carve.labels)
    return {
        "seed": seed,
        "candidates_per_user": round(len(held.u) / held.num_users, 1),
        "model": held.hit_rates_of(held.scores["model"]),
        "ease_recent": held.hit_rates_of(held.scores["ease_recent"]),
        "reranked": held.hit_rates(ranker.decision_function(held.features)),
        "carve": {
            "model": carve.hit_rates_of(carve.scores["model"]),
            "reranked_2_fold": carve.hit_rates(out_of_fold),
        },
        "ease_settings": {
            name: {k: v for k, v in detail.items() if k != "tried"}
            for name, detail in held.baselines.items()
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--candidates", type=int, default=150)
    parser.add_argument(
        "--windows",
        action="store_true",
        help="add the items' training rows in WINDOWS around the user's latest",
    )
    args = parser.parse_args()
    runs = [
        run(args.config, int(seed), args.candidates, args.windows)
        for seed in args.seeds.split(",")
    ]
    means = {
        name: {
            key: round(float(np.mean([r[name][key] for r in runs])), 4)
            for key in runs[0][name]
        }
        for name in ("model", "ease_recent", "reranked")
    }
    print_json(
        {
            "command": command_line(),
            "machine": machine(),
            "config": args.config,
            "ranker": RANKER,
            "runs": runs,
            "mean": means,
        }
    )


if __name__ == "__main__":
    main()
