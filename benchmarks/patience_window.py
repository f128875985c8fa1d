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

Prints one JSON object: per table, its rows, the label, the metric, and
per variant ("steps", "epochs") and split, the model's value per seed,
their mean, the best epochs, and the baseline's value.
"""

from _common import init_config_variants_main

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


def with_patience_steps(steps):
    """A variant: the config as written, trained with `PATIENCE_STEPS`."""

    def write(text):
        refit.PATIENCE_STEPS = steps
        return text

    return write


def main():
    # Each variant sets the window before its own runs.
    variants = {
        "steps": with_patience_steps(refit.PATIENCE_STEPS),
        "epochs": with_patience_steps(0),
    }
    init_config_variants_main(__doc__, TABLES, variants)


if __name__ == "__main__":
    main()
