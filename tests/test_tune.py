"""`recsys tune`: finds a planted better setting on the validation carve
only, resumes a killed study, and writes a config `recsys train` reads."""

import json
import logging
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from recsys import load_config
from recsys.kinds.tabular import TabularKind
from recsys.kinds.two_tower import TwoTowerKind
from recsys.tune import Choice
from recsys.tune import OutOfTime
from recsys.tune import Range
from recsys.tune import _catalog_and_repeats
from recsys.tune import _chosen_trial
from recsys.tune import _out_of_time_in_one_line
from recsys.tune import _report
from recsys.tune import _score
from recsys.tune import _write_influence
from recsys.tune import maturing_pruner
from recsys.tune import objective_metric
from recsys.tune import standard_error
from recsys.tune import tune

# 1e-6 cannot learn the label in a few epochs: the planted bad setting.
SPACE = {"train.learning_rate": Choice((1e-6, 0.05))}
# The table a study's trials score (`table_identity`), where none is read.
TABLE = {"rows": 1, "fingerprint": "0"}


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


def test_trials_csv_holds_each_trial_as_it_finishes(
    table, tmp_path, monkeypatch
):
    # Written only at the end, a killed search's table showed none of it.
    original = TabularKind.train
    calls = []

    def killed_at_the_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TabularKind, "train", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        tune(
            _config(table),
            str(tmp_path),
            trials=2,
            space=SPACE,
            final=False,
            progress=False,
        )
    written = pd.read_csv(tmp_path / "trials.csv")
    assert written["state"].tolist() == ["COMPLETE"]


def test_a_killed_probe_is_enqueued_again_and_the_sampler_moves_on(
    tmp_path, monkeypatch
):
    # The config's own settings were running when the process died: they
    # must still be judged (the sampler would not draw them again).
    import recsys.tune
    from recsys.tune import _open_study

    seeds = []
    sampler = recsys.tune._sampler

    def spy(optuna, space, seed):
        seeds.append(seed)
        return sampler(optuna, space, seed)

    monkeypatch.setattr(recsys.tune, "_sampler", spy)
    config = {"train": {"seed": 7}}
    args = (optuna, str(tmp_path), config, SPACE, "auc", "maximize", TABLE)
    study = _open_study(*args)
    study.enqueue_trial(
        {"train.learning_rate": 1e-6}, user_attrs={"config": True}
    )
    study.ask()  # running when killed
    again = _open_study(*args)
    states = [(t.state.name, t.user_attrs.get("config")) for t in again.trials]
    assert states == [("FAIL", True), ("WAITING", True)]
    assert again.trials[1].system_attrs["fixed_params"] == {
        "train.learning_rate": 1e-6
    }
    # Seeded past the stored trials: a resumed run draws new settings.
    assert seeds == [7, 9]


def test_a_study_that_finished_no_trial_does_not_block_a_corrected_run(
    tmp_path,
):
    from recsys.tune import _open_study

    config = {"train": {"seed": 0}}
    study = _open_study(
        optuna, str(tmp_path), config, SPACE, "rmse", "minimize", TABLE
    )
    study.ask()  # the wrong metric's run stopped at its first trial
    fixed = _open_study(
        optuna, str(tmp_path), config, SPACE, "auc", "maximize", TABLE
    )
    assert fixed.trials == [] and fixed.user_attrs["metric"] == "auc"


