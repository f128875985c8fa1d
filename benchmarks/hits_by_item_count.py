"""MovieLens: where the held-out rows' hits are, by the movie's training rows.

Trains the default two-tower config (configs/movielens_two_tower.toml) in
memory for each `--logq-weights` value, scores every movie for every user
(`Bundle.score`, exact), and the recency-weighted EASE baseline
(`ease_recent`, at the settings `recsys train` chooses on MovieLens'
validation carve), then groups the evaluated split's rows by how many
training rows their movie has (0, 1-2, 3-5, 6-20, 21-50, over 50). Per
group: its share of the held-out rows, the filtered HR@100 of its rows
(the user's training movies removed from their ranking, PROTOCOL.md), and
its share of the slots of the users' filtered top 100s. Prints one JSON
object; every model's overall filtered HR@10 / HR@100 beside them.

It shows what a model could still gain (a group's rows it cannot reach)
and which way the logQ weight moves the top 100s.

Usage:

```
python benchmarks/hits_by_item_count.py [--logq-weights 1.0,1.5] [--seed 0]
    [--set KEY=VALUE ...]
```
"""

import argparse
import sys

import numpy as np
import pandas as pd
from _common import command_line
from _common import config_path
from _common import machine
from _common import print_json

import recsys
from recsys.baselines.retrieval import EASE
from recsys.baselines.retrieval import recency_weighted
from recsys.data.sources import load_interactions
from recsys.data.split import protocol_split
from recsys.kinds.two_tower import unwritten_bundle

DEFAULT_CONFIG = config_path("movielens_two_tower.toml")
# Training rows of a held-out row's movie: the groups' bounds, inclusive.
GROUPS = ((0, 0), (1, 2), (3, 5), (6, 20), (21, 50), (51, None))
DEPTH = 100


def hits_by_group(scores, candidates, users, train, test, config):
    """Per group of movies: held-out share, filtered HR@100, top-100 share.

    Args:
        scores: float array `(len(users), len(candidates))`.
        candidates: 1-D array of movie ids (the scores' columns).
        users: 1-D array of user ids (the scores' rows).
        train, test: the split's DataFrames.
        config: the run config (its data columns).

    Returns:
        dict with `hr@10_filtered`, `hr@100_filtered` and `groups`.
    """
    user, item = config["data"]["user"], config["data"]["item"]
    scores = np.array(scores, dtype=np.float32)
    column = pd.Index(candidates)
    row = pd.Index(users)
    scores[
        row.get_indexer(train[user]), column.get_indexer(train[item])
    ] = -np.inf
    counts = np.zeros(len(candidates))
    per_item = train[item].value_counts()
    counts[column.get_indexer(per_item.index)] = per_item.to_numpy()
    test_rows = row.get_indexer(test[user])
    test_columns = column.get_indexer(test[item])
    own = scores[test_rows, test_columns]
    # Ties are rare in float scores; counting strictly higher ones suffices
    # for a comparison of groups.
    rank = np.array(
        [(scores[r] > s).sum() for r, s in zip(test_rows, own, strict=True)]
    )
    tops = np.argsort(-scores[np.unique(test_rows)], axis=1)[:, :DEPTH]
    held_count, top_count = counts[test_columns], counts[tops].ravel()
    groups = {}
    for low, high in GROUPS:
        name = f"{low}-{high}" if high is not None else f"over {low - 1}"
        high = np.inf if high is None else high
        held = (held_count >= low) & (held_count <= high)
        groups[name] = {
            "held_out_share": float(held.mean()),
            "hr@100_filtered": float((rank[held] < DEPTH).mean())
            if held.any()
            else None,
            "top_100_share": float(
                ((top_count >= low) & (top_count <= high)).mean()
            ),
        }
    return {
        "hr@10_filtered": float((rank < 10).mean()),
        "hr@100_filtered": float((rank < DEPTH).mean()),
        "groups": groups,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logq-weights", default="1.0,1.5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--ease-l2", type=float, default=200.0)
    parser.add_argument("--recency-scale", type=float, default=20.0)
    parser.add_argument("--recency-boost", type=float, default=3.0)
    args = parser.parse_args()
    base = recsys.load_config(DEFAULT_CONFIG, args.set)
    data = base["data"]
    frame = load_interactions(data["source"])
    split = base["evaluate"]["split"]
    train, test = protocol_split(
        frame,
        user=data["user"],
        item=data["item"],
        time=data["time"],
        validation=split == "validation",
    )
    results = {}
    candidates = users = None
    for weight in args.logq_weights.split(","):
        config = recsys.load_config(
            DEFAULT_CONFIG,
            [
                *args.set,
                f"model.logq_weight={float(weight)}",
                f"train.seed={args.seed}",
                "evaluate.baselines=[]",
            ],
        )
        result = recsys.train(config, frame=frame, progress=False, write=False)
        bundle = unwritten_bundle(config, result.exported)
        candidates, users = bundle.item_ids, bundle.user_ids
        name = f"model, logq_weight {float(weight)}"
        results[name] = hits_by_group(
            bundle.score(users), candidates, users, train, test, config
        )
        print(name, results[name], file=sys.stderr, flush=True)
    ease = EASE(l2=args.ease_l2).fit(
        train[data["user"]], train[data["item"]], candidates
    )
    recent = recency_weighted(
        ease,
        train,
        user=data["user"],
        item=data["item"],
        time_column=data["time"],
        scale=args.recency_scale,
        boost=args.recency_boost,
    )
    results["ease_recent"] = hits_by_group(
        recent.score(users), candidates, users, train, test, base
    )
    print_json(
        {
            "command": command_line(),
            "config": DEFAULT_CONFIG,
            "overrides": args.set,
            "split": split,
            "seed": args.seed,
            "ease_recent": {
                "l2": args.ease_l2,
                "scale": args.recency_scale,
                "boost": args.recency_boost,
            },
            "machine": machine(),
            "scorers": results,
        }
    )


if __name__ == "__main__":
    main()
