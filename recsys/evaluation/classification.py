"""Accuracy, ROC AUC and log loss of class probabilities."""

import numpy as np
from sklearn.metrics import log_loss
from sklearn.metrics import roc_auc_score


def class_probabilities(probabilities):
    """`(n, num_classes)` probabilities from a model's output.

    A binary model outputs one column, the positive class's probability;
    it becomes two columns `[1 - p, p]`.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1:
        probabilities = probabilities[:, None]
    if probabilities.shape[1] == 1:
        probabilities = np.hstack([1.0 - probabilities, probabilities])
    return probabilities


def classification_metrics(labels, probabilities):
    """Scores class probabilities against integer labels.

    Args:
        labels: int array of class indices, `0..num_classes-1`.
        probabilities: `(n, num_classes)` or, for two classes, `(n,)` /
            `(n, 1)` positive-class probabilities.

    Returns:
        dict with `accuracy` (the most probable class; threshold 0.5 for
        two classes), `auc` (ROC AUC; one-vs-rest macro average for more
        than two classes), `logloss` and `num_examples`.

    Example:

    ```python
    classification_metrics([0, 1, 1], [0.2, 0.9, 0.4])
    # {"accuracy": 0.667, "auc": 1.0, ...}
    ```
    """
    labels = np.asarray(labels)
    probabilities = class_probabilities(probabilities)
    num_classes = probabilities.shape[1]
    clipped = np.clip(probabilities, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    if num_classes == 2:
        auc = roc_auc_score(labels, probabilities[:, 1])
    else:
        auc = roc_auc_score(
            labels,
            clipped,
            multi_class="ovr",
            average="macro",
            labels=np.arange(num_classes),
        )
    return {
        "accuracy": round(float(np.mean(probabilities.argmax(1) == labels)), 4),
        "auc": round(float(auc), 4),
        "logloss": round(
            float(log_loss(labels, clipped, labels=np.arange(num_classes))), 4
        ),
        "num_examples": int(len(labels)),
    }
