"""The scikit-learn baselines of the text and tabular kinds score every
class id in its own column, whichever classes their training rows held."""

import numpy as np
import pandas as pd
import pytest

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


def test_a_text_baseline_without_terms_is_skipped_with_a_note():
    # Emoji alone: the word TF-IDF has no term, and its error came after
    # training (the model was lost). The character TF-IDF reads them.
    train = ["😀 👍", "😡 👎", "👍 😀 🎉", "👎 😢"] * 5
    labels = [1, 0, 1, 0] * 5
    metrics = run_baselines(
        ["tfidf_word", "tfidf_char"], train, labels, ["👍", "👎"], [1, 0], 2
    )
    assert "baseline_tfidf_word" not in metrics
    note = metrics["baselines_tuned"]["tfidf_word"]["skipped"]
    assert note.startswith("its TF-IDF finds no terms in the training texts")
    assert metrics["baseline_tfidf_char"]["accuracy"] == 1.0


def test_text_baselines_show_a_bar_naming_their_size(capsys):
    # Silent for 9 minutes on a table of 1,033 classes (a regression each).
    train = ["red apple", "red cherry", "green leaf", "green grass"] * 5
    test = ["red berry", "green moss"]
    args = (["tfidf_word"], train, [0, 1, 1, 0] * 5, test, [0, 1], 2)
    run_baselines(*args)
    assert capsys.readouterr().err == ""
    run_baselines(*args, progress=True)
    said = capsys.readouterr().err
    assert "TF-IDF baselines (20 texts, 2 classes)" in said
    assert "1/1" in said and "tfidf_word" in said


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


def _ridge_parts(rows, signal, seed=0):
    """`fit_baseline`'s parts for a regression on 300 one-hot columns of
    `rows` rows: labels in dollars, `signal` of them from the columns."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"code": rng.integers(0, 300, rows).astype(str)})
    effect = rng.normal(size=300)
    codes = frame["code"].astype(int).to_numpy()
    labels = 50_000 * (signal * effect[codes] + rng.normal(size=rows))
    pre = Preprocessor(features=[CategoricalFeature("code")]).fit(frame)
    arrays = pre.transform(frame)

    def part(rows_of):
        return (
            frame.iloc[rows_of],
            {k: v[rows_of] for k, v in arrays.items()},
            labels[rows_of],
        )

    fit, validation = np.arange(rows * 3 // 4), np.arange(rows * 3 // 4, rows)
    parts = {"fit": part(fit), "validation": part(validation)}
    parts["train"] = part(np.arange(rows))
    return parts, pre


@pytest.mark.parametrize("signal, side", [(0.0, 1), (0.6, 0), (10.0, -1)])
def test_a_ridge_best_at_the_grids_end_is_followed_past_it(signal, side):
    # On dollar incomes the grid's strongest alpha (10) was still too weak:
    # the printed baseline scored worse than predicting the mean. `side`:
    # where the best alpha lies, above the grid (1), in it (0) or below.
    from recsys.baselines.tabular import RIDGE_ALPHA_GRID
    from recsys.baselines.tabular import fit_baseline

    parts, pre = _ridge_parts(600, signal)
    _, chosen = fit_baseline(
        "linear_regression",
        "regression",
        parts,
        user="",
        item="",
        preprocessor=pre,
        names=["code"],
    )
    scores = chosen["validation_scores"]
    tried = {float(k) for k in scores}
    assert tried.issuperset(RIDGE_ALPHA_GRID)
    alpha = chosen["alpha"]
    assert min(scores.values()) == scores[str(alpha)]
    if side == 0:
        assert tried == set(RIDGE_ALPHA_GRID)
        assert min(RIDGE_ALPHA_GRID) < alpha < max(RIDGE_ALPHA_GRID)
        return
    beyond = (
        alpha > max(RIDGE_ALPHA_GRID)
        if side > 0
        else alpha < min(RIDGE_ALPHA_GRID)
    )
    assert beyond
    # Followed until the score stopped falling: one step further was tried.
    step = float(f"{alpha * 10.0**side:.6g}")
    assert str(step) in scores and scores[str(step)] >= scores[str(alpha)]
