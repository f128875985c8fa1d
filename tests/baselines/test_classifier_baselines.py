"""The scikit-learn baselines of the text and tabular kinds score every
class id in its own column, whichever classes their training rows held."""

import numpy as np
import pandas as pd

from recsys.baselines.tabular import LogisticRegressionBaseline
from recsys.baselines.text import run_baselines
from recsys.evaluation.classification import every_class
from recsys.features.preprocessor import Preprocessor
from recsys.features.specs import CategoricalFeature
from recsys.features.specs import NumericFeature


def test_every_class_puts_each_column_under_its_class_id():
    fitted = np.array([[0.2, 0.8], [0.6, 0.4]])
    full = every_class(fitted, [0, 2], 4)
    np.testing.assert_array_equal(
        full, [[0.2, 0.0, 0.8, 0.0], [0.6, 0.0, 0.4, 0.0]]
    )


def test_text_baselines_with_a_class_missing_from_training():
    # Class 1 ("rare") has no training text: scikit-learn's columns are
    # classes 0 and 2, which must stay under ids 0 and 2.
    train = ["red apple", "red cherry", "green leaf", "green grass"] * 5
    labels = [0, 0, 2, 2] * 5
    test = ["red berry", "green moss", "red rose", "green pea"]
    metrics = run_baselines(
        ["tfidf_word"], train, labels, test, [0, 2, 0, 2], num_classes=3
    )["baseline_tfidf_word"]
    assert metrics["accuracy"] == 1.0
    assert metrics["auc"] == 1.0


def test_tabular_logistic_regression_with_a_class_missing_from_its_fit():
    colors = pd.Series(["red", "green"] * 20, name="color")
    pre = Preprocessor(features=[CategoricalFeature("color")]).fit(
        colors.to_frame()
    )
    arrays = {"color": pre.transform_column("color", colors)}
    labels = np.where(colors == "red", 0, 2)
    baseline = LogisticRegressionBaseline(pre, ["color"], classes=3)
    predicted = baseline.fit(arrays, labels).predict(arrays)
    assert predicted.shape == (40, 3)
    assert (predicted[:, 1] == 0).all()
    np.testing.assert_array_equal(predicted.argmax(axis=1), labels)


def test_logistic_regression_reads_an_empty_cell_as_missing():
    # The label is whether "income" is missing; filled with the mean, an
    # empty cell looks like an ordinary income.
    rng = np.random.default_rng(0)
    income = rng.normal(size=200)
    missing = rng.random(200) < 0.3
    income[missing] = np.nan
    frame = pd.DataFrame({"income": income})
    pre = Preprocessor(
        features=[NumericFeature("income", missing="indicator")]
    ).fit(frame)
    arrays = pre.transform(frame)
    assert np.isnan(arrays["income"]).sum() == missing.sum()
    baseline = LogisticRegressionBaseline(pre, ["income"], C=100.0)
    predicted = baseline.fit(arrays, missing).predict(arrays)
    np.testing.assert_array_equal(predicted > 0.5, missing)
    # Rows without an empty cell keep the two columns.
    full = pre.transform(frame[~missing])
    assert (baseline.predict(full) < 0.5).all()
