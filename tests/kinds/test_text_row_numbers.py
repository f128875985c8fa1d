"""A text table splits and trains by row number, whatever its index.

A DataFrame from a notebook (a sample, a `pd.concat`, an index of names or
a MultiIndex) trains as its fresh-index twin does, and a held-out part of
one class is warned of.
"""

import numpy as np
import pandas as pd
import pytest

from recsys import train
from recsys.kinds.text import split_rows


def _frame(rows=400, seed=0):
    """Two classes told apart by their words, in a fresh index."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, rows)
    words = np.array([["sunny", "happy", "great"], ["rainy", "sad", "bad"]])
    texts = [" ".join(rng.choice(words[y], 4)) for y in label]
    return pd.DataFrame(
        {
            "doc": np.arange(rows) * 7 + 3,
            "text": texts,
            "sentiment": np.where(label == 1, "neg", "pos"),
        }
    )


def _config(split="suffix", **data):
    return {
        "data": {
            "text": "text",
            "label": "sentiment",
            "split": split,
            **data,
        },
        "model": {"kind": "text", "architecture": "mean_pool"},
        "features": {"text": {"kind": "text", "sequence_length": 4}},
        "train": {"epochs": 3, "patience": 1, "refit": False},
        "evaluate": {"baselines": []},
    }


def _split_config(split):
    # The keys `split_rows` reads, as configs/examples/texts.toml sets them.
    return {
        "data": {
            "id": "",
            "split": split,
            "test_suffixes": ["0", "5"],
            "validation_suffixes": ["1", "6"],
            "test_fraction": 0.2,
            "split_seed": 0,
        },
        "evaluate": {"split": "test"},
    }


INDEXES = {
    "a sample's labels": lambda f: f.set_axis(np.arange(len(f)) * 3 + 1),
    "text labels": lambda f: f.set_axis([f"user_{i % 26}" for i in f.index]),
    "repeated labels": lambda f: f.set_axis(np.arange(len(f)) % 150),
    "a MultiIndex": lambda f: f.set_index(["sentiment", "doc"], drop=False),
}


@pytest.mark.parametrize("split", ["suffix", "random"])
@pytest.mark.parametrize("index", INDEXES)
def test_text_split_rows_ignore_the_index_labels(index, split):
    # data.id = "" splits by "the row number": the index labels of a
    # sample held out other rows, and names or a MultiIndex failed.
    fresh = _frame()
    config = _split_config(split)
    expected = split_rows(fresh, config)
    got = split_rows(INDEXES[index](fresh), config)
    for part, twin in zip(got, expected, strict=True):
        pd.testing.assert_frame_equal(part, twin)
    train_rows, valid, test = got
    # The validation rows are training rows, none of them a test row.
    assert set(valid["doc"]) < set(train_rows["doc"])
    assert not set(test["doc"]) & set(train_rows["doc"])


def test_a_concatenated_table_trains_as_its_fresh_index_twin():
    # pd.concat without ignore_index repeats the labels: every training
    # row that shared one with a validation row left the early-stopping fit.
    fresh = _frame()
    concat = pd.concat([fresh.iloc[:200], fresh.iloc[200:].reset_index()])
    concat = concat.drop(columns="index")
    twin = train(_config("random"), write=False, frame=fresh, progress=False)
    got = train(_config("random"), write=False, frame=concat, progress=False)
    assert got.metrics["train"] == {
        **twin.metrics["train"],
        "seconds": got.metrics["train"]["seconds"],
    }
    np.testing.assert_allclose(
        got.metrics["test"]["logloss"], twin.metrics["test"]["logloss"]
    )


def test_held_out_rows_of_one_class_are_warned(caplog):
    # The test rows (row numbers ending in 0 or 5) all "pos": the AUC was
    # a bare nan, with no word of why.
    frame = _frame(200)
    held = np.arange(len(frame)) % 5 == 0
    frame.loc[held, "sentiment"] = "pos"
    with caplog.at_level("WARNING", logger="recsys.kinds.text"):
        result = train(_config(), write=False, frame=frame, progress=False)
    assert np.isnan(result.metrics["test"]["auc"])
    assert (
        "All 40 held-out rows have the same 'sentiment' (pos), so their AUC "
        "is undefined (nan)"
    ) in caplog.text
    assert 'Fix: other data.test_suffixes, or data.split = "random".' in (
        caplog.text
    )
