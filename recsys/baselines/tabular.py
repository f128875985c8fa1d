"""Baselines a tabular model must beat.

- `BiasBaseline`: the global mean plus a user bias and an item bias, each
  shrunk towards zero (the baseline predictor of the Netflix-prize papers).
- `LogisticRegressionBaseline`: scikit-learn's logistic regression on the
  same columns, one-hot (or hashed) instead of embedded.
- `RidgeBaseline`: ridge regression on those columns (`"linear_regression"`),
  the baseline of a regression table without user and item ids.

`fit_baseline` chooses each baseline's regularization on a validation carve
of the training split (a grid, followed past its end where its best lies
there), as the tabular model's epochs are chosen, then refits on the whole
training split. Models and baselines are scored alike, by
`recsys.evaluation.tasks.task_metrics`.
"""

import warnings

import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model import Ridge

from recsys.evaluation.classification import every_class
from recsys.evaluation.tasks import task_metrics

BIAS_L2_GRID = (1.0, 3.0, 10.0, 30.0)
LOGISTIC_C_GRID = (0.1, 0.3, 1.0, 3.0)
# The inverses of the logistic grid's `C`: the same strengths.
RIDGE_ALPHA_GRID = (0.3, 1.0, 3.0, 10.0)
# Tenfold steps past a grid's end, where its best value lies there.
GRID_STEPS_BEYOND = 6


class BiasBaseline:
    """Predicts `mean + b_user + b_item`, biases shrunk towards zero.

    The biases minimize the squared error plus `l2 * (b_u^2 + b_i^2)`,
    solved by alternating exact updates (each a shrunk mean of residuals).
    Unknown users and items get a zero bias.

    Args:
        l2: float. Shrinkage. Defaults to `10.0`.
        iterations: int. Alternating updates. Defaults to `10`.

    Example:

    ```python
    baseline = BiasBaseline(l2=10).fit(users, items, ratings)
    baseline.predict(test_users, test_items)
    ```
    """

    def __init__(self, *, l2=10.0, iterations=10):
        self.l2 = l2
        self.iterations = iterations

    def fit(self, users, items, labels):
        labels = np.asarray(labels, np.float64)
        self.mean_ = float(labels.mean())
        user_codes, self.users_ = pd.factorize(pd.Series(users))
        item_codes, self.items_ = pd.factorize(pd.Series(items))
        user_bias = np.zeros(len(self.users_))
        item_bias = np.zeros(len(self.items_))
        residual = labels - self.mean_
        for _ in range(self.iterations):
            item_bias = self._shrunk_mean(
                item_codes, residual - user_bias[user_codes], len(item_bias)
            )
            user_bias = self._shrunk_mean(
                user_codes, residual - item_bias[item_codes], len(user_bias)
            )
        self.user_bias_, self.item_bias_ = user_bias, item_bias
        return self

    def _shrunk_mean(self, codes, values, size):
        sums = np.bincount(codes, weights=values, minlength=size)
        counts = np.bincount(codes, minlength=size)
        return sums / (counts + self.l2)

    def predict(self, users, items):
        user_rows = self.users_.get_indexer(pd.Series(users))
        item_rows = self.items_.get_indexer(pd.Series(items))
        user_bias = np.where(
            user_rows >= 0, self.user_bias_[np.maximum(user_rows, 0)], 0.0
        )
        item_bias = np.where(
            item_rows >= 0, self.item_bias_[np.maximum(item_rows, 0)], 0.0
        )
        return self.mean_ + user_bias + item_bias


