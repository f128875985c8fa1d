"""The protocol's splits: each one gives exactly the rows built by hand."""

import functools

import numpy as np
import pandas as pd
import pytest

from recsys.data.split import evaluation_split
from recsys.data.split import protocol_split
from recsys.data.split import suffix_split
from recsys.data.split import temporal_split
from recsys.kinds.text import split_rows as text_split_rows

COLUMNS = {"user": "u", "item": "i", "time": "t"}


def _interactions(rows=400, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "u": rng.integers(0, 30, rows),
            "i": rng.integers(0, 50, rows),
            "t": rng.integers(0, 100, rows),
            "id": rng.permutation(rows) * 7 + 1000,
        }
    )


def _assert_same_rows(actual, expected):
    pd.testing.assert_frame_equal(actual, expected)


def test_suffix_split_holds_out_ids_ending_in_a_suffix():
    frame = pd.DataFrame({"id": [10, 11, 15, 16, 25]}, index=[4, 3, 2, 1, 0])
    kept, held = suffix_split(frame, ["0", "5"], id_column="id")
    assert held["id"].tolist() == [10, 15, 25]
    assert kept["id"].tolist() == [11, 16]
    # Rows keep their order and index.
    assert held.index.tolist() == [4, 2, 0]


def test_suffix_split_reads_the_index_without_an_id_column():
    frame = pd.DataFrame({"x": range(12)})
    kept, held = suffix_split(frame, ["1"])
    assert held["x"].tolist() == [1, 11]
    assert len(kept) == 10


def test_evaluation_split_reports_the_carve_when_validating():
    frame = pd.DataFrame({"id": range(20)})
    holdout = functools.partial(suffix_split, suffixes=["0"], id_column="id")
    carve = functools.partial(suffix_split, suffixes=["1"], id_column="id")
    train, test = evaluation_split(frame, holdout, carve)
    assert test["id"].tolist() == [0, 10]
    assert len(train) == 18
    train, valid = evaluation_split(frame, holdout, carve, validation=True)
    assert valid["id"].tolist() == [1, 11]
    assert not set(train["id"]) & {0, 10, 1, 11} and len(train) == 16


@pytest.mark.parametrize("validation", [False, True])
def test_protocol_split_is_the_temporal_split_applied_directly(validation):
    frame = _interactions()
    train, test = temporal_split(frame, **COLUMNS)
    if validation:
        train, test = temporal_split(train, **COLUMNS)
    got_train, got_test = protocol_split(
        frame, **COLUMNS, validation=validation
    )
    _assert_same_rows(got_train, train)
    _assert_same_rows(got_test, test)


def _text_split_by_hand(frame, config):
    """The text kind's split as it was written before `evaluation_split`."""
    data = config["data"]
    ids = (
        frame[data["id"]].astype(str)
        if data["id"]
        else pd.Series(frame.index.astype(str), index=frame.index)
    )
    is_test = ids.str.endswith(tuple(data["test_suffixes"]))
    is_valid = ~is_test & ids.str.endswith(tuple(data["validation_suffixes"]))
    train, valid, test = frame[~is_test], frame[is_valid], frame[is_test]
    if config["evaluate"]["split"] == "validation":
        train, test = frame[~is_test & ~is_valid], valid
    return train, valid, test


@pytest.mark.parametrize("split", ["test", "validation"])
@pytest.mark.parametrize("id_column", ["id", ""])
def test_text_split_rows_match_the_direct_construction(split, id_column):
    frame = _interactions().set_index(np.arange(400) * 3)
    # The keys the text split reads, as configs/tweets_text.toml sets them.
    config = {
        "data": {
            "id": id_column,
            "test_suffixes": ["0", "5"],
            "validation_suffixes": ["1", "6"],
        },
        "evaluate": {"split": split},
    }
    for got, expected in zip(
        text_split_rows(frame, config),
        _text_split_by_hand(frame, config),
        strict=True,
    ):
        _assert_same_rows(got, expected)
