"""MovieLens: filtered HR@100 against parameters, full table vs hashing.

Trains the default two-tower config (configs/movielens_two_tower.toml) with
its movie id table (candidate tower and the query's history, the two big
tables) as:

- `full`: the exact vocabulary, one row per movie;
- `hash_quarter`: one hash into a quarter as many buckets;
- `multi_hash_quarter`: two hashes into the same quarter, rows summed
  (`num_hashes = 2`), so the same parameters as `hash_quarter`;
- `multi_hash_quarter_concat`: two hashes, rows of half the width
  concatenated (half the parameters).

All variants run in this process on the PROTOCOL.md test split, for
`--seeds` seeds each, trained and scored as `recsys train` does
(`recsys.train(config, write=False)`: exact scores of all 9,066 movies).
Prints one JSON object: per variant the mean and per-seed filtered HR@100
(and HR@10/50), the trainable parameters (all, and of the movie id
tables) and the preprocessor's collision report.

`--synthetic-rows N` runs the same comparison at scale instead: `recsys
synth` (500k users, 200k items, N interactions) once, then
`configs/synthetic_two_tower.toml` streamed by `recsys train` with the user
and item id tables full, hashed once into a quarter as many buckets as the
full run's vocabulary rows, or hashed twice into that quarter; each
training in its own process, so that its peak RSS is its own. Reported per
variant: HR@k on the held-out end of the time span, recall@100 against the
generator's ground truth, peak RSS, training examples/s and the id tables'
parameters.

Usage:

```
python benchmarks/multi_hash.py [--seeds 3] [--set KEY=VALUE ...]
python benchmarks/multi_hash.py --synthetic-rows 2000000
```
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile

import numpy as np
from _common import config_path
from _common import machine
from _common import print_json
from _common import run_child

import recsys
from recsys.data.sources import load_interactions
from recsys.features import Preprocessor
from recsys.kinds.two_tower import prepare_data

DEFAULT_CONFIG = config_path("movielens_two_tower.toml")


def variants(item, buckets):
    """Config overrides of each variant (`buckets`: a quarter of the rows)."""
    hashed = [
        f'features.{item}.vocabulary="hash"',
        f"features.{item}.num_buckets={buckets}",
    ]
    return {
        "full": [],
        "hash_quarter": hashed,
        "multi_hash_quarter": [*hashed, f"features.{item}.num_hashes=2"],
        "multi_hash_quarter_concat": [
            *hashed,
            f"features.{item}.num_hashes=2",
            f'features.{item}.hash_combiner="concat"',
        ],
    }


def table_parameters(model, item):
    """Trainable values of the item id tables (candidate and history)."""
    names = (f"{item}_embedding", "history_embedding")
    return sum(
        int(np.prod(v.shape))
        for v in model.trainable_variables
        if any(name in v.path for name in names)
    )


def run(config, frame, seed):
    """One training in memory (`recsys.train`, nothing written)."""
    config = {**config, "train": {**config["train"], "seed": seed}}
    result = recsys.train(config, frame=frame, progress=False, write=False)
    model, item = result.model, config["data"]["item"]
    return result.metrics[config["evaluate"]["split"]], {
        "parameters": int(
            sum(np.prod(v.shape) for v in model.trainable_variables)
        ),
        "item_table_parameters": table_parameters(model, item),
        "collision_report": result.prepared.preprocessor.collision_report_.get(
            item
        ),
    }


SYNTHETIC_CONFIG = config_path("synthetic_two_tower.toml")
SYNTHETIC_IDS = {"user_id": 500_000, "item_id": 200_000}


def synthetic(rows, overrides):
    """The trade-off on `recsys synth` data, one process per training."""
    cli = [sys.executable, "-m", "recsys.cli"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        users, items = SYNTHETIC_IDS.values()
        run_child(
            [*cli, "synth", data, "--users", str(users), "--items"]
            + [str(items), "--interactions", str(rows), "--quiet"]
        )
        runs = {"full": []}
        for name in ("full", "hash_quarter", "multi_hash_quarter"):
            variant = runs[name]
            output = os.path.join(tmp, name)
            command = [*cli, "train", SYNTHETIC_CONFIG, "--output", output]
            command.append("--quiet")
            for override in [f"data.path={data}", *overrides, *variant]:
                command += ["--set", override]
            run_child(command)
            with open(os.path.join(output, "metrics.json")) as f:
                metrics = json.load(f)
            pre = Preprocessor.load(os.path.join(output, "preprocessor.json"))
            dim = recsys.load_config(SYNTHETIC_CONFIG, overrides)["model"][
                "embedding_dim"
            ]
            table_rows = {
                feature.name: feature.num_buckets + 1
                if feature.vocabulary == "hash"
                else pre.input_dim(feature.name)
                for feature in pre.features
                if feature.name in SYNTHETIC_IDS
            }
            results[name] = {
                "overrides": variant,
                "id_table_parameters": dim * sum(table_rows.values()),
                "test": metrics["test"],
                "ground_truth": metrics["ground_truth"],
                "peak_rss_mb": max(metrics["peak_rss_mb_after"].values()),
                "examples_per_second": metrics["train"]["examples_per_second"],
                "stages": metrics["stages"],
            }
            print(name, results[name]["ground_truth"], file=sys.stderr)
            if name == "full":
                # A quarter of the ids the full run saw in training.
                hashed = [
                    override
                    for column, rows_ in table_rows.items()
                    for override in (
                        f'features.{column}.vocabulary="hash"',
                        f"features.{column}.num_buckets={rows_ // 4}",
                    )
                ]
                two = [f"features.{c}.num_hashes=2" for c in SYNTHETIC_IDS]
                runs["hash_quarter"] = hashed
                runs["multi_hash_quarter"] = hashed + two
    return {"rows": rows, "ids": SYNTHETIC_IDS, "variants": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--synthetic-rows", type=int, default=0)
    args = parser.parse_args()
    if args.synthetic_rows:
        result = synthetic(args.synthetic_rows, args.set)
        print_json({"config": SYNTHETIC_CONFIG, "machine": machine(), **result})
        return

    base = recsys.load_config(DEFAULT_CONFIG, args.set)
    frame = load_interactions(base["data"]["source"])
    item = base["data"]["item"]
    full_rows = prepare_data(base, frame).preprocessor.input_dim(item)
    buckets = math.ceil(full_rows / 4)
    results = {}
    for name, overrides in variants(item, buckets).items():
        config = recsys.load_config(DEFAULT_CONFIG, [*args.set, *overrides])
        runs = [run(config, frame, seed) for seed in range(args.seeds)]
        metrics = [m for m, _ in runs]
        results[name] = {
            "overrides": overrides,
            **runs[0][1],
            **{
                key: statistics.mean(m[key] for m in metrics)
                for key in metrics[0]
                if key.startswith("hr@")
            },
            "hr@100_filtered_per_seed": [m["hr@100_filtered"] for m in metrics],
        }
        print(name, results[name]["hr@100_filtered"], file=sys.stderr)
    print_json(
        {
            "config": DEFAULT_CONFIG,
            "overrides": args.set,
            "seeds": args.seeds,
            "machine": machine(),
            "full_item_rows": full_rows,
            "quarter_buckets": buckets,
            "variants": results,
        }
    )


if __name__ == "__main__":
    main()