def test_a_metric_or_budget_the_run_cannot_use_is_refused_before_training(
    table, tmp_path, monkeypatch
):
    def fail(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(TabularKind, "train", fail)
    with pytest.raises(ValueError, match=r"--metric 'hr@10' is not .*\['auc'"):
        tune(_config(table), str(tmp_path), metric="hr@10", progress=False)
    with pytest.raises(ValueError, match="--time-budget must be a positive"):
        tune(_config(table), str(tmp_path), time_budget=0, progress=False)
    assert not (tmp_path / "study.db").exists()


@pytest.fixture(scope="module")
def interactions(tmp_path_factory):
    """Users who each keep to one of 5 item groups."""
    rng = np.random.default_rng(0)
    rows = 1200
    users = rng.integers(0, 60, rows)
    frame = pd.DataFrame(
        {
            "user_id": users,
            "item_id": (users % 5) * 6 + rng.integers(0, 6, rows),
            "timestamp": rng.permutation(rows),
        }
    )
    path = tmp_path_factory.mktemp("tune") / "interactions.csv"
    frame.to_csv(path, index=False)
    return path


def _two_tower_config(interactions, *overrides):
    return load_config(
        "configs/examples/interactions.toml",
        [
            f'data.source="{interactions}"',
            "model.embedding_dim=8",
            "train.batch_size=128",
            "evaluate.ks=[5]",
            "evaluate.baselines=[]",
            *overrides,
        ],
    )


def test_two_tower_scores_each_epoch_and_a_report_can_stop_it(interactions):
    seen = []

    def report(epoch, scores):
        seen.append((epoch, scores["hr@5_filtered"]))
        if epoch == 2:
            raise optuna.TrialPruned("planted")

    kind = TwoTowerKind()
    kind.epoch_end = report
    config = _two_tower_config(
        interactions, "train.epochs=4", 'evaluate.split="validation"'
    )
    with pytest.raises(optuna.TrialPruned, match="planted"):
        kind.train(config, progress=False, write=False)
    # Epochs 1 and 2 scored on the validation carve; training stopped there.
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert all(0.0 <= value <= 1.0 for _, value in seen)


def test_a_two_tower_trial_is_timed_while_early_stopping_chooses_its_epochs(
    interactions,
):
    # `recsys init` writes `train.early_stopping = true`: the search for the
    # epochs ran without the trial's clock, past any time budget, and the
    # trial was stopped only in the training after it (a fault found by an
    # outside audit).
    config = _two_tower_config(
        interactions,
        "train.epochs=4",
        "train.early_stopping=true",
        "train.patience=4",
        'evaluate.split="validation"',
    )
    # Stopped at the search's second epoch. The search is the trial's
    # training (it scores the evaluated carve and keeps its best epoch's
    # weights): each epoch reports the best HR so far, never lower.
    seen = _stopped_at_epoch_2(TwoTowerKind(), config)
    assert [epoch for epoch, _ in seen] == [1, 2]
    first, second = (scores["hr@5_filtered"] for _, scores in seen)
    assert 0.0 <= first <= second <= 1.0


def _stopped_at_epoch_2(kind, config):
    """What `kind.epoch_end` saw in a run of `config` it stopped for time
    at epoch 2."""
    seen = []

    def report(epoch, scores):
        seen.append((epoch, scores))
        if epoch == 2:
            raise OutOfTime("planted")

    kind.epoch_end = report
    with pytest.raises(OutOfTime, match="planted"):
        kind.train(config, progress=False, write=False)
    return seen


def test_a_tabular_trial_reports_each_epoch_and_can_be_stopped(table):
    config = load_config(
        "configs/examples/labelled.toml",
        [
            f'data.source="{table}"',
            "model.features=['user_id', 'item_id']",
            "train.epochs=4",
            "train.patience=0",
            'evaluate.split="validation"',
            "evaluate.baselines=[]",
        ],
    )
    # Its validation loss is not the trial's metric: nothing to report.
    assert _stopped_at_epoch_2(TabularKind(), config) == [(1, {}), (2, {})]


def test_an_epoch_without_the_metric_is_not_reported_but_timed():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    _report(trial, "auc", 1, {})
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {}
    _report(trial, "auc", 2, {"auc": 0.7})
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {
        2: 0.7
    }


def test_a_trial_below_the_median_at_an_epoch_is_pruned():
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1),
    )
    first = study.ask()
    first.report(0.5, 1)
    study.tell(first, 0.6)
    _report(study.ask(), "hr@5_filtered", 1, {"hr@5_filtered": 0.7})
    with pytest.raises(optuna.TrialPruned, match="after epoch 1"):
        _report(study.ask(), "hr@5_filtered", 1, {"hr@5_filtered": 0.1})
    # A metric the run does not compute: a clear error when the trial ends.
    with pytest.raises(ValueError, match="--metric"):
        _score({"hr@5_filtered": 0.1}, "auc")


