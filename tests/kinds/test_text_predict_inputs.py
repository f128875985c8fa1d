"""`recsys predict --input` keeps one row per input row: rows without a text
are written unscored, with a warning, as training dropped them; `--text ""`
names the argument, not a column."""

import logging

import numpy as np
import pandas as pd
import pytest

from recsys import train
from recsys.cli import main
from recsys.config import load_config
from recsys.scoring import score_file


def _reviews(rows=200, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, rows)
    words = np.array([["sunny", "happy", "great"], ["rainy", "sad", "bad"]])
    return pd.DataFrame(
        {
            "doc": np.arange(rows),
            "text": [" ".join(rng.choice(words[y], 4)) for y in label],
            "sentiment": np.where(label == 1, "neg", "pos"),
        }
    )


@pytest.fixture(scope="module")
def reviews_bundle(tmp_path_factory):
    config = load_config(
        "configs/tweets_text.toml",
        [
            "data.source=unused.csv",
            "data.label=sentiment",
            "data.id=doc",
            "model.architecture='mean_pool'",
            "train.epochs=2",
            "train.patience=1",
            "train.refit=false",
            "evaluate.baselines=[]",
        ],
    )
    path = tmp_path_factory.mktemp("text") / "reviews"
    bundle, _ = train(config, str(path), frame=_reviews(), progress=False)
    return bundle


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_without_a_text_are_kept_unscored(
    reviews_bundle, tmp_path, caplog, suffix
):
    # Before: "Text column 'text' holds 3 empty texts ... Fix: drop those
    # rows", and no row of the file scored.
    rows = _reviews(12, seed=1)[["doc", "text"]]
    rows["text"] = rows["text"].astype(object)
    rows.loc[[2, 3], "text"] = ""
    rows.loc[7, "text"] = "   "
    rows.loc[9, "text"] = None
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        rows.to_csv(source, index=False)
    else:
        rows.to_parquet(source, index=False)
    target = tmp_path / "out.csv"
    with caplog.at_level(logging.WARNING, logger="recsys"):
        count = score_file(
            reviews_bundle, str(source), str(target), batch_size=5
        )
    assert count == 12
    scores = pd.read_csv(target)["score"]
    blank = [2, 3, 7, 9]
    assert scores[blank].isna().all()
    kept = rows.drop(index=blank)
    np.testing.assert_allclose(
        scores.drop(index=blank),
        reviews_bundle.predict(kept["text"].tolist()),
        atol=1e-6,
    )
    assert (
        "Text column 'text' is empty or missing in 4 of 12 rows "
        "(rows 2, 3, 7, 9, counted from 0): their 'score' is left empty"
    ) in caplog.text


def test_a_chunk_of_blank_texts_only_is_written_unscored(
    reviews_bundle, tmp_path
):
    source = tmp_path / "in.parquet"
    pd.DataFrame({"text": ["", "sunny happy", " ", "rainy"]}).to_parquet(source)
    target = tmp_path / "out.parquet"
    assert score_file(reviews_bundle, str(source), str(target), batch_size=2)
    scores = pd.read_parquet(target)["score"]
    assert scores.isna().tolist() == [True, False, True, False]


def test_an_empty_text_argument_is_named_as_such(reviews_bundle, capsys):
    # Before: "Text column 'text' holds 1 empty text (rows [0])": the
    # user gave no column and no row.
    assert main(["predict", reviews_bundle.path, "--text", ""]) == 1
    err = capsys.readouterr().err
    assert "--text is empty (''): there is no text to classify." in err
    argv = ["predict", reviews_bundle.path, "--text", "sunny", "--text", " "]
    assert main(argv) == 1
    assert "--text number 2 is empty (' ')" in capsys.readouterr().err


def test_serving_a_text_bundle_names_predict(reviews_bundle, capsys):
    assert main(["serve", reviews_bundle.path]) == 1
    err = capsys.readouterr().err
    assert "is a 'text' bundle, not a 'two_tower' bundle" in err
    assert f"recsys predict {reviews_bundle.path} --text TEXT" in err


def test_a_multiclass_output_names_the_most_probable_class():
    import types

    from recsys.scoring import score_columns

    bundle = types.SimpleNamespace(classes=["neg", "neu", "pos"])
    probabilities = np.array(
        [[0.1, 0.2, 0.7], [np.nan] * 3, [0.5, 0.3, 0.2]], np.float32
    )
    columns = score_columns(bundle, probabilities, {"predicted": "label_2"})
    assert list(columns) == ["prob_neg", "prob_neu", "prob_pos", "label_2"]
    # The unscored row (no text) stays empty.
    assert columns["label_2"].tolist() == ["pos", None, "neg"]


def test_a_label_of_no_class_is_named_with_its_row():
    # `recsys evaluate --rescore --data` of another table: "missing key
    # 'maybe'" (or 'nan') before.
    import types

    from recsys.kinds.text import class_ids

    prepared = types.SimpleNamespace(classes=["no", "yes"])
    labels = pd.Series(["yes", "no", "maybe", None], name="label")
    with pytest.raises(
        ValueError,
        match=r"Label column 'label' holds 'maybe' \(row 2; 2 rows in all\) "
        r"that is no class of this model: \['no', 'yes'\]\. Fix: drop",
    ):
        class_ids(prepared, labels)
    with pytest.raises(ValueError, match=r"holds an empty label \(row 3;"):
        class_ids(prepared, labels.drop(2))
    assert class_ids(prepared, labels[:2]).tolist() == [1, 0]


def test_a_label_of_many_numbers_is_said_to_train_as_classes(caplog):
    # Star averages: a 419-way softmax trained without a word.
    from recsys.kinds.text import _warn_numeric_classes

    with caplog.at_level(logging.WARNING, logger="recsys"):
        _warn_numeric_classes([1, 2, 3, 4, 5], "stars", 100)
        assert not caplog.records
        _warn_numeric_classes([i / 10 for i in range(419)], "stars", 900)
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "Label column 'stars' holds 419 distinct numbers over 900 rows: the "
        "text kind learns each as a class of its own"
    )
