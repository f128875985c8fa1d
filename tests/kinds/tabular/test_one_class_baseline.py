"""A table so small that the logistic-regression baseline's fit rows hold
one class: the baseline is skipped with a note and the bundle written
(scikit-learn's "needs samples of at least 2 classes" came after the
model's training, and lost it)."""

import os

import pandas as pd

from recsys import load_bundle
from recsys import train
from recsys.kinds import get_kind

# `recsys init`'s 5-row table of the audit: its default random split holds
# out one row and leaves 3 positive rows to tune the baseline on.
TINY = pd.DataFrame(
    {
        "c0": [1, 1, 0, 0, 1],
        "c1": [1, 1, 1, 0, 1],
        "c2": [1, 0, 0, 1, 0],
        "c3": [0, 1, 1, 0, 0],
        "clicked": [0, 1, 0, 1, 1],
    }
)


def test_a_baseline_of_one_class_fit_rows_is_skipped_and_the_bundle_kept(
    tmp_path,
):
    features = ["c0", "c1", "c2", "c3"]
    config = {
        "data": {"user": "", "item": "", "time": "", "label": "clicked"},
        "model": {"kind": "tabular", "task": "binary", "features": features},
        "features": {name: {"kind": "categorical"} for name in features},
        "train": {"epochs": 2},
        "evaluate": {"baselines": ["logistic_regression"]},
    }
    output = str(tmp_path / "bundle")
    result = train(config, output, frame=TINY, progress=False)

    note = result.metrics["baselines_tuned"]["logistic_regression"]["skipped"]
    assert "hold one class: logistic regression needs two" in note
    assert "Fix: more rows of each class" in note
    assert "baseline_logistic_regression" not in result.metrics
    summary = get_kind("tabular").summary(result.metrics, result.bundle.config)
    assert f"logistic_regression: skipped, {note}" in summary
    assert os.path.isdir(output)
    assert load_bundle(output).predict(TINY).shape == (5,)


def test_a_frame_of_numbered_columns_trains_and_predicts(tmp_path):
    # `pd.DataFrame(array)`: the config names its columns as text, and the
    # bundle scores the same frame (it asked for columns "0", "1", ...).
    numbered = pd.concat([TINY] * 4, ignore_index=True)
    numbered.columns = range(5)
    config = {
        "data": {"user": "", "item": "", "time": "", "label": "4"},
        "model": {"kind": "tabular", "task": "binary"},
        "train": {"epochs": 1},
        "evaluate": {"baselines": []},
    }
    result = train(config, str(tmp_path / "bundle"), frame=numbered)
    assert result.bundle.predict(numbered).shape == (20,)


def test_a_table_of_no_rows_or_one_class_is_refused_with_its_fix(tmp_path):
    # A header alone, or rows of one class, were refused as "text with 0
    # (1) distinct values ... Fix: convert it to 0/1": not the table's fault.
    import pytest

    features = ["c0", "c1"]
    config = {
        "data": {"user": "", "item": "", "time": "", "label": "clicked"},
        "model": {"kind": "tabular", "task": "binary", "features": features},
        "features": {name: {"kind": "categorical"} for name in features},
        "train": {"epochs": 2},
    }
    path = tmp_path / "clicks.csv"
    TINY.head(0).assign(clicked=[]).to_csv(path, index=False)
    config["data"]["source"] = str(path)
    with pytest.raises(ValueError, match=r"holds no rows \(a header alone"):
        train(config, str(tmp_path / "b"), progress=False)
    yes = TINY.assign(clicked="yes")
    with pytest.raises(
        ValueError, match=r"one value on every row \('yes', 5 rows\).*a binary"
    ):
        train(config, str(tmp_path / "b"), frame=yes, progress=False)
    config["model"]["task"] = "multiclass"
    with pytest.raises(
        ValueError, match=r"every row \(1, 5 rows\).*a multiclass"
    ):
        train(
            config,
            str(tmp_path / "b"),
            frame=yes.assign(clicked=1),
            progress=False,
        )
    assert not os.path.exists(tmp_path / "b")