def one_hot_matrix(preprocessor, arrays, names, dims=None):
    """The sparse one-hot design matrix of preprocessed columns.

    Categorical and bucketized ids become one column per id (hashed features
    one per bucket: the hashing trick); multi-valued columns a mean of their
    one-hots (as the embedding pools them); numeric columns stay one column
    (two where they hold NaN: 0 there, beside a 0/1 "missing" column).

    Args:
        preprocessor: the fitted `features.Preprocessor`.
        arrays: dict. Its `transform` output.
        names: list of str. The columns to encode.
        dims: optional dict. Widths of id columns the preprocessor does not
            know (a history of item ids).

    Returns:
        `scipy.sparse.csr_matrix` of shape `(n, total columns)`.
    """
    blocks = []
    for name in names:
        values = np.asarray(arrays[name])
        n = len(values)
        if values.dtype.kind == "f":
            column = values.reshape(n, 1)
            if preprocessor.feature(name).missing == "indicator":
                # NaN where missing: 0 there, and a 0/1 column saying so.
                missing = np.isnan(column)
                column = np.hstack([np.where(missing, 0.0, column), missing])
            blocks.append(scipy.sparse.csr_matrix(column))
            continue
        width = (dims or {}).get(name) or preprocessor.input_dim(name)
        ids = values.reshape(n, -1)
        rows = np.repeat(np.arange(n), ids.shape[1])
        ids = ids.reshape(-1)
        keep = ids > 0
        counts = np.maximum((values.reshape(n, -1) > 0).sum(axis=1), 1)
        weights = 1.0 / counts[rows[keep]]
        blocks.append(
            scipy.sparse.csr_matrix(
                (weights, (rows[keep], ids[keep])), shape=(n, width)
            )
        )
    return scipy.sparse.hstack(blocks, format="csr")


class LogisticRegressionBaseline:
    """scikit-learn logistic regression on one-hot / hashed columns.

    Args:
        preprocessor: the fitted `features.Preprocessor`.
        names: list of str. The columns it reads.
        C: float. Inverse L2 strength. Defaults to `1.0`.
        dims: optional dict. See `one_hot_matrix`.
        classes: int. The number of classes of a multiclass task (labels
            `0..classes-1`, some perhaps missing from a fit's rows); 0 for
            binary. Defaults to `0`.

    Example:

    ```python
    baseline = LogisticRegressionBaseline(pre, ["userId", "movieId"])
    baseline.fit(arrays, labels).predict(test_arrays)
    ```
    """

    def __init__(self, preprocessor, names, *, C=1.0, dims=None, classes=0):
        self.preprocessor = preprocessor
        self.names = list(names)
        self.C = C
        self.dims = dims
        self.classes = classes

    def fit(self, arrays, labels):
        self.model_ = LogisticRegression(C=self.C, max_iter=1000)
        with warnings.catch_warnings():
            # Said once by the run, naming the label and its fix
            # (`_warn_numbers_as_classes`), not at every fit of the grid.
            warnings.filterwarnings(
                "ignore", "The number of unique classes is greater than 50%"
            )
            self.model_.fit(self._matrix(arrays), labels)
        return self

    def _matrix(self, arrays):
        return one_hot_matrix(
            self.preprocessor, arrays, self.names, dims=self.dims
        )

    def predict(self, arrays):
        """Positive-class probabilities `(n,)`, or `(n, classes)`."""
        probabilities = self.model_.predict_proba(self._matrix(arrays))
        if self.classes > 2:
            return every_class(
                probabilities, self.model_.classes_, self.classes
            )
        return probabilities[:, 1]


class RidgeBaseline(LogisticRegressionBaseline):
    """scikit-learn ridge regression on one-hot / hashed columns.

    Args:
        preprocessor: the fitted `features.Preprocessor`.
        names: list of str. The columns it reads.
        alpha: float. L2 strength. Defaults to `1.0`.
        dims: optional dict. See `one_hot_matrix`.
    """

    def __init__(self, preprocessor, names, *, alpha=1.0, dims=None):
        super().__init__(preprocessor, names, dims=dims)
        self.alpha = alpha

    def fit(self, arrays, labels):
        self.model_ = Ridge(alpha=self.alpha)
        self.model_.fit(self._matrix(arrays), labels)
        return self

    def predict(self, arrays):
        """Predicted values `(n,)`."""
        return self.model_.predict(self._matrix(arrays))


