"""The standard error of a difference between two models on the same rows.

Two models scored on one validation carve share its luck: a hard row is
hard for both. Their metrics' difference is far less noisy than either
metric, and its standard error follows from each row's influence on the
metric (the metric's change, to first order, when that row's weight
changes): the difference of the two models' influences, row by row, summed
in squares. For AUC that is DeLong, DeLong and Clarke-Pearson's (1988)
variance; for a mean of per-row losses the variance of their differences.
`recsys tune` keeps the config's own settings unless a trial beats them by
more than two such errors (`recsys.tune`).
"""

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from recsys.evaluation.classification import class_probabilities
from recsys.evaluation.classification import clipped_probabilities


def row_influence(
    metric: str, labels: ArrayLike, predictions: ArrayLike
) -> np.ndarray | None:
    """Each row's first-order contribution to `metric`'s deviation.

    The metric's sampling variance is about the sum of their squares.

    Args:
        metric: str. `"auc"`, `"logloss"`, `"accuracy"`, `"rmse"` or
            `"mae"`, as `task_metrics` names them.
        labels: array `(n,)`: values (regression) or class indices.
        predictions: array `(n,)` of values or positive-class
            probabilities, or `(n, num_classes)` of class probabilities.

    Returns:
        float64 array `(n,)`, or None for another metric or an AUC of one
        class.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if metric in ("rmse", "mae"):
        errors = np.asarray(predictions, np.float64).reshape(n) - labels
        if metric == "mae":
            return _mean_influence(np.abs(errors))
        squared = errors * errors
        # sqrt(mse): the influence of the mean, times d sqrt(x) / dx.
        return _mean_influence(squared) / (
            2 * max(np.sqrt(squared.mean()), 1e-12)
        )
    if metric == "logloss":
        clipped = clipped_probabilities(predictions)
        rows = clipped[np.arange(n), labels.astype(np.int64)]
        return _mean_influence(-np.log(rows))
    if metric == "accuracy":
        predicted = class_probabilities(predictions).argmax(axis=1)
        return _mean_influence((predicted == labels).astype(np.float64))
    if metric == "auc":
        return _auc_influence(labels, predictions)
    return None


def paired_standard_error(
    metric: str,
    labels: ArrayLike,
    first: ArrayLike,
    second: ArrayLike,
) -> float | None:
    """The standard error of `metric(second) - metric(first)`.

    Args:
        metric: str. A metric `row_influence` reads.
        labels: array `(n,)` of the rows both models scored.
        first, second: the two models' predictions on those rows (as
            `row_influence` reads them).

    Returns:
        float, or None where the metric has no per-row influence.

    Example:

    ```python
    labels = np.array([0, 1, 0, 1])
    paired_standard_error("logloss", labels, [0.4, 0.6, 0.3, 0.8],
                          [0.2, 0.7, 0.3, 0.9])
    ```
    """
    a = row_influence(metric, labels, first)
    b = row_influence(metric, labels, second)
    if a is None or b is None:
        return None
    return difference_standard_error(a, b)


def difference_standard_error(first: ArrayLike, second: ArrayLike) -> float:
    """The standard error of the difference of two models' metric from
    their `row_influence` on the same rows.

    Args:
        first, second: arrays `(n,)` of the two models' row influences.

    Returns:
        float.
    """
    difference = np.asarray(second, np.float64) - np.asarray(first, np.float64)
    return float(np.sqrt(np.sum(difference**2)))


def _mean_influence(values: np.ndarray) -> np.ndarray:
    """A mean's influence: `(x_i - mean) / n`, scaled so the squares sum
    to the sample variance over `n` (`n - 1` in its denominator)."""
    n = len(values)
    if n < 2:
        return np.zeros(n)
    return (values - values.mean()) / np.sqrt(n * (n - 1))


def _auc_influence(labels, predictions) -> np.ndarray | None:
    """DeLong's structural components as each row's influence on the AUC
    (the one-vs-rest macro average for more than two classes, as
    `roc_auc` scores it)."""
    probabilities = class_probabilities(predictions)
    present = np.unique(labels)
    if len(present) < 2:
        return None
    if probabilities.shape[1] == 2:
        return _binary_auc_influence(labels == 1, probabilities[:, 1])
    clipped = clipped_probabilities(probabilities)
    parts = [_binary_auc_influence(labels == c, clipped[:, c]) for c in present]
    return np.mean(parts, axis=0)


def _binary_auc_influence(
    positive: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    """Per row: a positive's share of negatives ranked below it (ties
    half), or a negative's share of positives above it (each averages to
    the AUC), centred and scaled within its class (`_mean_influence`)."""
    scores = np.asarray(scores, np.float64)
    m, k = int(positive.sum()), int((~positive).sum())
    if m == 0 or k == 0:
        return np.zeros(len(scores))
    ranks = rankdata(scores)
    # A row's rank among all rows less its rank within its class: the
    # other class's rows below it (ties count half).
    within = np.empty(len(scores))
    within[positive] = rankdata(scores[positive])
    within[~positive] = rankdata(scores[~positive])
    below = ranks - within
    placement = np.where(positive, below / k, (m - below) / m)
    influence = np.empty(len(scores))
    influence[positive] = _mean_influence(placement[positive])
    influence[~positive] = _mean_influence(placement[~positive])
    return influence
