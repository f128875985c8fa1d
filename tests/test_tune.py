"""`recsys tune`: finds a planted better setting on the validation carve
only, resumes a killed study, and writes a config `recsys train` reads."""

import numpy as np
import optuna
import pandas as pd
import pytest

from recsys import load_config
from recsys.kinds.tabular import TabularKind
from recsys.tune import Choice
from recsys.tune import tune

# 1e-6 cannot learn the label in a few epochs: the planted bad setting.
SPACE = {"train.learning_rate": Choice((1e-6, 0.05))}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = 1500
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 50, rows),
            "item_id": rng.integers(0, 20, rows),
            "timestamp": rng.permutation(rows),
        }
    )
    frame["clicked"] = (frame["item_id"] % 4 == 0).astype(int)
    path = tmp_path_factory.mktemp("tune") / "labelled.csv"
    frame.to_csv(path, index=False)
    return path


def _config(table):
    return load_config(
        "configs/examples/labelled.toml",
        [
            f'data.source="{table}"',
            "model.features=['user_id', 'item_id']",
            "train.epochs=3",
            "train.patience=1",
            "train.refit=false",
            "evaluate.baselines=[]",
        ],
    )


def test_tune_finds_the_planted_setting_on_validation_only(
    table, tmp_path, monkeypatch
):
    splits = []
    original = TabularKind.train

    def spy(self, config, *args, **kwargs):
        splits.append(config["evaluate"]["split"])
        return original(self, config, *args, **kwargs)

    monkeypatch.setattr(TabularKind, "train", spy)
    result = tune(
        _config(table), str(tmp_path), trials=2, space=SPACE, progress=False
    )
    assert result.metric == "auc"
    assert result.best_params == {"train.learning_rate": 0.05}
    # Every trial scored the validation carve; the test split once, at the end.
    assert splits == ["validation", "validation", "test"]
    assert set(result.test_metrics) >= {"test", "split"}
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 2
    chosen = load_config(str(tmp_path / "best.toml"))
    assert chosen["train"]["learning_rate"] == 0.05
    assert chosen["evaluate"]["split"] == "test"
    assert result.bundle.metrics["test"] == result.test_metrics["test"]


def test_a_killed_study_resumes_without_its_unfinished_trial(table, tmp_path):
    config = _config(table)
    tune(
        config,
        str(tmp_path),
        trials=1,
        space=SPACE,
        final=False,
        progress=False,
    )
    # A trial that was running when its process died.
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    optuna.load_study(study_name="recsys-tune", storage=storage).ask()
    result = tune(
        config,
        str(tmp_path),
        trials=2,
        space=SPACE,
        final=False,
        progress=False,
    )
    states = result.trials["state"].tolist()
    assert states.count("COMPLETE") == 2 and states.count("FAIL") == 1
    assert result.best_params == {"train.learning_rate": 0.05}
    with pytest.raises(ValueError, match="another config"):
        tune(
            load_config(str(tmp_path / "best.toml")),
            str(tmp_path),
            trials=2,
            space=SPACE,
            progress=False,
        )