def one_class_note(name, task, parts):
    """Why baseline `name` cannot be fitted on `parts`, or None.

    Logistic regression needs two classes in the rows it fits: the
    training split less its validation carve (where `C` is chosen), then
    the whole split. A tiny table's carve may hold one (5 rows: 3 to fit,
    all positive), and scikit-learn's error then lost the model already
    trained; the baseline is skipped with this note instead.

    Args:
        name: str. The baseline's name.
        task: str. The task.
        parts: dict. As `fit_baseline` takes them.

    Returns:
        str or None. The note, the reason and the fix.
    """
    if name != "logistic_regression" or task == "regression":
        return None
    for part, rows in (
        ("fit", "the training rows it is tuned on (less the validation carve)"),
        ("train", "the training rows"),
    ):
        labels = np.asarray(parts[part][2])
        if len(np.unique(labels)) < 2:
            return (
                f"{rows}, {len(labels):,} of them, hold one class: logistic "
                "regression needs two. Fix: more rows of each class, or "
                "another data.split_seed"
            )
    return None


def _beyond_the_grid(grid, scores, tried):
    """The best value of `scores`, where the grid's best lies at one of its
    ends followed past it tenfold a step while the validation score falls
    (up to `GRID_STEPS_BEYOND` steps): a ridge on dollar incomes needed an
    alpha of 10,000, and at the grid's 10 it scored worse than predicting
    the mean."""
    best = min(scores, key=scores.get)
    if best not in (grid[0], grid[-1]):
        return best
    factor = 10.0 if best == grid[-1] else 0.1
    value = best
    for _ in range(GRID_STEPS_BEYOND):
        value = float(f"{value * factor:.6g}")  # 0.01, not 0.010000000000000002
        if not tried(value) < scores[best]:
            break
        best = value
    return best


def _score(task, labels, predictions):
    """One number to choose by: lower is better."""
    metrics = task_metrics(task, labels, predictions)
    return metrics["rmse"] if task == "regression" else metrics["logloss"]


def fit_baseline(
    name,
    task,
    parts,
    *,
    user,
    item,
    preprocessor,
    names,
    dims=None,
    num_classes=0,
):
    """Tunes a baseline on validation, refits it on the training split.

    Args:
        name: str. `"bias"`, `"logistic_regression"` or
            `"linear_regression"`.
        task: str. The task (see `task_metrics`).
        parts: dict with `"fit"`, `"validation"` and `"train"`, each a
            `(frame, arrays, labels)` triple: the training split minus its
            validation carve, the carve, and the whole training split.
        user, item: str. Id columns (the bias baseline's keys).
        preprocessor: the fitted `features.Preprocessor`.
        names: list of str. The columns the linear models read.
        dims: optional dict. See `one_hot_matrix`.
        num_classes: int. A multiclass model's classes (0: the training
            split's largest class index + 1).

    Returns:
        `(predict, chosen)`: `predict(frame, arrays)` -> predictions, and the
        chosen hyperparameter as a dict.
    """
    if name == "bias":

        def make(value):
            return BiasBaseline(l2=value)

        def fit(model, frame, arrays, labels):
            return model.fit(frame[user], frame[item], labels)

        def predict(model, frame, arrays):
            return model.predict(frame[user], frame[item])

        grid, key = BIAS_L2_GRID, "l2"
    else:
        regression = name == "linear_regression"
        # The model's classes (`label_classes`: the whole table's); the
        # training split, and more so its carve's fit part, may miss some.
        classes = 0
        if task == "multiclass":
            classes = num_classes or int(np.max(parts["train"][2])) + 1

        def make(value):
            if regression:
                return RidgeBaseline(
                    preprocessor, names, alpha=value, dims=dims
                )
            return LogisticRegressionBaseline(
                preprocessor, names, C=value, dims=dims, classes=classes
            )

        def fit(model, frame, arrays, labels):
            return model.fit(arrays, labels)

        def predict(model, frame, arrays):
            return model.predict(arrays)

        grid, key = LOGISTIC_C_GRID, "C"
        if regression:
            grid, key = RIDGE_ALPHA_GRID, "alpha"
    scores = {}

    def tried(value):
        model = fit(make(value), *parts["fit"])
        frame, arrays, labels = parts["validation"]
        scores[value] = _score(task, labels, predict(model, frame, arrays))
        return scores[value]

    for value in grid:
        tried(value)
    best = _beyond_the_grid(grid, scores, tried)
    model = fit(make(best), *parts["train"])
    return (lambda frame, arrays: predict(model, frame, arrays)), {
        key: best,
        "validation_scores": {str(k): v for k, v in scores.items()},
    }
