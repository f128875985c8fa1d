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
`--seeds` seeds each, scored exactly over all 9,066 movies. Prints one JSON
object: per variant the mean and per-seed filtered HR@100 (and HR@10/50),
the trainable parameters (all, and of the movie id tables) and the
preprocessor's collision report.

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

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from recsys.features import Preprocessor  # noqa: E402

from recsys.config import load_config  # noqa: E402
from recsys.data.sources import load_interactions  # noqa: E402
from recsys.kinds.two_tower import embed_catalog_and_users  # noqa: E402
from recsys.kinds.two_tower import evaluate_bundle  # noqa: E402
from recsys.kinds.two_tower import in_memory_bundle  # noqa: E402
from recsys.kinds.two_tower import prepare_data  # noqa: E402
from recsys.training.two_tower import build_two_tower  # noqa: E402
from recsys.training.two_tower import fit_two_tower  # noqa: E402

DEFAULT_CONFIG = os.path.join(ROOT, "configs", "movielens_two_tower.toml")


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
    config = {**config, "train": {**config["train"], "seed": seed}}
    keras.utils.set_random_seed(seed)
    prepared = prepare_data(config, frame)
    model = build_two_tower(prepared.preprocessor, config)
    fit_two_tower(model, prepared.inputs, config, progress=False)
    arrays = embed_catalog_and_users(model, prepared)
    metrics = evaluate_bundle(
        in_memory_bundle(prepared, arrays),
        prepared.frame,
        config,
        prepared.train,
        prepared.test,
    )["test"]
    item = config["data"]["item"]
    return metrics, {
        "parameters": int(
            sum(np.prod(v.shape) for v in model.trainable_variables)
        ),
        "item_table_parameters": table_parameters(model, item),
        "collision_report": prepared.preprocessor.collision_report_.get(item),
    }


SYNTHETIC_CONFIG = os.path.join(ROOT, "configs", "synthetic_two_tower.toml")
SYNTHETIC_IDS = {"user_id": 500_000, "item_id": 200_000}


def synthetic(rows, overrides):
    """The trade-off on `recsys synth` data, one process per training."""
    import subprocess
    import tempfile

    recsys = [sys.executable, "-m", "recsys.cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        users, items = SYNTHETIC_IDS.values()
        subprocess.run(
            [*recsys, "synth", data, "--users", str(users), "--items"]
            + [str(items), "--interactions", str(rows), "--quiet"],
            check=True,
            env=env,
            capture_output=True,
        )
        runs = {"full": []}
        for name in ("full", "hash_quarter", "multi_hash_quarter"):
            variant = runs[name]
            output = os.path.join(tmp, name)
            command = [*recsys, "train", SYNTHETIC_CONFIG, "--output", output]
            command.append("--quiet")
            for override in [f"data.path={data}", *overrides, *variant]:
                command += ["--set", override]
            subprocess.run(command, check=True, env=env, capture_output=True)
            with open(os.path.join(output, "metrics.json")) as f:
                metrics = json.load(f)
            pre = Preprocessor.load(os.path.join(output, "preprocessor.json"))
            dim = load_config(SYNTHETIC_CONFIG, overrides)["model"][
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
        print(json.dumps({"config": SYNTHETIC_CONFIG, **result}, indent=2))
        return

    base = load_config(DEFAULT_CONFIG, args.set)
    frame = load_interactions(base["data"]["source"])
    item = base["data"]["item"]
    full_rows = prepare_data(base, frame).preprocessor.input_dim(item)
    buckets = math.ceil(full_rows / 4)
    results = {}
    for name, overrides in variants(item, buckets).items():
        config = load_config(DEFAULT_CONFIG, [*args.set, *overrides])
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
    print(
        json.dumps(
            {
                "config": DEFAULT_CONFIG,
                "overrides": args.set,
                "seeds": args.seeds,
                "backend": keras.backend.backend(),
                "full_item_rows": full_rows,
                "quarter_buckets": buckets,
                "variants": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
