"""The metrics of a tabular task: regression, binary or multiclass.

A tabular model and its baselines are scored by the same function, the
classification tasks by `recsys.evaluation.classification`.
"""

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import mean_absolute_error
from sklearn.metrics import mean_squared_error

from recsys.evaluation.classification import accuracy
from recsys.evaluation.classification import clipped_log_loss
from recsys.evaluation.classification import roc_auc

# The metrics of each task, in the order `recsys train` prints them.
TASK_METRICS = {
    "regression": ("rmse", "mae"),
    "binary": ("auc", "logloss", "accuracy"),
    "multiclass": ("accuracy", "logloss"),
}
# The metric of each task that chooses settings (`recsys tune`'s trials)
# and that a run's report compares the model and its baselines by.
CHOOSING_METRIC = {
    "regression": "rmse",
    "binary": "auc",
    "multiclass": "logloss",
}
# Metrics where lower is better; every other metric is higher-is-better.
LOWER_IS_BETTER = ("rmse", "mae", "logloss")


def regression_metrics(
    labels: ArrayLike, predictions: ArrayLike
) -> dict[str, float | int]:
    """Root mean squared error and mean absolute error.

    Args:
        labels: array `(n,)` of values.
        predictions: array `(n,)` of predicted values.

    Returns:
        dict with `rmse`, `mae` and `num_examples`.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions, np.float64)
    return {
        "rmse": float(np.sqrt(mean_squared_error(labels, predictions))),
        "mae": float(mean_absolute_error(labels, predictions)),
        "num_examples": int(len(labels)),
    }


def task_metrics(
    task: str, labels: ArrayLike, predictions: ArrayLike
) -> dict[str, float | int]:
    """The metrics of a task, every model and baseline scored alike.

    Args:
        task: str. `"regression"` (`rmse`, `mae`), `"binary"` (`auc`,
            `logloss`, `accuracy` at 0.5) or `"multiclass"` (`accuracy`,
            `logloss`).
        labels: array `(n,)`: values, 0/1 or class indices.
        predictions: array `(n,)` of values or probabilities, or
            `(n, num_classes)` of class probabilities.

    Returns:
        dict of floats keyed as `TASK_METRICS[task]`, plus `num_examples`.

    Raises:
        ValueError: for an unknown task.

    Example:

    ```python
    task_metrics("binary", [0, 1, 1], [0.2, 0.9, 0.4])
    # {"auc": 1.0, "logloss": 0.415, "accuracy": 0.667, "num_examples": 3}
    ```
    """
    if task not in TASK_METRICS:
        raise ValueError(
            f"`task` must be one of {tuple(TASK_METRICS)}. Received: "
            f"task={task!r}"
        )
    if task == "regression":
        return regression_metrics(labels, predictions)
    labels = np.asarray(labels)
    scorers = {
        "auc": roc_auc,
        "logloss": clipped_log_loss,
        "accuracy": accuracy,
    }
    metrics = {
        name: scorers[name](labels, predictions) for name in TASK_METRICS[task]
    }
    metrics["num_examples"] = int(len(labels))
    return metrics


def class_share_metrics(
    task: str, train_labels: ArrayLike, labels: ArrayLike, num_classes: int
) -> dict[str, float | int]:
    """The metrics of always predicting the training rows' class shares:
    what a classifier that learnt nothing from its inputs scores (its
    accuracy is the majority class's).

    Args:
        task: str. `"binary"` or `"multiclass"`.
        train_labels: array `(m,)` of the training rows' class indices.
        labels: array `(n,)` of the scored rows' class indices.
        num_classes: int. The model's classes.

    Returns:
        dict. `task_metrics(task, labels, shares)`.

    Example:

    ```python
    class_share_metrics("binary", [0, 0, 0, 1], [0, 1], 2)
    # {"auc": 0.5, "logloss": 0.837, "accuracy": 0.5, "num_examples": 2}
    ```
    """
    shares = class_shares(train_labels, num_classes)
    rows = len(np.asarray(labels))
    if task == "binary":
        return task_metrics(task, labels, np.full(rows, shares[1]))
    return task_metrics(task, labels, np.tile(shares, (rows, 1)))


def training_mean_metrics(
    train_labels: ArrayLike, labels: ArrayLike
) -> dict[str, float | int]:
    """The metrics of always predicting the training rows' mean label: what
    a regression that learnt nothing from its inputs scores.

    Args:
        train_labels: array `(m,)` of the training rows' labels.
        labels: array `(n,)` of the scored rows' labels.

    Returns:
        dict. `task_metrics("regression", labels, mean)`.

    Example:

    ```python
    training_mean_metrics([1.0, 3.0], [2.0, 4.0])
    # {"rmse": 1.414, "mae": 1.0, "num_examples": 2}
    ```
    """
    mean = float(np.mean(np.asarray(train_labels, np.float64)))
    rows = len(np.asarray(labels))
    return task_metrics("regression", labels, np.full(rows, mean))


def class_shares(train_labels: ArrayLike, num_classes: int) -> np.ndarray:
    """Each class's share of the training rows, `(max(num_classes, 2),)`."""
    counts = np.bincount(
        np.asarray(train_labels, np.int64), minlength=max(num_classes, 2)
    )
    return counts / max(int(counts.sum()), 1)
