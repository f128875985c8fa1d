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


def test_suffix_split_reads_whole_float_ids_as_integers_and_refuses_lost_digits(
    tmp_path,
):
    # A CSV id column with a blank cell is read as float64: 6971079756.0.
    path = tmp_path / "t.csv"
    path.write_text("id,x\n6971079756,1\n6312794445,2\n,3\n")
    frame = pd.read_csv(path)
    with pytest.raises(
        ValueError, match=r"'id' has 1 missing values \(rows \[2\]"
    ):
        suffix_split(frame, ["5"], id_column="id")
    kept, held = suffix_split(frame.dropna(), ["5"], id_column="id")
    assert held["x"].tolist() == [2] and kept["x"].tolist() == [1]
    # Tweet ids beyond 2**53 have lost their last digits as floats.
    frame = pd.DataFrame({"id": [815973752785793024.0, 10.0]})
    with pytest.raises(ValueError, match="store the ids as text"):
        suffix_split(frame, ["0"], id_column="id")
    with pytest.raises(ValueError, match=r"e.g. \[10.5\]"):
        suffix_split(pd.DataFrame({"id": [10.5]}), ["5"], id_column="id")


@pytest.mark.parametrize("dtype", ["Int64", "string", "object"])
def test_suffix_split_refuses_missing_ids_of_every_dtype(dtype):
    # pd.NA (nullable Int64, string) and None were written as text, "<NA>"
    # and "None": no suffix, so the row trained. Refused as NaN is.
    ids = pd.Series([10, 11, None, 15], dtype=dtype)
    frame = pd.DataFrame({"id": ids, "x": range(4)})
    with pytest.raises(
        ValueError, match=r"'id' has 1 missing values \(rows \[2\]"
    ):
        suffix_split(frame, ["5"], id_column="id")
    kept, held = suffix_split(frame.dropna(), ["5"], id_column="id")
    assert held["x"].tolist() == [3] and kept["x"].tolist() == [0, 1]


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
    """The text kind's split as it was written before `evaluation_split`,
    by row number: the frame's own index labels play no part."""
    frame = frame.reset_index(drop=True)
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


# --- The rules beyond per-user time (data.split) ---------------------------

from recsys.data.split import SplitRule  # noqa: E402
from recsys.data.split import held_count  # noqa: E402
from recsys.data.split import split_table  # noqa: E402


def _rule(method, **options):
    return SplitRule(method, **options, **COLUMNS)


def test_held_count_is_exact_for_decimal_fractions():
    # 0.2 * 15 is 3.0000000000000004 in floats: a naive ceil holds out 4.
    assert held_count(15, 0.2) == 3
    assert [held_count(n, 0.2) for n in range(1, 12)] == [
        (n + 4) // 5 for n in range(1, 12)
    ]


