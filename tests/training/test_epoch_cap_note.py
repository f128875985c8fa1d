"""`recsys train`'s note when early stopping chose the last epoch allowed."""

import numpy as np
import pandas as pd

from recsys import load_config
from recsys.kinds.tabular import TabularKind
from recsys.training.refit import epoch_cap_note


def test_the_note_names_the_cap_only_when_it_was_reached():
    assert epoch_cap_note([4], 20) == []
    assert epoch_cap_note([3, 20], 20)[0].startswith(
        "note: validation still improved at the last epoch allowed (20)"
    )
    assert "train.epochs=40" in epoch_cap_note([20], 20)[0]
    assert epoch_cap_note([1], 1) == []  # one epoch: nothing was chosen


def test_a_tabular_run_cut_by_its_cap_says_so(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    frame = pd.DataFrame(
        {"x": x, "label": (x + rng.normal(size=2000) > 0).astype(int)}
    )
    config = load_config(
        "configs/examples/labelled.toml",
        [
            f'data.source="{tmp_path / "t.csv"}"',
            'data.user=""',
            'data.item=""',
            'data.time=""',
            'data.split="random"',
            'data.label="label"',
            "model.features=['x']",
            "features.x.kind='numeric'",
            "train.epochs=2",
            "train.refit=false",
            "evaluate.baselines=[]",
        ],
    )
    kind = TabularKind()
    result = kind.train(config, frame=frame, progress=False, write=False)
    printed = kind.summary(result.metrics, config)
    # Two epochs of a label one number predicts: the second is better.
    assert result.metrics["train"]["best_epoch"] == 2
    assert "last epoch allowed (2)" in printed
    assert "train.epochs=4" in printed
