"""Accuracy, ROC AUC and log loss of class probabilities.

The one implementation every classifier is scored by: the tabular model and
its baselines (`recsys.evaluation.tasks.task_metrics`), the text model and
its TF-IDF baselines, and `recsys evaluate --rescore`. The values are not
rounded: what is stored is what a re-score recomputes.
"""

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import log_loss
from sklearn.metrics import roc_auc_score

# Log loss is infinite at a probability of 0. Each class probability is
# raised to at least this, then the row renormalized, so a saturated sigmoid
# or softmax (exactly 0.0 in float32) costs -log(1e-7) ~= 16 nats, not inf.
MIN_PROBABILITY = 1e-7


def class_probabilities(probabilities: ArrayLike) -> np.ndarray:
    """`(n, num_classes)` probabilities from a model's output.

    A binary model outputs one column, the positive class's probability;
    it becomes two columns `[1 - p, p]`.

    Args:
        probabilities: array `(n,)` or `(n, 1)` of positive-class
            probabilities, or `(n, num_classes)`.

    Returns:
        float64 array `(n, num_classes)`, `num_classes >= 2`.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1:
        probabilities = probabilities[:, None]
    if probabilities.shape[1] == 1:
        probabilities = np.hstack([1.0 - probabilities, probabilities])
    return probabilities


def every_class(
    probabilities: ArrayLike, fitted_classes: ArrayLike, num_classes: int
) -> np.ndarray:
    """A classifier's probabilities with one column per class id.

    scikit-learn's `predict_proba` has a column per class of the labels it
    was fitted on; a class absent from them (rare, or only in later rows)
    would shift every later column onto the wrong class id. Absent classes
    get probability 0.

    Args:
        probabilities: `(n, len(fitted_classes))` array.
        fitted_classes: the integer class ids of its columns (`classes_`).
        num_classes: int. Class ids are `0..num_classes-1`.

    Returns:
        float array `(n, num_classes)`.
    """
    probabilities = np.asarray(probabilities)
    full = np.zeros((len(probabilities), num_classes), probabilities.dtype)
    full[:, np.asarray(fitted_classes, dtype=np.int64)] = probabilities
    return full


def clipped_probabilities(probabilities: ArrayLike) -> np.ndarray:
    """Class probabilities of at least `MIN_PROBABILITY`, rows summing to 1.

    Args:
        probabilities: anything `class_probabilities` reads.

    Returns:
        float64 array `(n, num_classes)`.
    """
    clipped = np.clip(class_probabilities(probabilities), MIN_PROBABILITY, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return clipped


def accuracy(labels: ArrayLike, probabilities: ArrayLike) -> float:
    """Share of rows whose most probable class is the label.

    For two classes that is the positive class when `p > 0.5`; a tie goes
    to class 0, as scikit-learn's and Keras' thresholds do.

    Args:
        labels: int array `(n,)` of class indices.
        probabilities: anything `class_probabilities` reads.

    Returns:
        float.
    """
    predicted = class_probabilities(probabilities).argmax(axis=1)
    return float(np.mean(predicted == np.asarray(labels)))


def roc_auc(labels: ArrayLike, probabilities: ArrayLike) -> float:
    """ROC AUC; the one-vs-rest macro average for more than two classes.

    Two classes are ranked by the unclipped positive-class probability
    (clipping would tie saturated scores); more classes by the clipped,
    renormalized rows, each class present in `labels` against the rest
    (a class absent from them has no AUC: it is left out of the average,
    where scikit-learn's would be NaN). NaN when `labels` hold one class.

    Args:
        labels: int array `(n,)` of class indices.
        probabilities: anything `class_probabilities` reads.

    Returns:
        float.
    """
    labels = np.asarray(labels)
    probabilities = class_probabilities(probabilities)
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    clipped = clipped_probabilities(probabilities)
    return float(
        np.mean([roc_auc_score(labels == c, clipped[:, c]) for c in present])
    )


def clipped_log_loss(labels: ArrayLike, probabilities: ArrayLike) -> float:
    """Mean negative log-likelihood of the clipped probabilities.

    Args:
        labels: int array `(n,)` of class indices.
        probabilities: anything `class_probabilities` reads.

    Returns:
        float. Natural-log loss (nats per row).
    """
    clipped = clipped_probabilities(probabilities)
    return float(log_loss(labels, clipped, labels=np.arange(clipped.shape[1])))


def classification_metrics(
    labels: ArrayLike, probabilities: ArrayLike
) -> dict[str, float | int]:
    """Scores class probabilities against integer labels.

    Args:
        labels: int array of class indices, `0..num_classes-1`.
        probabilities: `(n, num_classes)` or, for two classes, `(n,)` /
            `(n, 1)` positive-class probabilities.

    Returns:
        dict with `accuracy` (`accuracy`), `auc` (`roc_auc`), `logloss`
        (`clipped_log_loss`) and `num_examples`.

    Example:

    ```python
    classification_metrics([0, 1, 1], [0.2, 0.9, 0.4])
    # {"accuracy": 0.667, "auc": 1.0, "logloss": 0.415, "num_examples": 3}
    ```
    """
    labels = np.asarray(labels)
    return {
        "accuracy": accuracy(labels, probabilities),
        "auc": roc_auc(labels, probabilities),
        "logloss": clipped_log_loss(labels, probabilities),
        "num_examples": int(len(labels)),
    }
