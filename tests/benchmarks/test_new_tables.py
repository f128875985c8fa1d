"""Tests of benchmarks/new_tables.py's configs: what a user edits in init's."""

import os
import sys

import numpy as np
import pandas as pd
import pytest

import recsys
from recsys.init_config import init_config

BENCHMARKS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "benchmarks"
)


@pytest.fixture(scope="module")
def new_tables():
    # The script imports `_common` as its sibling.
    sys.path.insert(0, BENCHMARKS)
    try:
        import new_tables

        yield new_tables
    finally:
        sys.path.remove(BENCHMARKS)


def _table(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "village": rng.choice(["a", "b", "c"], n),
            "default": rng.integers(0, 2, n),
            "age": rng.normal(40, 10, n).round(1),
            "takeup": rng.integers(0, 2, n),
        }
    )
    path = tmp_path / "insure.csv"
    frame.to_csv(path, index=False)
    return frame, str(path)


def test_a_label_init_guessed_wrong_is_named_and_the_column_kept(
    new_tables, tmp_path
):
    # social_insure: init took `default` (a treatment) for the label, and
    # the benchmark trained on it (AUC 1.0 from the villages).
    frame, path = _table(tmp_path)
    text = init_config("tabular", path, frame=frame)
    assert 'label = "default"' in text
    edited, guessed = new_tables.user_config(text, "takeup")
    assert guessed == "default"
    config_path = tmp_path / "insure.toml"
    config_path.write_text(edited)
    config = recsys.load_config(str(config_path))
    assert config["data"]["label"] == "takeup"
    assert "default" in config["model"]["features"]
    assert "takeup" not in config["model"]["features"]


def test_a_label_init_guessed_right_leaves_the_features(new_tables, tmp_path):
    frame, path = _table(tmp_path)
    frame = frame.drop(columns="takeup")
    frame.to_csv(path, index=False)
    text = init_config("tabular", path, frame=frame)
    edited, guessed = new_tables.user_config(text, "default")
    config_path = tmp_path / "insure.toml"
    config_path.write_text(edited)
    config = recsys.load_config(str(config_path))
    assert guessed == "default" and config["data"]["label"] == "default"
    assert config["model"]["features"] == ["village", "age"]
