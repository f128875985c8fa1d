"""Early stopping on small tables: patience in epochs, or in steps too.

A tabular model stops when its validation loss has not improved for
`train.patience` epochs. On a table of a few hundred training rows an epoch
is a handful of steps, and a fresh model's validation loss can stay flat or
rise for its first few dozen steps: it stopped before learning anything.
`fit_then_refit` now lets the patience span `PATIENCE_STEPS` (30) steps at
least. Each table below is trained from what `recsys init tabular --label
L` writes, with the window (as shipped) and without it (`PATIENCE_STEPS =
0`: patience in epochs only, the behaviour before), on the validation
carve and on the test split, each seed, beside the table's linear baseline.

Usage:

```
python benchmarks/patience_window.py
python benchmarks/patience_window.py --tables pscl/bioChemists --seeds 1
```

Prints one JSON object: per table, the metric, and per variant ("steps",
"epochs") and split, the model's value per seed, their mean, the best
epochs, and the baseline's value.
"""

import argparse
import os
import tempfile

from _common import machine
from _common import print_json
from _common import public_tables
from _common import seeds_on_split

from recsys.init_config import init_config
from recsys.training import refit

# (package, table, label): small tables of other people (500-5,000 rows),
# labels of every task.
TABLES = (
    ("pscl", "bioChemists", "kid5"),
    ("geepack", "dietox", "Cu"),
    ("fpp3", "aus_accommodation", "State"),
    ("modeldata", "hpc_data", "class"),
    ("Ecdat", "RetSchool", "col4"),
    ("AER", "SwissLabor", "participation"),
    ("ISLR", "OJ", "Purchase"),
    ("vcdExtra", "Titanicp", "parch"),
    ("AER", "CPSSWEducation", "education"),
    ("mlmRev", "ScotsSec", "social"),
)
VARIANTS = {"steps": refit.PATIENCE_STEPS, "epochs": 0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", help="PACKAGE/TABLE ...")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for package, name, label, frame, path in public_tables(
            TABLES, args.tables, work, labelled=True
        ):
            config_path = os.path.join(work, f"{name}.toml")
            with open(config_path, "w") as f:
                f.write(
                    init_config(
                        "tabular", path, frame=frame, columns={"label": label}
                    )
                )
            row = {}
            for variant, steps in VARIANTS.items():
                refit.PATIENCE_STEPS = steps
                for split in ("validation", "test"):
                    runs = seeds_on_split(config_path, split, args.seeds)
                    row["metric"] = runs.pop("metric")
                    row[f"{variant}/{split}"] = runs
            results[f"{package}/{name}"] = {
                "rows": len(frame),
                "label": label,
                **row,
            }
    refit.PATIENCE_STEPS = VARIANTS["steps"]
    print_json({"machine": machine(), "tables": results})


if __name__ == "__main__":
    main()
