"""Held-out rows of one class: the warning's fix fits the split used."""

import numpy as np
import pandas as pd
import pytest

from recsys import train


@pytest.mark.parametrize(
    "split, fix",
    [
        # It suggested data.split = "random" to a run split at random.
        ("random", "Fix: more rows, or a larger data.test_fraction or "),
        ("time", 'Fix: data.split = "random", or a split whose held-out'),
    ],
)
def test_held_out_rows_of_one_class_are_told_a_fix_other_than_their_split(
    split, fix, caplog
):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "month": np.arange(40)[::-1],  # the bad rows the earliest
            "age": rng.integers(20, 60, 40),
            "status": ["good"] * 36 + ["bad"] * 4,
        }
    )
    config = {
        "data": {
            "user": "",
            "item": "",
            "time": "month" if split == "time" else "",
            "split": split,
            "label": "status",
        },
        "model": {"kind": "tabular", "task": "binary", "features": ["age"]},
        "features": {"age": {"kind": "numeric"}},
        "train": {"epochs": 1},
        "evaluate": {"baselines": []},
    }
    with caplog.at_level("WARNING"):
        result = train(config, write=False, frame=frame, progress=False)
    assert np.isnan(result.metrics["test"]["auc"])
    assert f"data.split = '{split}' holds out rows of one class" in caplog.text
    assert fix in caplog.text
