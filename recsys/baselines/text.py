"""TF-IDF + logistic regression: the text models' baselines.

Both are scikit-learn pipelines fitted on the same training rows as the
Keras model and scored on the same split, in the same run, with the same
metrics (`recsys.evaluation.classification.classification_metrics`).
"""

import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from recsys.evaluation.classification import classification_metrics
from recsys.evaluation.classification import every_class


def tfidf_pipeline(name, seed=0):
    """The baseline named `name` as an unfitted scikit-learn pipeline.

    Args:
        name: str. `"tfidf_char"`: character 2-5-grams inside word
            boundaries (`char_wb`); `"tfidf_word"`: word 1-2-grams. Both
            keep n-grams seen in at least 2 texts, use sublinear term
            frequency and logistic regression with `C=4` (PROTOCOL.md).
        seed: int. The solver's random state.

    Returns:
        A `sklearn.pipeline.Pipeline` with `fit` and `predict_proba`.
    """
    if name == "tfidf_char":
        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True
        )
    elif name == "tfidf_word":
        vectorizer = TfidfVectorizer(
            analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True
        )
    else:
        raise ValueError(
            "Unknown baseline. Expected 'tfidf_char' or 'tfidf_word'. "
            f"Received: {name!r}"
        )
    classifier = LogisticRegression(C=4.0, max_iter=2000, random_state=seed)
    return make_pipeline(vectorizer, classifier)


def run_baselines(
    names,
    train_texts,
    train_labels,
    test_texts,
    test_labels,
    num_classes,
    *,
    progress=False,
):
    """Fits each baseline on the training texts and scores it.

    Args:
        names: list of baseline names (see `tfidf_pipeline`).
        train_texts, test_texts: lists of strings.
        train_labels, test_labels: int class indices, `0..num_classes-1`
            (a class may be missing from the training texts).
        num_classes: int. The classes of the model.
        progress: bool. A bar naming the baseline being fitted (minutes on
            a table of many classes: one regression per class).

    Returns:
        dict. `"baseline_<name>"` -> metrics (`classification_metrics`
        plus `"seconds"`, the time to fit and predict); a baseline whose
        TF-IDF finds no terms in the texts is skipped, its note in
        `"baselines_tuned"` (`{name: {"skipped": note}}`).
    """
    from recsys.logs import progress_bar

    results: dict = {}
    bar = progress_bar(
        names,
        desc=f"TF-IDF baselines ({len(train_texts):,} texts, "
        f"{num_classes:,} classes)",
        unit="baseline",
        leave=False,
        disable=not progress or not names,
    )
    for name in bar:
        bar.set_postfix_str(name, refresh=False)
        started = time.perf_counter()
        try:
            pipeline = tfidf_pipeline(name).fit(train_texts, train_labels)
        except ValueError as error:
            # Emoji alone, or Chinese without spaces, give the word TF-IDF
            # no term of two letters: scikit-learn's error came after
            # training and the model was lost.
            if "vocabulary" not in str(error) and "no terms" not in str(error):
                raise
            note = (
                "its TF-IDF finds no terms in the training texts (words of "
                "two letters or more, in two texts or more). Fix: leave it "
                "out of evaluate.baselines"
            )
            skipped = results.setdefault("baselines_tuned", {})
            skipped[name] = {"skipped": note}
            continue
        probabilities = every_class(
            pipeline.predict_proba(test_texts), pipeline.classes_, num_classes
        )
        seconds = time.perf_counter() - started
        metrics = classification_metrics(test_labels, probabilities)
        metrics["seconds"] = round(seconds, 2)
        results[f"baseline_{name}"] = metrics
    return results