def test_a_slow_starter_is_judged_by_the_median_only_from_half_its_epochs():
    study = optuna.create_study(
        direction="maximize", pruner=maturing_pruner(startup_trials=1)
    )
    # Earlier trials' values at epochs 1 and 6: a lower quartile of 0.3 at
    # epoch 1, a median of 0.5 at both.
    for values in ([0.1, 0.1], [0.3, 0.3], [0.5, 0.5], [0.6, 0.6], [0.7, 0.7]):
        trial = study.ask()
        trial.report(values[0], 1)
        trial.report(values[1], 6)
        study.tell(trial, values[1])

    def trial_of(epochs):
        trial = study.ask()
        trial.set_user_attr("epochs", epochs)
        return trial

    # Below the median but above the lower quartile at epoch 1 of 12: runs on.
    slow = trial_of(12)
    _report(slow, "hr@5_filtered", 1, {"hr@5_filtered": 0.4})
    # Below the median at epoch 6 of 12, half its epochs: stops.
    with pytest.raises(optuna.TrialPruned, match="after epoch 6"):
        _report(slow, "hr@5_filtered", 6, {"hr@5_filtered": 0.45})
    # Clearly bad (below the lower quartile) stops at epoch 1 of 12.
    with pytest.raises(optuna.TrialPruned, match="after epoch 1"):
        _report(trial_of(12), "hr@5_filtered", 1, {"hr@5_filtered": 0.2})
    # Epoch 1 of 2 is half: the median already.
    with pytest.raises(optuna.TrialPruned, match="after epoch 1"):
        _report(trial_of(2), "hr@5_filtered", 1, {"hr@5_filtered": 0.4})


def test_a_trial_early_stopping_ended_stands_at_its_value_on_later_epochs():
    # An outside audit's study: a trial above three of five completed ones
    # was pruned at epoch 6, where only the two best had reported (the
    # others had stopped at their best epoch plus `patience`).
    def epoch_6_of_20(early_stopped):
        study = optuna.create_study(
            direction="maximize", pruner=maturing_pruner(startup_trials=1)
        )
        for value, last in ((0.826, 4), (0.833, 3), (0.834, 6), (0.840, 4)):
            trial = study.ask()
            for epoch in range(1, last + 1):
                trial.report(value - 0.01 * (last - epoch), epoch)
            if early_stopped:
                trial.set_user_attr("best_epoch", max(last - 2, 1))
            study.tell(trial, value)
        trial = study.ask()
        trial.report(0.849, 6)
        study.tell(trial, 0.849)
        running = study.ask()
        running.set_user_attr("epochs", 20)  # epoch 6: the lower quartile
        for epoch in range(1, 7):
            _report(running, "hr@10", epoch, {"hr@10": 0.8367})

    epoch_6_of_20(early_stopped=True)  # above 3 of 5: runs on
    # Trials that ran all their epochs (no best epoch) never stand in for
    # epochs they did not run: there the two that reached 6 decide.
    with pytest.raises(optuna.TrialPruned, match="after epoch 6"):
        epoch_6_of_20(early_stopped=False)


