"""The paired standard error matches the spread of a difference over many
carves drawn alike, for each metric it covers."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from recsys.evaluation.classification import accuracy
from recsys.evaluation.classification import clipped_log_loss
from recsys.evaluation.classification import roc_auc
from recsys.evaluation.paired import paired_standard_error


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _binary(rng, rows=300):
    # Two models that share the carve's hard rows: a common noise term.
    labels = (rng.random(rows) < 0.3).astype(np.int64)
    shared = rng.normal(size=rows)
    first = _sigmoid(1.5 * labels - 0.8 + shared)
    second = _sigmoid(1.7 * labels - 0.8 + shared + 0.4 * rng.normal(size=rows))
    return labels, first, second


def _multiclass(rng, rows=300):
    labels = rng.integers(0, 3, rows)
    shared = rng.normal(size=(rows, 3))
    one_hot = np.eye(3)[labels]

    def softmax(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    first = softmax(one_hot + shared)
    second = softmax(1.2 * one_hot + shared + 0.3 * rng.normal(size=(rows, 3)))
    return labels, first, second


def _regression(rng, rows=300):
    labels = rng.normal(size=rows)
    shared = rng.normal(size=rows)
    first = labels + shared
    second = labels + 0.9 * shared + 0.3 * rng.normal(size=rows)
    return labels, first, second


def _rmse(labels, predictions):
    return float(np.sqrt(np.mean((predictions - labels) ** 2)))


def _mae(labels, predictions):
    return float(np.mean(np.abs(predictions - labels)))


@pytest.mark.parametrize(
    "metric, score, draw",
    [
        ("auc", roc_auc, _binary),
        ("logloss", clipped_log_loss, _binary),
        ("accuracy", accuracy, _binary),
        ("auc", roc_auc, _multiclass),
        ("logloss", clipped_log_loss, _multiclass),
        ("rmse", _rmse, _regression),
        ("mae", _mae, _regression),
    ],
)
def test_paired_error_matches_the_spread_of_the_difference(metric, score, draw):
    rng = np.random.default_rng(0)
    differences, errors = [], []
    for _ in range(250):
        labels, first, second = draw(rng)
        differences.append(score(labels, second) - score(labels, first))
        errors.append(paired_standard_error(metric, labels, first, second))
    assert np.mean(errors) == pytest.approx(np.std(differences), rel=0.15)


def test_paired_auc_error_is_far_below_either_auc_error():
    # What the pairing buys: the shared noise cancels in the difference.
    rng = np.random.default_rng(1)
    aucs, errors = [], []
    for _ in range(300):
        labels, first, second = _binary(rng)
        aucs.append(roc_auc_score(labels, first))
        errors.append(paired_standard_error("auc", labels, first, second))
    assert np.mean(errors) < 0.5 * np.std(aucs)


def test_a_metric_without_rows_or_one_class_has_no_paired_error():
    labels = np.zeros(10, np.int64)
    scores = np.linspace(0.1, 0.9, 10)
    assert paired_standard_error("auc", labels, scores, scores[::-1]) is None
    assert paired_standard_error("hr@10", labels, scores, scores) is None
