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

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from recsys.config import load_config  # noqa: E402
from recsys.data.sources import load_interactions  # noqa: E402
from recsys.kinds.tabular import evaluate_tabular  # noqa: E402
from recsys.kinds.tabular import fit_tabular_model  # noqa: E402
from recsys.kinds.tabular import prepare_tabular  # noqa: E402


def main():
    config_path, settings = sys.argv[1], sys.argv[2:] or [""]
    frame = None
    for setting in settings:
        overrides = [s for s in setting.split(";") if s]
        config = load_config(
            config_path,
            ["evaluate.split=validation", "evaluate.baselines=[]", *overrides],
        )
        if frame is None:
            frame = load_interactions(config["data"]["source"])
        start = time.perf_counter()
        prepared = prepare_tabular(config, frame)
        model, timing = fit_tabular_model(prepared, progress=False)
        metrics = evaluate_tabular(model, prepared)
        for name, values in metrics.items():
            if name == "baselines_tuned":
                continue
            print(
                json.dumps(
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
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
