"""The learned second stage (`model.second_stage`) against the model alone.

Trains the config with `model.second_stage = true` once per seed, through
`recsys.train` (nothing written), and reports from the same run the filtered
HR@10 / HR@100 of the reranked lists (the bundle's own answer), of the model
alone (`baseline_first_stage`) and of `ease_recent`, on the test split (or
the validation carve with `--split validation`, where the second stage is
fitted on a carve of the carve). See `recsys.second_stage` for the features.

Usage:

```
python benchmarks/learned_rerank.py [--config C] [--seeds 0,1,2]
    [--split test] [--candidates 150]
```

Prints one JSON object: per seed and their means.
"""

import argparse
import time

import numpy as np
from _common import command_line
from _common import config_path
from _common import machine
from _common import print_json

import recsys
import recsys.second_stage

DEFAULT_CONFIG = config_path("movielens_two_tower.toml")
KEYS = ("hr@10_filtered", "hr@100_filtered")
ROWS = {
    "reranked": None,  # the split's own entry
    "first_stage": "baseline_first_stage",
    "ease_recent": "baseline_ease_recent",
}


def run(config_file, seed, split):
    """One seed's reranked, first-stage and ease_recent HR@k."""
    started = time.perf_counter()
    config = recsys.load_config(
        config_file,
        [
            "model.second_stage=true",
            f"train.seed={seed}",
            f'evaluate.split="{split}"',
            "evaluate.baselines=['popularity', 'ease_recent']",
        ],
    )
    metrics = recsys.train(config, write=False, progress=False).metrics
    result = {"seed": seed}
    for name, key in ROWS.items():
        # A skipped second stage (`metrics["second_stage"]` says why) has
        # no first stage beside the model: the model is it.
        entry = metrics.get(key or split, metrics[split])
        result[name] = {k: round(entry[k], 4) for k in KEYS}
    result["second_stage"] = metrics["second_stage"]
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--split", choices=("test", "validation"), default="test"
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=recsys.second_stage.CANDIDATES,
        help="each scorer's top unseen items a user (the candidates' union)",
    )
    args = parser.parse_args()
    recsys.second_stage.CANDIDATES = args.candidates
    runs = [
        run(args.config, int(seed), args.split)
        for seed in args.seeds.split(",")
    ]
    means = {
        name: {
            key: round(float(np.mean([r[name][key] for r in runs])), 4)
            for key in KEYS
        }
        for name in ROWS
    }
    print_json(
        {
            "command": command_line(),
            "machine": machine(),
            "config": args.config,
            "split": args.split,
            "candidates": args.candidates,
            "runs": runs,
            "mean": means,
        }
    )


if __name__ == "__main__":
    main()