@pytest.mark.parametrize(
    "catalog, metric",
    [
        (None, "hr@100_filtered"),
        (9066, "hr@100_filtered"),
        (999, "hr@50_filtered"),
        (132, "hr@10_filtered"),
        (30, "hr@10_filtered"),  # below every k: the smallest
    ],
)
def test_retrieval_is_judged_at_a_k_the_catalog_leaves_informative(
    interactions, catalog, metric
):
    config = _two_tower_config(interactions, "evaluate.ks=[100, 10, 50]")
    assert objective_metric(config, catalog) == metric
    # Where users come back to their items, what they come back to counts.
    repeated = metric.replace("_filtered", "")
    assert objective_metric(config, catalog, repeat_share=0.5) == repeated
    assert objective_metric(config, catalog, repeat_share=0.1) == metric


def test_repeats_are_counted_on_the_carve_a_trial_is_scored_on(interactions):
    # Each user rates five items three times each at first, then fifteen
    # new ones: a third of all rows repeat a pair, none of the validation
    # carve's held-out rows (each user's latest training rows).
    rows = [
        (user, step // 3 if step < 15 else 100 + 30 * user + step, step)
        for user in range(40)
        for step in range(30)
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    assert frame.duplicated(["user_id", "item_id"]).mean() == 1 / 3
    config = _two_tower_config(interactions)
    catalog, share = _catalog_and_repeats(config, frame)
    assert (catalog, share) == (5 + 40 * 15, 0.0)
    assert objective_metric(config, catalog, share) == "hr@5_filtered"
    # Users who come back to their items in the carve: judged unfiltered.
    again = frame.assign(item_id=np.where(frame.timestamp % 2, 1, 2))
    _, share = _catalog_and_repeats(config, again)
    assert share == 1.0
    # Below the catalog of 2: HR@5 would be 1 for any model.
    assert objective_metric(config, 2, share) == "hr@1"


def test_a_small_catalog_is_judged_on_at_least_five_items(interactions):
    from recsys.evaluation.retrieval import evaluated_ks

    config = _two_tower_config(interactions, "evaluate.ks=[1, 5, 10]")
    assert objective_metric(config, 32) == "hr@5_filtered"
    assert objective_metric(config, 400) == "hr@10_filtered"
    # 5 items and the default ks: HR@10 was 1 for every epoch and trial
    # (early stopping kept epoch 1); the k below the catalog is evaluated.
    config = _two_tower_config(interactions, "evaluate.ks=[10, 50, 100]")
    assert objective_metric(config, 5) == "hr@4_filtered"
    assert evaluated_ks([10, 50, 100], 5) == (4, 10, 50, 100)
    assert evaluated_ks([10, 50, 100], 9066) == (10, 50, 100)


def test_a_catalog_below_every_k_is_tuned_on_the_k_training_adds(
    interactions, tmp_path
):
    # 4 items and the default ks: tune refused its own default metric
    # (HR@3, which training evaluates beside evaluate.ks) before any trial.
    frame = pd.read_csv(interactions)
    frame["item_id"] %= 4
    config = _two_tower_config(
        interactions, "evaluate.ks=[10, 50, 100]", "train.epochs=1"
    )
    result = tune(
        config,
        str(tmp_path),
        trials=1,
        frame=frame,
        final=False,
        progress=False,
    )
    assert result.metric.startswith("hr@3")
    assert 0.0 < result.best_value < 1.0


def test_a_two_tower_study_tries_its_config_then_without_history(
    interactions, tmp_path
):
    space = {
        "model.history_length": Choice((0, 5)),
        "model.history_encoder": Choice(("mean", "gru")),
        "train.learning_rate": Range(0.05, 0.2, log=True),
    }
    config = _two_tower_config(
        interactions,
        "train.epochs=2",
        "model.history_length=5",
        'model.history_encoder="gru"',
    )
    result = tune(
        config,
        str(tmp_path),
        trials=2,
        space=space,
        final=False,
        progress=False,
    )
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert trials["model.history_length"].tolist() == [5, 0]
    # Without a history the encoder is "mean": a config that validates.
    assert trials["model.history_encoder"].tolist() == ["gru", "mean"]
    assert trials["train.learning_rate"].tolist() == [0.1, 0.1]
    # 30 items: the only k; users who keep to 6 items repeat them.
    assert result.metric == "hr@5"
    # Each epoch was reported; the last one is the trial's value.
    assert trials["last_epoch"].tolist() == [2, 2]
    np.testing.assert_allclose(trials["last_epoch_value"], trials["value"])
    if result.best_params["model.history_length"] == 0:
        assert result.best_params["model.history_encoder"] == "mean"
    load_config(str(tmp_path / "best.toml"))


def test_an_early_stopped_two_tower_trial_reports_its_last_epoch(
    interactions, tmp_path
):
    config = _two_tower_config(
        interactions, "train.epochs=3", "train.early_stopping=true"
    )
    space = {"train.learning_rate": Range(0.05, 0.2, log=True)}
    tune(
        config,
        str(tmp_path),
        trials=1,
        space=space,
        final=False,
        progress=False,
    )
    trial = pd.read_csv(tmp_path / "trials.csv").iloc[0]
    # The search's epochs are reported, the last with the best so far: the
    # trial's value (the run keeps the best epoch's weights).
    assert trial["last_epoch"] >= trial["best_epoch"]
    assert trial["last_epoch_value"] == pytest.approx(trial["value"])


def test_queued_trials_beyond_the_count_are_not_rows_of_the_table(
    interactions, tmp_path
):
    # The config, then without its history: two queued, one run.
    config = _two_tower_config(
        interactions, "train.epochs=1", "model.history_length=5"
    )
    space = {
        "model.history_length": Choice((0, 5)),
        "train.learning_rate": Range(0.05, 0.2, log=True),
    }
    tune(
        config,
        str(tmp_path),
        trials=1,
        space=space,
        final=False,
        progress=False,
    )
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert trials["state"].tolist() == ["COMPLETE"]


def test_the_time_budget_stops_a_running_trial_once_another_has_finished():
    study = optuna.create_study(direction="maximize")
    past = time.monotonic() - 1
    first = study.ask()
    # The first trial runs on: a budget shorter than a trial still yields one.
    _report(first, "hr@5_filtered", 1, {"hr@5_filtered": 0.4}, deadline=past)
    study.tell(first, 0.4)
    with pytest.raises(OutOfTime, match="after epoch 2"):
        _report(study.ask(), "hr@5_filtered", 2, {"hr@5_filtered": 0.5}, past)
    future = time.monotonic() + 60
    _report(study.ask(), "hr@5_filtered", 1, {"hr@5_filtered": 0.5}, future)


def test_a_trial_stopped_for_time_is_one_line_not_a_traceback(caplog):
    def objective(trial):
        if trial.number == 1:
            raise OutOfTime("time budget reached after epoch 2")
        if trial.number == 2:
            raise ValueError("a real failure")
        return 0.5

    study = optuna.create_study(direction="maximize")
    optuna.logging.enable_propagation()  # to pytest's caplog
    try:
        # The note is INFO on `recsys.tune`, whatever level another test
        # (the CLI's --quiet) left `recsys` at.
        with (
            caplog.at_level(logging.INFO),
            caplog.at_level(logging.INFO, logger="recsys.tune"),
            _out_of_time_in_one_line(),
            # As in `tune`: any other error ends the search, and its caller
            # (the CLI's one line) says it, not Optuna's traceback.
            pytest.raises(ValueError, match="a real failure"),
        ):
            study.optimize(objective, n_trials=3, catch=(OutOfTime,))
    finally:
        optuna.logging.disable_propagation()
    text = caplog.text
    assert "Trial 1 stopped: time budget reached after epoch 2" in text
    assert "Trial 1 failed" not in text and "OutOfTime" not in text
    assert "Trial 2 failed" not in text and "Traceback" not in text
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "FAIL"]


def test_standard_error_of_auc_and_hit_rate_matches_a_simulation():
    from sklearn.metrics import roc_auc_score

    # Scores of 100 positives and 100 negatives at AUC 0.9 (binormal: the
    # positives' mean 1.8 standard deviations higher), drawn 2,000 times.
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(100), np.zeros(100)]
    aucs = [
        roc_auc_score(labels, rng.normal(labels * 1.8125, 1.0))
        for _ in range(2000)
    ]
    simulated = float(np.std(aucs))
    formula = standard_error("auc", float(np.mean(aucs)), 200)
    assert formula == pytest.approx(simulated, rel=0.1)
    hits = rng.random((2000, 500)) < 0.3
    assert standard_error("hr@10", 0.3, 500) == pytest.approx(
        float(hits.mean(axis=1).std()), rel=0.1
    )
    # No closed form, or nothing to count: no margin.
    assert standard_error("rmse", 0.9, 500) == 0.0
    assert standard_error("auc", 0.9, None) == 0.0


