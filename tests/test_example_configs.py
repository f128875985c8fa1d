"""configs/examples: each trains on a table of its documented shape."""

import numpy as np
import pandas as pd
import pytest

from recsys import load_bundle
from recsys.cli import main


def _table(kind, rows=600, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "texts":
        words = np.array(["good", "bad", "phone", "screen", "fast", "slow"])
        label = rng.integers(0, 2, rows)
        text = [
            " ".join(rng.choice(words, 6)) + (" great" if y else " awful")
            for y in label
        ]
        return pd.DataFrame({"text": text, "label": label})
    items = rng.integers(0, 50, rows)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 60, rows),
            "item_id": items,
            "timestamp": np.arange(rows),
            "clicked": (rng.random(rows) < 0.3).astype(int),
            "price": (items % 7) * 1.5,
        }
    )


@pytest.mark.parametrize("name", ["interactions", "labelled", "texts"])
def test_example_config_trains_on_its_documented_table(name, tmp_path, capsys):
    data = tmp_path / f"{name}.csv"
    _table(name).to_csv(data, index=False)
    output = tmp_path / "bundle"
    code = main(
        ["train", f"configs/examples/{name}.toml", "--output", str(output)]
        + ["--set", f'data.source="{data}"', "--set", "train.epochs=1", "-q"]
    )
    assert code == 0, capsys.readouterr().err
    assert load_bundle(str(output)).metrics["train"]
