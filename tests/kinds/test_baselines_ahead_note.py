"""The note a run's report adds where a baseline beats the model."""

import math

from recsys.kinds.base import baselines_ahead_note


def _note(metrics, metric):
    return " ".join(
        " ".join(baselines_ahead_note(metrics, "test", metric)).split()
    )


def test_lower_is_better_for_an_error():
    metrics = {
        "test": {"rmse": 1.0},
        "baseline_ridge": {"rmse": 0.9},
        "baseline_mean": {"rmse": 1.5},
    }
    note = _note(metrics, "rmse")
    assert note.startswith("note: ridge (0.9000) scores better than the model")
    assert "mean" not in note
    metrics["baseline_ridge"]["rmse"] = 1.1
    assert baselines_ahead_note(metrics, "test", "rmse") == []


def test_every_baseline_ahead_is_named_once():
    metrics = {
        "test": {"auc": 0.7},
        "baseline_logistic_regression": {"auc": 0.8},
        "baseline_majority": {"auc": 0.75},
        "baselines": {"logistic_regression": {"seconds": 1.0}},
    }
    assert _note(metrics, "auc").startswith(
        "note: logistic_regression (0.8000), majority (0.7500) score better"
    )


def test_a_lead_below_four_digits_shows_more():
    # HELPfull: "logistic_regression (0.9375) scores better than the model
    # (0.9375)".
    metrics = {"test": {"auc": 0.93751}, "baseline_lr": {"auc": 0.937532}}
    assert _note(metrics, "auc").startswith(
        "note: lr (0.93753) scores better than the model (0.93751) on auc"
    )


def test_a_tie_or_a_missing_metric_says_nothing():
    metrics = {"test": {"auc": 0.7}, "baseline_lr": {"auc": 0.7}}
    assert baselines_ahead_note(metrics, "test", "auc") == []
    assert baselines_ahead_note(metrics, "test", "logloss") == []
    metrics["test"]["auc"] = math.nan
    metrics["baseline_lr"]["auc"] = 0.9
    assert baselines_ahead_note(metrics, "test", "auc") == []


def test_a_classifier_below_its_class_shares_is_said():
    from recsys.kinds.base import class_shares_note

    # A text model of movie titles: AUC 0.67, log loss above the shares'.
    metrics = {
        "test": {"auc": 0.669, "logloss": 0.6397, "accuracy": 0.7166},
        "class_shares": {"auc": 0.5, "logloss": 0.6037, "accuracy": 0.7083},
    }
    note = " ".join(" ".join(class_shares_note(metrics, "test")).split())
    assert note.startswith("note: the model's log loss (0.6397) is above")
    assert "(0.6037; accuracy 0.7083, the majority class's)" in note
    metrics["test"]["logloss"] = 0.55
    assert class_shares_note(metrics, "test") == []
    assert class_shares_note({"test": {"rmse": 1.0}}, "test") == []


def test_a_perfect_held_out_score_is_said():
    from recsys.kinds.base import perfect_score_note

    assert perfect_score_note({"test": {"auc": 0.9998}}, "test") == []
    assert perfect_score_note({"test": {"rmse": 0.0}}, "test") == []
    note = " ".join(perfect_score_note({"test": {"auc": 1.0}}, "test"))
    assert note.startswith("note: auc 1.0000 on the test split, a perfect")
    multiclass = {"validation": {"accuracy": 1.0, "logloss": 0.01}}
    assert perfect_score_note(multiclass, "validation")


def test_a_regression_no_better_than_the_training_mean_is_said():
    from recsys.kinds.base import training_mean_note

    metrics = {
        "test": {"rmse": 227242.3, "mae": 118219.3},
        "training_mean": {"rmse": 225285.1, "mae": 141297.9},
    }
    note = " ".join(" ".join(training_mean_note(metrics, "test")).split())
    assert note.startswith("note: the model's RMSE (227242.3000) is no better")
    assert "(225285.1000; its MAE 141297.9000)" in note
    metrics["test"]["rmse"] = 200000.0
    assert training_mean_note(metrics, "test") == []
    assert training_mean_note({"test": {"auc": 0.5}}, "test") == []