@pytest.mark.parametrize(
    "values, chosen",
    [
        ((0.748, 0.750, 0.700), 0),  # within one standard error: the config
        ((0.748, 0.850, 0.700), 1),  # far above it: the best trial
        ((0.748, 0.700, 0.650), 0),  # the config is the best anyway
    ],
)
def test_the_config_stays_unless_a_trial_beats_it_by_a_standard_error(
    values, chosen, tmp_path
):
    # No predictions kept (a retrieval study): one standard error.
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 0}, user_attrs={"config": True})

    def objective(trial):
        trial.suggest_int("x", 0, 10)
        trial.set_user_attr("examples", 140)  # SwissLabor's carve
        return values[trial.number]

    study.optimize(objective, n_trials=len(values))
    assert _chosen_trial(study, "auc", str(tmp_path)).number == chosen


@pytest.mark.parametrize("gain, chosen", [(0.1, 1), (0.02, 0)])
def test_kept_predictions_compare_a_trial_with_the_config_row_by_row(
    gain, chosen, tmp_path
):
    # Two models that share most of their noise (the same carve's hard
    # rows): a gain of 0.019 AUC is below one standard error of either AUC
    # (0.023 on 400 rows) but about four of their difference; 0.003 is
    # below two.
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.5).astype(np.int32)
    shared = rng.normal(size=400)
    config_scores = labels + shared
    predictions = [config_scores, config_scores + gain * labels]
    predictions[1] = predictions[1] + 0.2 * rng.normal(size=400)
    values = [roc_auc_score(labels, p) for p in predictions]
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 0}, user_attrs={"config": True})

    def objective(trial):
        trial.suggest_int("x", 0, 10)
        trial.set_user_attr("examples", 400)
        _write_influence(
            str(tmp_path),
            trial.number,
            "auc",
            labels,
            predictions[trial.number],
        )
        return values[trial.number]

    study.optimize(objective, n_trials=2)
    # Above the config either way, by less than one unpaired error.
    assert 0 < values[1] - values[0] < standard_error("auc", values[0], 400)
    assert _chosen_trial(study, "auc", str(tmp_path)).number == chosen


