"""Tabular settings compared on the validation split (never on test).

Each argument is one setting: `;`-separated `--set`-style overrides applied
to the config with `evaluate.split = "validation"` (train on the training
split minus its users' latest fifth, report that fifth). Prints one JSON line
per setting and reported model or baseline.

Usage:

```
python benchmarks/tabular_sweep.py configs/movielens_liked.toml \
    "" "model.interaction=\"mlp\"" \
    "evaluate.baselines=[\"logistic_regression\"]"
```
"""

import sys
import time

from _common import print_json

import recsys
from recsys.data.sources import load_interactions


def main():
    config_path, settings = sys.argv[1], sys.argv[2:] or [""]
    frame = None
    for setting in settings:
        overrides = [s for s in setting.split(";") if s]
        config = recsys.load_config(
            config_path,
            ["evaluate.split=validation", "evaluate.baselines=[]", *overrides],
        )
        if frame is None:
            frame = load_interactions(config["data"]["source"])
        start = time.perf_counter()
        metrics = recsys.train(
            config, frame=frame, progress=False, write=False
        ).metrics
        timing = metrics["train"]
        split = config["evaluate"]["split"]
        for name in [split, *(k for k in metrics if k.startswith("baseline_"))]:
            values = metrics[name]
            print_json(
                {
                    "overrides": overrides,
                    "model": name,
                    **{
                        k: round(v, 4)
                        for k, v in values.items()
                        if k != "num_examples"
                    },
                    "best_epoch": timing["best_epoch"],
                    "seconds": round(time.perf_counter() - start),
                    "backend": timing["backend"],
                },
                indent=None,
            )


if __name__ == "__main__":
    main()
