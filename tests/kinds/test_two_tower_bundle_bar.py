"""The "bundle" stages bar of a two-tower run, written to a log file."""

import numpy as np
import pandas as pd

from recsys import load_config
from recsys.kinds.two_tower import TwoTowerKind


def test_the_bundle_bar_ends_in_a_log(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 50, 400),
            "item_id": rng.integers(0, 20, 400),
        }
    )
    path = tmp_path / "interactions.csv"
    frame.to_csv(path, index=False)
    config = load_config(
        "configs/examples/interactions.toml",
        [
            f'data.source="{path}"',
            'data.time=""',
            'data.split="random"',
            "model.history_length=0",
            "train.epochs=1",
            "evaluate.ks=[1]",
            "evaluate.baselines=[]",
        ],
    )
    TwoTowerKind().train(config, progress=True, write=False)
    # stderr is captured, not a terminal: the bar prints plain lines.
    lines = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("bundle:")
    ]
    # Its last line says it finished ("bundle: 0%" alone said it never did).
    assert lines and "2/2" in lines[-1], lines