def test_the_printed_choice_says_when_the_config_was_kept_over_a_trial():
    from recsys.cli import tune_choice
    from recsys.tune import TuneResult

    def result(values, kept, metric="rmse"):
        return TuneResult(
            metric=metric,
            best_params={"train.learning_rate": 0.001},
            best_value=values[0],
            trials=pd.DataFrame({"trial": range(3), "value": values}),
            test_metrics={},
            bundle=None,
            config={},
            kept_config=kept,
        )

    # The config (trial 0) kept over a lower RMSE within the margin.
    assert tune_choice(result([3.5197, 3.4161, 3.3781], kept=True)) == (
        "kept the config's own settings (validation rmse 3.5197; the best "
        "trial's 3.3781 is within the margin a trial must win by): "
        "train.learning_rate = 0.001"
    )
    # The config kept because it was the best: said plainly.
    assert tune_choice(result([0.8, 0.7, 0.75], True, "auc")).startswith(
        "best validation auc: 0.8000 with"
    )
    # Settings the chosen ones leave unread are not choices (blank in
    # trials.csv): an MLP's cross layers.
    mlp = result([0.8, 0.7, 0.75], True, "auc")
    mlp.best_params = {
        "model.interaction": "mlp",
        "model.num_cross_layers": 2,
    }
    assert tune_choice(mlp).endswith("with model.interaction = mlp")


