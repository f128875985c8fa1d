"""Cold items: what items added after training (`recsys index`) score.

On MovieLens, split per PROTOCOL.md, the *cold* items are the test items
never seen in training (first rated after each of their users' cut).
Their rows are dropped from the table given to training, so the trained
catalog lacks them; then `Bundle.add_items` embeds them from their
features (movieId, genres, year), and the test interactions on them are
scored against the whole catalog (exact scores, HR@k as the package
reports it, filtered = each user's training items left out).

Two models are trained, one run each, on the same table:

- `content`: the default config, candidate features movieId + genres +
  year: a cold item's id falls to the out-of-vocabulary id, and its genres
  and year place it;
- `id_only`: the same config with `model.candidate_features =
  ["movieId"]`: every cold item gets the out-of-vocabulary vector.

Popularity (training counts: 0 for every cold item) is measured on the
same rows. Dropping the cold rows leaves each user's earliest four fifths
unchanged, so no test interaction reaches training.

`cold` ranks each cold test item among the whole catalog (what a user of
the bundle gets). `shelf` ranks it among the cold items only (a "new
arrivals" list): there the id-only model and popularity give every cold
item the same score, and the package's rank (items scored strictly
higher) would count every such tie as a hit, so the shelf's HR@k is the
expected hit rate under a random order of ties (chance: k / cold items).

Usage:

```
python benchmarks/cold_items.py [--epochs 3]
```
"""

import argparse
import sys
import tempfile
import time

import numpy as np
from _common import command_line
from _common import config_path
from _common import machine
from _common import print_json

CONFIG = "movielens_two_tower.toml"
VARIANTS = {
    "content": [],
    "id_only": ['model.candidate_features=["movieId"]'],
}
REPORTED = ("hr@10", "hr@100", "hr@10_filtered", "hr@100_filtered")


def _metrics(result, split):
    model, popular = result[split], result["baseline_popularity"]
    return (
        {name: round(model[name], 4) for name in REPORTED},
        {name: round(popular[name], 4) for name in REPORTED},
    )


def shelf_hit_rates(score_fn, users, rows, shelf, ks=(10, 100)):
    """HR@k among the `shelf` columns, ties in a random order (expected).

    Args:
        score_fn: `Bundle.score`.
        users: array. Each test row's user.
        rows: int array. Each test row's column among `shelf`.
        shelf: int array. Catalog rows of the shelf's items.

    Returns:
        dict `hr@k` -> float.
    """
    unique, which = np.unique(users, return_inverse=True)
    scores = score_fn(unique)[:, shelf][which]
    target = scores[np.arange(len(rows)), rows][:, None]
    higher = (scores > target).sum(axis=1)
    ties = (scores == target).sum(axis=1)  # itself included
    return {
        f"hr@{k}": round(
            float(np.mean(np.clip((k - higher) / ties, 0.0, 1.0))), 4
        )
        for k in ks
    }


def run_variant(name, overrides, frame, reduced, train, test, cold, epochs):
    """Trains on `reduced`, adds the cold items, scores cold and warm rows."""
    from recsys import train as train_bundle
    from recsys.config import load_config
    from recsys.evaluation.retrieval import evaluate_beside_popularity
    from recsys.evaluation.retrieval import popularity_scores

    config = load_config(
        config_path(CONFIG), [*overrides, f"train.epochs={epochs}"]
    )
    item, user = config["data"]["item"], config["data"]["user"]
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        bundle, _ = train_bundle(
            config, f"{directory}/bundle", frame=reduced, progress=False
        )
        seconds = time.perf_counter() - start
    if np.isin(bundle.item_ids, list(cold)).any():
        raise RuntimeError("A cold item reached the trained catalog.")
    columns = [item, "genres", "year", config["data"]["display"]]
    new = frame.drop_duplicates(item)
    new = new[new[item].isin(cold)][columns]
    start = time.perf_counter()
    added = bundle.add_items(new)
    add_seconds = time.perf_counter() - start
    popularity = popularity_scores(train[item].to_numpy(), added.item_ids)
    result = {"train_seconds": round(seconds, 1)}
    for rows, key in ((test[item].isin(cold), "cold"), (None, "warm")):
        rows = ~test[item].isin(cold) if rows is None else rows
        scored = evaluate_beside_popularity(
            added.score,
            popularity,
            candidates=added.item_ids,
            test_users=test.loc[rows, user].to_numpy(),
            test_items=test.loc[rows, item].to_numpy(),
            train_users=train[user].to_numpy(),
            train_items=train[item].to_numpy(),
            ks=(10, 100),
        )
        result[key], result[f"popularity_{key}"] = _metrics(scored, "test")
    cold_rows = test[item].isin(cold).to_numpy()
    shelf = np.sort(added.item_rows(sorted(cold)))
    columns = np.searchsorted(
        shelf, added.item_rows(test.loc[cold_rows, item].to_numpy())
    )
    users = test.loc[cold_rows, user].to_numpy()
    result["shelf"] = shelf_hit_rates(added.score, users, columns, shelf)
    result["popularity_shelf"] = shelf_hit_rates(
        lambda batch: np.tile(popularity, (len(batch), 1)),
        users,
        columns,
        shelf,
    )
    result["add_items"] = {
        "items": len(new),
        "seconds": round(add_seconds, 2),
        "catalog": len(added.item_ids),
    }
    print(f"{name}: trained and scored", flush=True, file=sys.stderr)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from recsys.config import load_config
    from recsys.data import load_movielens
    from recsys.kinds.two_tower import split_for_evaluation

    config = load_config(config_path(CONFIG))
    item = config["data"]["item"]
    frame = load_movielens()
    train, test = split_for_evaluation(frame, config)
    cold = set(test[item]) - set(train[item])
    reduced = frame[~frame[item].isin(cold)].reset_index(drop=True)
    runs = {
        name: run_variant(
            name, overrides, frame, reduced, train, test, cold, args.epochs
        )
        for name, overrides in VARIANTS.items()
    }
    content, ids = runs["content"]["cold"], runs["id_only"]["cold"]
    print_json(
        {
            "command": command_line(),
            "machine": machine(),
            "cold_items": len(cold),
            "cold_test_interactions": int(test[item].isin(cold).sum()),
            "test_interactions": len(test),
            "runs": runs,
            "cold_ratio_content_vs_id_only": {
                name: round(content[name] / ids[name], 2) if ids[name] else None
                for name in REPORTED
            },
            "shelf_ratio_content_vs_id_only": {
                name: round(value / runs["id_only"]["shelf"][name], 2)
                for name, value in runs["content"]["shelf"].items()
            },
        }
    )


if __name__ == "__main__":
    main()
