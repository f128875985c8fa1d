"""`recsys tune` over several runs: a trial the time budget stopped runs
again, a changed table is refused, best.toml always describes bundle/, and
the table keeps whole numbers whole. Trials are faked (`_train`): what is
tested is the study, not the training."""

import logging
import os
import time

import numpy as np
import optuna
import pandas as pd
import pytest

from recsys import load_config
from recsys.kinds.base import TrainResult
from recsys.kinds.tabular import TabularKind
from recsys.tune import Choice
from recsys.tune import Range
from recsys.tune import tune

# The config's own trial, then the linear probe (`hidden_units = []`,
# Adagrad): two enqueued trials, then the sampler's.
SPACE = {
    "model.hidden_units": Choice(([], [64])),
    "train.learning_rate": Range(0.01, 0.1, log=True),
}
OWN_RATE = 0.001  # outside the range: only the config's trial has it
# A time budget, and a slow trial's seconds past it (a fast trial's far
# below it on a busy machine).
BUDGET, SLOW = 3.0, 3.2


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    rows = 300
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 20, rows),
            "item_id": rng.integers(0, 10, rows),
            "timestamp": rng.permutation(rows),
        }
    )
    frame["clicked"] = (frame["item_id"] % 2 == 0).astype(int)
    return frame


@pytest.fixture
def config():
    return load_config(
        "configs/examples/labelled.toml",
        [
            "model.features=['user_id', 'item_id']",
            "model.hidden_units=[64]",
            f"train.learning_rate={OWN_RATE}",
            "train.epochs=3",
            "train.patience=1",
        ],
    )


def _train(calls, *, slow=()):
    """A kind's `train` that records each config and scores 0.5 for the
    config's own rate, 0.9 for any other. The calls numbered in `slow`
    take `SLOW` seconds, then end their first epoch (where `tune` stops a
    trial past its budget, `_report`)."""

    def train(self, config, *args, **kwargs):
        calls.append((config, args))
        if len(calls) - 1 in slow:
            time.sleep(SLOW)
            self.epoch_end(1, {})
        if args:  # the final training, into bundle/
            os.makedirs(args[0], exist_ok=True)
            with open(os.path.join(args[0], "rate"), "w") as f:
                f.write(str(config["train"]["learning_rate"]))
        rate = config["train"]["learning_rate"]
        value = 0.5 if rate == OWN_RATE else 0.9
        return TrainResult(metrics={"validation": {"auc": value}})

    return train


def _tune(config, output, frame, **kwargs):
    return tune(
        config,
        str(output),
        space=SPACE,
        frame=frame,
        final=False,
        progress=False,
        **kwargs,
    )


def test_a_probe_stopped_by_the_time_budget_runs_on_resume(
    config, frame, tmp_path, monkeypatch
):
    # The budget ends during the linear probe (the second trial): it is
    # marked failed, and must run on resume as a killed one does.
    calls = []
    monkeypatch.setattr(TabularKind, "train", _train(calls, slow=(1,)))
    _tune(config, tmp_path, frame, trials=3, time_budget=BUDGET)
    states = pd.read_csv(tmp_path / "trials.csv")["state"].tolist()
    assert states == ["COMPLETE", "FAIL"]
    assert calls[1][0]["train"]["optimizer"] == "adagrad"
    calls.clear()
    monkeypatch.setattr(TabularKind, "train", _train(calls))
    result = _tune(config, tmp_path, frame, trials=2)
    probe = calls[0][0]
    assert probe["train"]["optimizer"] == "adagrad"
    assert probe["model"]["hidden_units"] == []
    assert result.trials["state"].tolist() == ["COMPLETE", "FAIL", "COMPLETE"]
    assert result.trials["train.optimizer"].tolist()[2] == "adagrad"


def test_a_config_trial_stopped_by_ctrl_c_runs_first_on_resume(
    config, frame, tmp_path, monkeypatch, caplog
):
    # Ctrl-C (or a kill) during the config's own trial. Before: Optuna
    # failed it on KeyboardInterrupt and no run tried it again; left
    # running by a kill, it was enqueued behind the linear probe, and a
    # run of `--trials 2` ended without judging the config.
    calls = []
    interrupted = _train(calls)

    def train(self, config, *args, **kwargs):
        if not calls:
            calls.append((config, args))
            raise KeyboardInterrupt
        return interrupted(self, config, *args, **kwargs)

    monkeypatch.setattr(TabularKind, "train", train)
    with (
        caplog.at_level(logging.WARNING, logger="recsys.tune"),
        pytest.raises(KeyboardInterrupt),
    ):
        _tune(config, tmp_path, frame, trials=2)
    assert "the same command resumes the study" in caplog.text
    calls.clear()
    monkeypatch.setattr(TabularKind, "train", _train(calls))
    result = _tune(config, tmp_path, frame, trials=2)
    rates = [c[0]["train"]["learning_rate"] for c in calls]
    assert rates[0] == OWN_RATE and len(rates) == 2
    assert calls[1][0]["train"]["optimizer"] == "adagrad"  # then the probe
    # The probe queued behind it and enqueued again is no row of its own.
    assert result.trials["state"].tolist() == ["FAIL", "COMPLETE", "COMPLETE"]