def test_a_pruned_trial_has_no_value_in_the_table():
    from recsys.tune import _trials_table

    study = optuna.create_study(direction="maximize")

    def objective(trial):
        trial.suggest_categorical("train.learning_rate", [0.1])
        trial.report(0.9, 0)
        if trial.number == 1:
            raise optuna.TrialPruned()
        return 0.8

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=2)
    space = {"train.learning_rate": Choice((0.1,))}
    table = _trials_table(study, space, {"model": {}})
    # Optuna keeps a pruned trial's last epoch as its value: an epoch on
    # the way, shown as such, not a value a choice could compare.
    assert table["state"].tolist() == ["COMPLETE", "PRUNED"]
    assert table["value"].tolist()[0] == 0.8
    assert pd.isna(table["value"].tolist()[1])
    assert table["last_epoch_value"].tolist() == [0.9, 0.9]


def _fake_train(calls, value=0.7):
    """A kind's `train` that records each config and scores `value`."""
    from recsys.kinds.base import TrainResult

    def train(self, config, *args, **kwargs):
        calls.append((config, args))
        return TrainResult(metrics={"validation": {"auc": value}})

    return train


def test_the_config_own_values_outside_the_space_are_its_first_trial(
    table, tmp_path, monkeypatch
):
    # The config's embedding size is not a choice, its rate lies below the
    # range and its dropout of 0 is off a log scale: the first trial (the
    # config's own, kept unless beaten) must still train with all three.
    calls = []
    monkeypatch.setattr(TabularKind, "train", _fake_train(calls))
    config = _config(table)
    config["model"].update(embedding_dim=8, dropout=0.0)
    config["train"]["learning_rate"] = 0.001
    space = {
        "model.embedding_dim": Choice((16, 32)),
        "train.learning_rate": Range(0.01, 0.1, log=True),
        "model.dropout": Range(0.1, 0.5, log=True),
    }
    own = {
        "model.embedding_dim": 8,
        "train.learning_rate": 0.001,
        "model.dropout": 0.0,
    }

    def run(trials):
        return tune(
            config,
            str(tmp_path),
            trials=trials,
            space=space,
            final=False,
            progress=False,
        )

    result = run(2)
    first = calls[0][0]
    assert (
        first["model"]["embedding_dim"],
        first["train"]["learning_rate"],
        first["model"]["dropout"],
    ) == (8, 0.001, 0.0)
    row = pd.read_csv(tmp_path / "trials.csv").iloc[0]
    assert {name: row[name] for name in own} == own
    # Every trial scored the same: the config's own settings are kept, and
    # they are what best.toml holds.
    assert result.kept_config
    assert result.best_params == own
    best = load_config(str(tmp_path / "best.toml"))
    assert best["model"]["embedding_dim"] == 8
    assert best["train"]["learning_rate"] == 0.001
    assert best["model"]["dropout"] == 0.0
    # The widened space is the study's: a resumed run goes on in it.
    assert len(run(3).trials) == 3


