"""Labels typed by hand (`no`, `No`, ` yes`): init and `task = "auto"` say
that they are different classes as written, and how to make them one."""

import logging

import numpy as np
import pandas as pd
import pytest

import recsys
from recsys.init_config import init_config
from recsys.init_config import label_variants_warning
from recsys.init_config import with_written_features


def _loans(rows=120):
    rng = np.random.default_rng(0)
    deny = rng.choice(["no", "yes"], rows)
    # Every 7th row capitalized, as HMDA's mixed-case copy of the audit.
    deny = np.where(np.arange(rows) % 7 == 0, np.char.capitalize(deny), deny)
    return pd.DataFrame(
        {
            "deny": deny,
            "ratio": rng.normal(0.3, 0.1, rows).round(3),
            "history": rng.integers(1, 7, rows),
        }
    )


def test_labels_differing_in_case_are_named_with_the_fix():
    warning = label_variants_warning(_loans()["deny"], "deny")
    assert "'No' and 'no'; 'Yes' and 'yes'" in warning
    assert "different classes (4 classes, not 2)" in warning
    assert "Fix: where each group means one class, normalise them" in warning
    spaced = pd.Series(["cat", " cat", "dog", "bird"])
    assert "' cat' and 'cat'" in label_variants_warning(spaced, "pet")
    assert label_variants_warning(pd.Series(["no", "yes"] * 3), "y") is None
    assert label_variants_warning(pd.Series([1, 2, 3]), "y") is None


def test_init_warns_and_comments_the_task(caplog):
    # Before: task = "multiclass"  # 4 classes, and no word of why.
    with caplog.at_level(logging.WARNING, logger="recsys"):
        text = init_config("tabular", frame=_loans(), columns={"label": "deny"})
    task = text.split('task = "multiclass"')[1].splitlines()[0]
    assert "4 classes as written: 'No' and 'no'; 'Yes' and 'yes'" in task
    assert "Label column 'deny' holds 'No' and 'no'" in caplog.text
    assert caplog.text.count("Label column 'deny'") == 1


def test_a_task_guessed_at_training_warns_once(caplog):
    config = recsys.load_config(
        {
            "data": {"source": "loans.csv", "label": "deny"},
            "model": {"kind": "tabular"},
        }
    )
    assert config["model"]["task"] == "auto"
    from recsys.kinds.tabular import check_label

    with caplog.at_level(logging.WARNING, logger="recsys"):
        filled = with_written_features(config, _loans())
        check_label(_loans(), filled)
    assert filled["model"]["task"] == "multiclass"
    assert caplog.text.count("differ only in case or surrounding") == 1


def test_a_task_written_in_the_config_says_it_too(caplog):
    # Before: a binary task listed three values and suggested multiclass;
    # a multiclass one took 'Yes' beside 'yes' as a third class silently.
    from recsys.kinds.tabular import check_label

    frame = _loans()
    binary = {"data": {"label": "deny"}, "model": {"task": "binary"}}
    with pytest.raises(ValueError, match="'No' and 'no'; 'Yes' and 'yes'"):
        check_label(frame, binary)
    multiclass = {"data": {"label": "deny"}, "model": {"task": "multiclass"}}
    with caplog.at_level(logging.WARNING, logger="recsys"):
        check_label(frame, multiclass)
    assert "differ only in case or surrounding spaces" in caplog.text


def test_numbers_with_a_typo_as_the_label_point_at_regression(caplog):
    # airquality's Ozone with '12 ppb' typed in one cell: 68 classes, test
    # accuracy 0, and no word of why.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "ozone": rng.integers(1, 150, 200).astype(str).astype(object),
            "wind": rng.normal(10, 3, 200).round(1),
        }
    )
    frame.loc[[3, 50], "ozone"] = ["high", "12 ppb"]
    text = init_config("tabular", frame=frame, columns={"label": "ozone"})
    task = text.split('task = "multiclass"')[1].splitlines()[0]
    assert "numbers but for 'high', '12 ppb' (2 cells)" in task
    assert 'set task = "regression"' in task
    config = recsys.load_config(
        {
            "data": {"source": "", "label": "ozone", "split": "random"},
            "features": {"wind": {"kind": "numeric"}},
            "model": {"kind": "tabular", "task": "multiclass"},
            "train": {"epochs": 1},
            "evaluate": {"baselines": []},
        }
    )
    with caplog.at_level(logging.WARNING, logger="recsys"):
        recsys.train(config, write=False, frame=frame, progress=False)
    assert "Label 'ozone' holds numbers but for 'high', '12 ppb'" in caplog.text
