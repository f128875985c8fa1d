"""Small tables: an epoch cap of 100, or one spanning 2,000 steps.

A tabular model trains until its validation loss stops improving, within
`train.epochs`. `recsys init` (and `epochs = "auto"`) wrote 100 for a
table under 20,000 rows; on a table of a few hundred rows that is a few
hundred steps, and validation was still improving at the last (MASS's
crabs: test RMSE 0.389 against ridge's 0.348). The cap now spans
`MIN_CAP_STEPS` (2,000) steps at least. Each table below is trained from
what `recsys init tabular --label L` writes, with the rule (as shipped)
and with `epochs = 100` (the cap before it; every table here is under
8,000 rows), on the validation carve and on the test split, each seed,
beside the table's linear baseline.

Usage:

```
python benchmarks/epoch_cap.py
python benchmarks/epoch_cap.py --tables MASS/crabs --seeds 1
```

Prints one JSON object: per table, its rows, the label, the metric, and
per variant ("steps", "epochs") and split, the model's value per seed,
their mean, the best epochs, and the baseline's value.
"""

import re

from _common import init_config_variants_main

# (package, table, label): tables of 200-3,000 rows of other people, labels
# of every task; the first eight were still improving at epoch 100 in a
# sweep of init configs, the last four are benchmarks/patience_window.py's.
TABLES = (
    ("MASS", "crabs", "FL"),
    ("DAAG", "ais", "wt"),
    ("betareg", "ImpreciseTask", "task"),
    ("HistData", "Snow.streets", "y"),
    ("stevedata", "USFAHR", "usaexp"),
    ("Stat2Data", "InsuranceVote", "Obama"),
    ("openintro", "ask", "response"),
    ("geepack", "koch", "y"),
    ("pscl", "bioChemists", "kid5"),
    ("geepack", "dietox", "Cu"),
    ("AER", "SwissLabor", "participation"),
    ("ISLR", "OJ", "Purchase"),
)


def capped_at_100(text):
    """The config with the cap before the rule: `epochs = 100`."""
    return re.sub(r"^epochs = \d+", "epochs = 100", text, flags=re.M)


def main():
    variants = {"steps": lambda text: text, "epochs": capped_at_100}
    init_config_variants_main(__doc__, TABLES, variants)


if __name__ == "__main__":
    main()