def _hold_lock(output):
    """Another process holding `output`'s lock, as a running tune would."""
    import subprocess
    import sys

    from recsys.storage.output_lock import lock_path

    script = (
        "import fcntl, os, sys\n"
        f"fd = os.open({lock_path(output)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, f'{os.getpid()} recsys tune\\n'.encode())\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def test_a_second_run_on_the_same_output_is_refused_at_once(
    table, tmp_path, monkeypatch
):
    import fcntl
    import os

    from recsys.storage.output_lock import OutputLockedError
    from recsys.storage.output_lock import lock_path

    output = str(tmp_path / "study")
    calls = []
    monkeypatch.setattr(TabularKind, "train", _fake_train(calls))
    holder = _hold_lock(output)
    try:
        with pytest.raises(
            OutputLockedError,
            match=rf"Another recsys process is writing .*pid {holder.pid}, "
            "recsys tune",
        ):
            tune(_config(table), output, trials=1, space=SPACE, progress=False)
        assert calls == [] and not os.path.exists(output)
    finally:
        holder.kill()  # killed: its lock file stays, its lock does not
        holder.communicate()
    assert os.path.exists(lock_path(output))

    def locked():
        fd = os.open(lock_path(output), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def train(self, config, *args, **kwargs):
        # Held over every trial and the final training, whose bundle has
        # a lock of its own (no deadlock).
        assert locked()
        return _fake_train(calls)(self, config, *args, **kwargs)

    monkeypatch.setattr(TabularKind, "train", train)
    tune(_config(table), output, trials=1, space=SPACE, progress=False)
    bundle = os.path.join(output, "bundle")
    assert [args for _, args in calls] == [(), (bundle,)]
    assert not os.path.exists(lock_path(output))


def test_an_output_holding_other_files_is_refused_before_any_work(
    table, tmp_path, monkeypatch
):
    def fail(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(TabularKind, "train", fail)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious\n")
    (mine / "trials.csv").write_text("my,own\n")
    with pytest.raises(ValueError, match="not a recsys tune study.*Fix:"):
        tune(_config(table), str(mine), trials=1, space=SPACE, progress=False)
    assert (mine / "trials.csv").read_text() == "my,own\n"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "trials.csv"]
    from recsys.tune import _check_output

    # A user's own SQLite file named study.db is not a study of ours.
    other = optuna.storages.RDBStorage(f"sqlite:///{mine / 'study.db'}")
    optuna.create_study(study_name="theirs", storage=other)
    with pytest.raises(ValueError, match="not a recsys tune study"):
        _check_output(str(mine))
    # A study begun before tune marked its directory is ours: it resumes.
    optuna.create_study(study_name="recsys-tune", storage=other)
    _check_output(str(mine))
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a directory"):
        _check_output(str(tmp_path / "file"))


def test_the_cli_prints_the_test_metrics_at_the_top_of_its_json(
    table, tmp_path, capsys, monkeypatch
):
    from recsys.cli import main

    overrides = [
        f'data.source="{table}"',
        "model.features=['user_id', 'item_id']",
        "train.epochs=1",
        "train.refit=false",
        "evaluate.baselines=[]",
    ]
    argv = ["tune", "configs/examples/labelled.toml", "--trials", "1", "-q"]
    argv += ["-o", str(tmp_path / "study"), "--json"]
    for override in overrides:
        argv += ["--set", override]
    assert main(argv) == 0
    done = json.loads(capsys.readouterr().out)
    metrics = json.loads((tmp_path / "study/bundle/metrics.json").read_text())
    # Was metrics.json whole under "test" (its AUC at .test.test.auc).
    assert done["test"] == metrics["test"] and "auc" in done["test"]
    assert done["metrics"] == metrics
    assert done["bundle"] == str(tmp_path / "study/bundle")
    version = json.loads((tmp_path / "study/bundle/manifest.json").read_text())[
        "version"
    ]

    # The same command again: the chosen trial's bundle stands (it was
    # trained once more, for minutes on a large table).
    def retrained(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(TabularKind, "train", retrained)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == done
    manifest = json.loads((tmp_path / "study/bundle/manifest.json").read_text())
    assert manifest["version"] == version
    # Another config for the same trial (`--set` of a key outside the
    # study's identity, or an edited best.toml): trained again.
    (tmp_path / "study/best.toml").write_text("# edited\n")
    with pytest.raises(AssertionError, match="trained again"):
        main(argv)
