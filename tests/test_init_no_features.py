"""A tabular table init reads no feature of (just the label, or only
columns it leaves out): init says so beside `features = []`, and training
refuses it naming model.features and the fix, before any model is built."""

import logging
import tomllib

import numpy as np
import pandas as pd
import pytest

from recsys import load_config
from recsys import train
from recsys.init_config import init_config


def _label_only(rows=60):
    return pd.DataFrame({"clicked": np.arange(rows) % 2})


def _config(tmp_path, frame):
    data = tmp_path / "t.csv"
    frame.to_csv(data, index=False)
    path = tmp_path / "t.toml"
    path.write_text(init_config("tabular", str(data)))
    return path


def test_init_says_a_table_of_the_label_alone_has_no_features():
    text = init_config("tabular", "t.csv", frame=_label_only())
    line = next(x for x in text.splitlines() if x.startswith("features ="))
    assert tomllib.loads(text)["model"]["features"] == []
    assert "no column but the label 'clicked'" in line
    assert "add feature columns" in line


def test_init_says_every_other_column_was_left_out():
    frame = _label_only().assign(row=np.arange(60))  # a row id: left out
    text = init_config("tabular", "t.csv", frame=frame)
    line = next(x for x in text.splitlines() if x.startswith("features ="))
    assert "every other column is left out" in line
    assert "'row'" in line


def test_training_a_table_of_the_label_alone_names_the_fix(tmp_path, caplog):
    config = load_config(str(_config(tmp_path, _label_only())))
    with caplog.at_level(logging.INFO, logger="recsys"):
        with pytest.raises(ValueError) as info:
            train(config, str(tmp_path / "out"), progress=False)
    message = str(info.value)
    assert message.startswith("The table holds only the label 'clicked'")
    assert "model.features is empty" in message
    assert "Fix: add feature columns" in message
    # The info line that read "the model reads  as ..." (twice): not said.
    assert "No [features] tables" not in caplog.text
    assert not (tmp_path / "out").exists()


def test_training_a_table_init_leaves_every_column_out_of(tmp_path):
    frame = _label_only().assign(row=np.arange(60))
    config = load_config(str(_config(tmp_path, frame)))
    with pytest.raises(ValueError, match=r"model.features = \['row'\]"):
        train(config, str(tmp_path / "out"), progress=False)
