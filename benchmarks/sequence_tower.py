"""MovieLens: the query tower's history by mean pooling, GRU, transformer.

Trains the default two-tower config (configs/movielens_two_tower.toml: the
user's 10 latest movies in the query tower) with `model.history_encoder`
set to each of

- `mean`: the default, the history's item vectors averaged;
- `gru`: a GRU over the history, oldest to newest, with positions
  (`recsys.layers.SequenceEncoder`);
- `transformer`: one causal self-attention block over it, with positions.

All variants run one after the other in this process on the PROTOCOL.md
test split, trained and scored as `recsys train` does
(`recsys.train(config, write=False)`: exact scores of every movie), for
`--seeds` seeds each. Prints one JSON object: per variant the mean and
per-seed filtered HR@10 and HR@100 (and the unfiltered ones), the training
examples/s (epochs after the first), the trainable parameters, and each
metric's ratio to the `mean` variant measured in the same run; plus the
popularity baseline of the same split.

Usage:

```
python benchmarks/sequence_tower.py [--seeds 1] [--set KEY=VALUE ...]
```
"""

import argparse
import statistics
import sys

import numpy as np
from _common import command_line
from _common import config_path
from _common import machine
from _common import print_json

import recsys
from recsys.data.sources import load_interactions

DEFAULT_CONFIG = config_path("movielens_two_tower.toml")
ENCODERS = ("mean", "gru", "transformer")
REPORTED = ("hr@10_filtered", "hr@100_filtered", "hr@10", "hr@100")


def run(config, frame, seed):
    """One training in memory (`recsys.train`, nothing written)."""
    config = {**config, "train": {**config["train"], "seed": seed}}
    result = recsys.train(config, frame=frame, progress=False, write=False)
    metrics = result.metrics
    return {
        "metrics": metrics[config["evaluate"]["split"]],
        "popularity": metrics.get("baseline_popularity", {}),
        "examples_per_second": metrics["train"]["examples_per_second"],
        "train_seconds": metrics["train"]["seconds"],
        "parameters": int(
            sum(np.prod(v.shape) for v in result.model.trainable_variables)
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument(
        "--encoders", default=",".join(ENCODERS), help="comma-separated"
    )
    args = parser.parse_args()
    encoders = args.encoders.split(",")
    base = recsys.load_config(DEFAULT_CONFIG, args.set)
    frame = load_interactions(base["data"]["source"])
    results = {}
    popularity = {}
    for encoder in encoders:
        config = recsys.load_config(
            DEFAULT_CONFIG, [*args.set, f'model.history_encoder="{encoder}"']
        )
        runs = [run(config, frame, seed) for seed in range(args.seeds)]
        popularity = runs[0]["popularity"] or popularity
        results[encoder] = {
            **{
                key: statistics.mean(r["metrics"][key] for r in runs)
                for key in REPORTED
            },
            **{
                f"{key}_per_seed": [r["metrics"][key] for r in runs]
                for key in REPORTED[:2]
            },
            "examples_per_second": statistics.mean(
                r["examples_per_second"] for r in runs
            ),
            "train_seconds": statistics.mean(r["train_seconds"] for r in runs),
            "parameters": runs[0]["parameters"],
        }
        print(encoder, results[encoder], file=sys.stderr, flush=True)
    if "mean" in results:
        reference = results["mean"]
        for result in results.values():
            result["ratio_to_mean"] = {
                key: result[key] / max(reference[key], 1e-12)
                for key in (*REPORTED[:2], "examples_per_second")
            }
    print_json(
        {
            "command": command_line(),
            "config": DEFAULT_CONFIG,
            "overrides": args.set,
            "split": base["evaluate"]["split"],
            "seeds": args.seeds,
            "machine": machine(),
            "popularity": {k: popularity.get(k) for k in REPORTED},
            "encoders": results,
        }
    )


if __name__ == "__main__":
    main()