def test_a_budget_that_ends_between_trials_says_so(
    config, frame, tmp_path, monkeypatch, caplog
):
    calls = []
    monkeypatch.setattr(TabularKind, "train", _train(calls, slow=(0,)))
    with caplog.at_level(logging.INFO, logger="recsys.tune"):
        _tune(config, tmp_path, frame, trials=5, time_budget=BUDGET)
    assert len(calls) == 1
    assert "Time budget reached: 1 of 5 trial(s) run." in caplog.text


def test_a_finished_study_run_again_says_it_has_nothing_to_run(
    config, frame, tmp_path, monkeypatch, caplog
):
    calls = []
    monkeypatch.setattr(TabularKind, "train", _train(calls))
    _tune(config, tmp_path, frame, trials=2)
    calls.clear()
    with caplog.at_level(logging.INFO, logger="recsys.tune"):
        _tune(config, tmp_path, frame, trials=2)
    # It went straight to the chosen config, without a word.
    assert not calls
    assert "the 2 trial(s) asked for are already in" in caplog.text


def test_a_changed_table_is_refused_not_resumed(
    config, frame, tmp_path, monkeypatch
):
    # Its trials' values were measured on the old rows: resumed, the study
    # compared them with the new table's and kept a stale winner.
    monkeypatch.setattr(TabularKind, "train", _train([]))
    _tune(config, tmp_path, frame, trials=1)
    relabelled = frame.assign(clicked=1 - frame["clicked"])
    with pytest.raises(
        ValueError,
        match=r"another table: .* \(300 rows, other values\)\. Fix: pass "
        "another --output",
    ):
        _tune(config, tmp_path, relabelled, trials=2)
    with pytest.raises(ValueError, match=r"300 rows then, 290 now"):
        _tune(config, tmp_path, frame.iloc[:290], trials=2)
    # The same rows, their columns in another order: the same table.
    reordered = frame[frame.columns[::-1]]
    assert len(_tune(config, tmp_path, reordered, trials=2).trials) == 2


def test_a_changed_table_before_any_trial_finished_starts_afresh(
    config, frame, tmp_path, monkeypatch
):
    # A study with nothing to keep: its run stopped at its first trial's
    # error (the table's), then corrected.
    def fail(self, *args, **kwargs):
        raise ValueError("a bad label")

    monkeypatch.setattr(TabularKind, "train", fail)
    with pytest.raises(ValueError, match="a bad label"):
        _tune(config, tmp_path, frame.iloc[:290], trials=1)
    monkeypatch.setattr(TabularKind, "train", _train([]))
    result = _tune(config, tmp_path, frame, trials=1)
    assert result.trials["state"].tolist() == ["COMPLETE"]


def test_best_toml_describes_the_bundle_after_a_kill_in_the_final_training(
    config, frame, tmp_path, monkeypatch
):
    def run(trials, train):
        monkeypatch.setattr(TabularKind, "train", train)
        return tune(
            config,
            str(tmp_path),
            trials=trials,
            space=SPACE,
            frame=frame,
            progress=False,
        )

    def best_rate():
        return load_config(str(tmp_path / "best.toml"))["train"][
            "learning_rate"
        ]

    def bundle_rate():
        return float((tmp_path / "bundle" / "rate").read_text())

    run(1, _train([]))  # the config's own settings, trained into bundle/
    assert best_rate() == bundle_rate() == OWN_RATE

    calls = []

    def killed_in_the_final_training(self, config, *args, **kwargs):
        if args:
            raise KeyboardInterrupt
        return _train(calls)(self, config, *args, **kwargs)

    # The linear probe wins (0.9 against 0.5); the kill leaves the
    # earlier pair, not its settings beside the earlier bundle.
    with pytest.raises(KeyboardInterrupt):
        run(2, killed_in_the_final_training)
    assert best_rate() == bundle_rate() == OWN_RATE
    header = (tmp_path / "best.toml").read_text().splitlines()[0]
    assert "trial 0," in header
    # The same command again trains the winner into both.
    run(2, _train([]))
    assert best_rate() == bundle_rate() == 0.1
    header = (tmp_path / "best.toml").read_text().splitlines()[0]
    assert "trial 1," in header


def test_whole_numbers_beside_blanks_stay_whole_in_the_table(
    config, frame, tmp_path, monkeypatch
):
    # The linear probe's patience is its own (blank on the other rows), and
    # a killed trial reported no epoch: both printed as 5.0 and 3.0.
    monkeypatch.setattr(TabularKind, "train", _train([]))
    _tune(config, tmp_path, frame, trials=1)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    optuna.load_study(study_name="recsys-tune", storage=storage).ask()
    result = _tune(config, tmp_path, frame, trials=2)
    written = pd.read_csv(tmp_path / "trials.csv", dtype=str)
    assert written["state"].tolist() == ["COMPLETE", "FAIL", "COMPLETE"]
    for name, whole in (("train.patience", "5"), ("last_epoch", "3")):
        assert written[name].isna().any()
        assert set(written[name].dropna()) == {whole}
    assert "5.0" not in result.trials.to_string()