def test_per_user_fraction_holds_out_that_share_of_each_user():
    frame = _interactions()
    _, held = temporal_split(frame, **COLUMNS, fraction=0.5)
    sizes = frame.groupby("u").size()
    assert (held.groupby("u").size() == (sizes + 1) // 2).all()


def test_time_split_holds_out_the_latest_rows_of_the_whole_table():
    frame = _interactions()
    train, test = split_table(frame, _rule("time", fraction=0.25))
    assert train["t"].max() < test["t"].min()
    # Rows tied with the first held-out time are held out too.
    assert len(test) >= 100 and len(train) + len(test) == len(frame)
    fit, validation = split_table(
        frame, _rule("time", fraction=0.25), validation=True
    )
    assert fit["t"].max() < validation["t"].min() <= train["t"].max()
    assert validation["t"].max() < test["t"].min()


def test_a_time_split_that_one_time_defeats_names_it():
    # Ecdat's breaches: 691 of 1,055 rows posted on one date.
    frame = _interactions()
    frame["t"] = np.where(
        np.arange(len(frame)) < 0.9 * len(frame), 7, frame["t"]
    )
    with pytest.raises(
        ValueError, match=r"one time, 7, holds .* data.split = \"random\""
    ):
        split_table(frame, _rule("time", fraction=0.25))
    frame["t"] = 7
    with pytest.raises(ValueError, match="every row has the same time"):
        split_table(frame, _rule("time", fraction=0.25))


def test_time_split_at_a_cutoff_date():
    frame = _interactions()
    frame["t"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["t"], "D")
    train, test = split_table(frame, _rule("time", cutoff="2024-03-01"))
    assert (test["t"] >= pd.Timestamp("2024-03-01")).all()
    assert (train["t"] < pd.Timestamp("2024-03-01")).all()
    # A cutoff with an offset on naive times: compared in UTC.
    _, utc = split_table(frame, _rule("time", cutoff="2024-03-01T01:00+01:00"))
    assert len(utc) == len(test)
    with pytest.raises(ValueError, match="outside the times of column 't'"):
        split_table(frame, _rule("time", cutoff="2030-01-01"))
    with pytest.raises(ValueError, match="not a time"):
        split_table(frame, _rule("time", cutoff="next tuesday"))
    # A number on times: pandas would read nanoseconds since 1970 (every
    # row held out); seconds 1709251200 are 2024-03-01.
    with pytest.raises(ValueError, match=r"is a number, and column 't' holds"):
        split_table(frame, _rule("time", cutoff=1709251200))
    # In the column's own layout, read with data.time_format: day first.
    _, day_first = split_table(
        frame, _rule("time", cutoff="01/03/2024", time_format="%d/%m/%Y")
    )
    assert len(day_first) == len(test)


def test_random_split_follows_its_seed():
    frame = _interactions()
    train, test = split_table(frame, _rule("random", fraction=0.1, seed=3))
    again = split_table(frame, _rule("random", fraction=0.1, seed=3))[1]
    other = split_table(frame, _rule("random", fraction=0.1, seed=4))[1]
    assert len(test) == 40 and len(train) == 360
    _assert_same_rows(test, again)
    assert not test["id"].equals(other["id"])
    fit, validation = split_table(
        frame, _rule("random", fraction=0.1, seed=3), validation=True
    )
    assert set(fit["id"]) | set(validation["id"]) == set(train["id"])
    assert not set(validation["id"]) & set(test["id"])


def test_column_split_reads_the_users_marks():
    frame = _interactions()
    frame["part"] = np.where(
        frame["id"] % 5 == 0,
        "test",
        np.where(frame["id"] % 5 == 1, "Validation", "train"),
    )
    rule = _rule("column", column="part")
    train, test = split_table(frame, rule)
    assert set(test["id"]) == set(frame.loc[frame["part"] == "test", "id"])
    fit, validation = split_table(frame, rule, validation=True)
    assert set(validation["id"]) == set(frame.loc[frame["id"] % 5 == 1, "id"])
    assert len(fit) + len(validation) == len(train)
    frame.loc[3, "part"] = "holdout"
    with pytest.raises(ValueError, match="'holdout'.*mark every row"):
        split_table(frame, rule)
    with pytest.raises(ValueError, match='marked "test"'):
        split_table(frame.assign(part="train"), rule)


def test_split_keys_are_checked_in_the_config():
    from recsys.config import load_config
    from recsys.errors import ConfigError

    base = "configs/examples/interactions.toml"
    with pytest.raises(ConfigError, match="split_column go together"):
        load_config(base, ['data.split="column"'])
    with pytest.raises(ConfigError, match="read only by"):
        load_config(base, ['data.split_cutoff="2024-01-01"'])
    with pytest.raises(ConfigError, match="test_fraction"):
        load_config(base, ["data.test_fraction=1.5"])
    with pytest.raises(ConfigError, match="split by time only"):
        load_config(base, ['data.path="shards"', 'data.split="random"'])
    config = load_config(base, ['data.split="time"', "data.split_cutoff=10"])
    assert config["data"]["split_cutoff"] == 10


# --- data.split = "none": every row trains, the carve is "auto"'s ----------

from recsys.config.common import NO_TIME  # noqa: E402
from recsys.data.split import split_rule  # noqa: E402


def _data(split, **keys):
    return {"split": split, "user": "u", "item": "i", "time": "t", **keys}


def test_split_none_holds_out_nothing_and_carves_as_auto():
    frame = _interactions()
    train, test = split_table(frame, split_rule(_data("none")))
    # Every row, in the order of any split; no test rows.
    ordered = frame.sort_values(["u", "t", "i"], kind="stable")
    _assert_same_rows(train, ordered.reset_index(drop=True))
    assert len(test) == 0 and list(test.columns) == list(frame.columns)
    # The validation carve: "auto"'s (each user's latest rows) of every row.
    fit, validation = split_table(
        frame, split_rule(_data("none")), validation=True
    )
    expected = temporal_split(frame, **COLUMNS)
    _assert_same_rows(fit, expected[0])
    _assert_same_rows(validation, expected[1])
    assert split_rule(_data("none", test_fraction=0.3)).describe() == {
        "method": "none",
        "validation": {"method": "user_time", "test_fraction": 0.3},
    }


def test_split_none_carves_at_random_without_ids_or_times():
    frame = _interactions()
    # A table without ids or times: "auto" draws rows at random.
    rule = split_rule({"split": "none", "user": "", "time": "", "item": ""})
    assert rule.carving == SplitRule("random")
    # Ids without times (`data.time = ""` read as NO_TIME): at random too.
    timeless = split_rule(_data("none", time=NO_TIME, split_seed=4))
    assert timeless.carving.method == "random"
    assert timeless.carving.seed == 4
    fit, validation = split_table(
        frame.assign(**{NO_TIME: 0}), timeless, validation=True
    )
    assert len(validation) == 80 and len(fit) == 320
