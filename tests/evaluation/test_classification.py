"""Classification and task metrics: hand-computed values, one clipping."""

import math

import numpy as np
import pytest

from recsys.evaluation.classification import MIN_PROBABILITY
from recsys.evaluation.classification import accuracy
from recsys.evaluation.classification import class_probabilities
from recsys.evaluation.classification import classification_metrics
from recsys.evaluation.classification import clipped_log_loss
from recsys.evaluation.classification import roc_auc
from recsys.evaluation.tasks import task_metrics


def test_classification_metrics_by_hand():
    metrics = classification_metrics([0, 1, 1], [0.2, 0.9, 0.4])
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["auc"] == 1.0
    expected = -(math.log(0.8) + math.log(0.9) + math.log(0.4)) / 3
    assert metrics["logloss"] == pytest.approx(expected, rel=1e-12)
    assert metrics["num_examples"] == 3


def test_one_column_and_two_columns_score_alike():
    p = np.array([0.1, 0.7, 0.55, 0.2])
    labels = [0, 1, 0, 1]
    two = np.stack([1 - p, p], axis=1)
    assert classification_metrics(labels, p) == classification_metrics(
        labels, two
    )
    assert class_probabilities(p[:, None]).shape == (4, 2)


def test_saturated_probabilities_cost_the_clip_not_infinity():
    loss = clipped_log_loss([0, 1], [1.0, 1.0])
    # Row 0: p(class 0) = 1e-7 / (1 + 1e-7); row 1: 1 / (1 + 1e-7).
    expected = (
        -math.log(MIN_PROBABILITY / (1 + MIN_PROBABILITY))
        + math.log(1 + MIN_PROBABILITY)
    ) / 2
    assert loss == pytest.approx(expected, rel=1e-9)


def test_auc_ranks_unclipped_scores():
    # Clipping would tie 1.0 and 1 - 1e-9; unclipped they stay ordered.
    assert roc_auc([0, 1], [1 - 1e-9, 1.0]) == 1.0


def test_a_tie_at_one_half_is_class_zero():
    assert accuracy([0, 1], [0.5, 0.5]) == 0.5
    assert accuracy([0], [0.5]) == 1.0


def test_multiclass_metrics_by_hand():
    probabilities = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]]
    )
    labels = [0, 2, 0]
    metrics = task_metrics("multiclass", labels, probabilities)
    assert list(metrics) == ["accuracy", "logloss", "num_examples"]
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    expected = -(math.log(0.7) + math.log(0.6) + math.log(0.2)) / 3
    assert metrics["logloss"] == pytest.approx(expected, rel=1e-9)


def test_binary_task_metrics_are_the_classification_metrics():
    labels, p = [0, 1, 1, 0], [0.1, 0.8, 0.4, 0.3]
    metrics = task_metrics("binary", labels, p)
    # The order `recsys train` prints.
    assert list(metrics) == ["auc", "logloss", "accuracy", "num_examples"]
    assert metrics == classification_metrics(labels, p)


def test_regression_metrics_by_hand():
    metrics = task_metrics("regression", [1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
    assert list(metrics) == ["rmse", "mae", "num_examples"]
    assert metrics["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert metrics["mae"] == pytest.approx(1.0)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="`task` must be one of"):
        task_metrics("ranking", [1], [1])


def test_multiclass_auc_averages_the_classes_present():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=60)
    labels = rng.integers(0, 4, 60)
    # Every class present: scikit-learn's one-vs-rest macro average.
    expected = roc_auc_score(labels, probabilities, multi_class="ovr")
    assert roc_auc(labels, probabilities) == pytest.approx(expected)
    # Class 3 absent from the labels (a small test split of a skewed label):
    # the average of the three others, not NaN.
    seen = labels % 3
    expected = np.mean(
        [
            roc_auc_score(seen == c, probabilities[:, c] / probabilities.sum(1))
            for c in range(3)
        ]
    )
    assert roc_auc(seen, probabilities) == pytest.approx(expected)
    assert math.isnan(roc_auc([1, 1], [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]))
