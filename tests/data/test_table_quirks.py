"""Tables as other tools write them: a Parquet index, mixed decimal marks."""

import numpy as np
import pandas as pd
import pytest

from recsys.data.sources import index_as_columns
from recsys.data.sources import load_interactions
from recsys.init_config import init_config

POLLS = pd.DataFrame(
    {
        "pollster": ["Ipsos", "YouGov", "Ipsos", "Gallup", "YouGov"],
        "state": ["Ohio", "Iowa", "Iowa", "Ohio", "Utah"],
        "samplesize": [900.0, 1200.0, 850.0, 1000.0, 640.0],
    }
)


@pytest.mark.parametrize("max_rows", [None, 3])
def test_a_named_parquet_index_is_read_as_its_column(tmp_path, max_rows):
    # `set_index("pollster").to_parquet(...)` stores the column; pandas
    # made it the index again, and `--user pollster` was "not a column".
    path = tmp_path / "polls.parquet"
    POLLS.set_index("pollster").to_parquet(path)
    frame = load_interactions(path, max_rows=max_rows)
    expected = POLLS.head(max_rows) if max_rows else POLLS
    pd.testing.assert_frame_equal(frame, expected)


def test_an_unnamed_parquet_index_stays_out_of_the_columns(tmp_path):
    # `__index_level_0__` (a filtered frame written with its index) numbers
    # rows: no column of its own.
    path = tmp_path / "polls.parquet"
    POLLS[POLLS["state"] != "Utah"].iloc[::-1].to_parquet(path)
    assert list(load_interactions(path).columns) == list(POLLS.columns)


def test_index_as_columns_keeps_a_level_named_like_a_column():
    frame = POLLS.set_index(pd.Index([7, 8, 9, 10, 11], name="state"))
    assert index_as_columns(frame) is frame
    both = POLLS.set_index(["pollster", "state"])
    assert list(index_as_columns(both).columns) == list(POLLS.columns)


def test_init_reads_the_user_of_a_parquet_index(tmp_path):
    path = tmp_path / "polls.parquet"
    POLLS.set_index("pollster").to_parquet(path)
    columns = {"user": "pollster", "item": "state"}
    text = init_config("two_tower", str(path), columns=columns)
    assert 'user = "pollster"' in text


HMDA = pd.DataFrame(
    {
        "deny": ["no", "yes"] * 30,
        # Held as text for its "n/a" cells: `to_csv(decimal=",")` writes
        # it with points, its float columns with commas.
        "pirat": [f"0.{i + 10}" for i in range(57)] + ["n/a", "0.5", "n/a"],
        "hirat": [0.25 + i / 100 for i in range(60)],
        "price": [f"{i}.500" for i in range(1, 61)],  # thousands, by points
    }
)


@pytest.fixture
def decimal_comma_csv(tmp_path):
    path = tmp_path / "hmda.csv"
    frame = HMDA.assign(pirat=HMDA["pirat"].astype(object))
    frame.to_csv(path, index=False, sep=";", decimal=",")
    return path


def test_point_decimals_in_a_decimal_comma_file_are_numbers(
    decimal_comma_csv,
):
    frame = load_interactions(decimal_comma_csv)
    assert frame["pirat"].dtype == "float64"
    assert frame["pirat"].isna().sum() == 2  # "n/a", pandas' missing mark
    assert frame["pirat"].iloc[0] == 0.10
    assert frame["hirat"].iloc[1] == 0.26  # its commas, as before
    # `1.500` may be 1500 in such a file: left as written.
    assert frame["price"].iloc[0] == "1.500"


def test_init_declares_point_decimals_numeric_with_missing_cells(
    decimal_comma_csv,
):
    # Before: kind = "categorical"  # 58 values, and no word of why.
    text = init_config("tabular", str(decimal_comma_csv), columns={})
    table = text.split("[features.pirat]\n")[1].split("\n")[0]
    assert 'kind = "numeric"' in table and "read as missing" in table


def test_init_names_the_cells_that_keep_numbers_categorical():
    frame = pd.DataFrame(
        {
            "label": ["a", "b"] * 50,
            "timestamp": range(1_700_000_000, 1_700_000_100),
            "income": [str(1000 + 7 * (i % 40)) for i in range(97)] + ["?"] * 3,
        }
    )
    text = init_config("tabular", frame=frame, columns={"label": "label"})
    table = text.split("[features.income]\n")[1].split("\n")[0]
    assert 'kind = "categorical"' in table
    assert "numbers but for '?' (3 cells): empty those cells" in table
    # Two marks on 6% of the cells (was: a categorical of 43 values, no
    # word), and a blank one shown as written.
    income = frame["income"].copy()
    income[[5, 50, 60]] = ["-", " ", "-"]
    text = init_config(
        "tabular",
        frame=frame.assign(income=income),
        columns={"label": "label"},
    )
    table = text.split("[features.income]\n")[1].split("\n")[0]
    assert "numbers but for '-', ' ', '?' (6 cells)" in table
    # Decimal commas in a file separated by commas: text there, said.
    commas = [f"{i % 10},{i % 3}5" for i in range(100)]
    text = init_config(
        "tabular", frame=frame.assign(income=commas), columns={"label": "label"}
    )
    table = text.split("[features.income]\n")[1].split("\n")[0]
    assert "numbers with a decimal comma? A file separated by ';'" in table


def test_the_scorer_reads_missing_cells_as_training_does(decimal_comma_csv):
    # pyarrow kept "n/a" (and empty text cells) as values where pandas,
    # which read the training table, reads them as missing: `recsys score`
    # refused "Column 'pirat' must be numeric ... e.g. ['n/a']".
    import pyarrow as pa

    from recsys.scoring import _batches
    from recsys.scoring import _text_marks_missing

    batches, *_ = _batches(str(decimal_comma_csv), 1000)
    scored = pa.Table.from_batches(list(batches)).to_pandas()
    scored = _text_marks_missing(scored)
    trained = load_interactions(decimal_comma_csv)
    assert scored["pirat"].isna().tolist() == trained["pirat"].isna().tolist()
    pd.testing.assert_series_equal(
        pd.to_numeric(scored["pirat"]), trained["pirat"]
    )


def test_missing_marks_are_pandas_own():
    from pandas._libs.parsers import STR_NA_VALUES

    from recsys.data.sources import MISSING_MARKS

    assert set(MISSING_MARKS) == set(STR_NA_VALUES)


def test_none_is_a_value_in_text_and_missing_in_numbers(tmp_path):
    # pandas reads the text "None" as missing: mosaicData Weather's
    # `events`, "None" on 61% of days, lost its majority class (its rows
    # dropped as without a label). In a column of numbers or times it
    # still means no value; "NA" stays missing everywhere.
    path = tmp_path / "weather.csv"
    path.write_text(
        "events,gust,day,zip,note\n"
        "None,None,2017-01-01,0042,NA\n"
        "Rain,12.5,None,0043,windy\n"
        "None,7,2017-01-03,None,None\n"
    )
    frame = load_interactions(path)
    assert frame["events"].tolist() == ["None", "Rain", "None"]
    assert frame["gust"].dtype == float
    assert frame["gust"].isna().tolist() == [True, False, False]
    assert frame["day"].isna().tolist() == [False, True, False]
    assert frame["zip"].tolist() == ["0042", "0043", "None"]  # a code
    assert frame["note"].isna().tolist() == [True, False, False]
    assert frame["note"].iloc[2] == "None"
    decimal = tmp_path / "comma.csv"
    decimal.write_text("kind;price\nNone;1,5\nBig;None\n")
    read = load_interactions(decimal)
    assert read["kind"].tolist() == ["None", "Big"]
    assert read["price"].iloc[0] == 1.5 and pd.isna(read["price"].iloc[1])


def test_the_scorer_reads_none_as_training_does(tmp_path):
    import pyarrow as pa

    from recsys.scoring import _batches
    from recsys.scoring import _text_marks_missing

    path = tmp_path / "rows.csv"
    path.write_text("events,gust,note\nNone,None,NA\nRain,12.5,\n")
    batches, *_ = _batches(str(path), 1000)
    scored = _text_marks_missing(
        pa.Table.from_batches(list(batches)).to_pandas()
    )
    trained = load_interactions(path)
    assert scored["events"].tolist() == trained["events"].tolist()
    assert scored["note"].isna().all() and trained["note"].isna().all()
    pd.testing.assert_series_equal(scored["gust"], trained["gust"])


def test_none_alone_is_text_and_none_in_a_time_layout_is_missing(tmp_path):
    from recsys.kinds.base import source_table

    path = tmp_path / "days.csv"
    path.write_text("events,day,x\nNone,24/12/2010,1\nNone,None,2\n")
    frame = load_interactions(path)
    assert frame["events"].tolist() == ["None", "None"]  # a day of none
    data = {
        "source": str(path),
        "time": "day",
        "time_format": "%d/%m/%Y",
        "drop_missing": True,
        "label": "x",
    }
    # A time in the config's layout: "None" is no time (dropped here).
    read = source_table({"data": data})
    assert read["day"].tolist() == [pd.Timestamp("2010-12-24")]


def test_a_time_that_does_not_parse_is_named_by_its_row_of_the_file(tmp_path):
    from recsys.kinds.base import source_table

    # Rows dropped before the times were read numbered the rest afresh: the
    # bad date (file row 3) was reported at row 2.
    path = tmp_path / "days.csv"
    path.write_text(
        "u,i,day\n1,a,01/03/2024\n,b,02/03/2024\n2,c,03/03/2024\n"
        "3,d,31/02/2024\n"
    )
    data = {
        "source": str(path),
        "user": "u",
        "item": "i",
        "time": "day",
        "time_format": "%d/%m/%Y",
        "drop_missing": True,
    }
    with pytest.raises(ValueError, match=r"'31/02/2024' \(row 3\)"):
        source_table({"data": data})


def test_a_frame_of_numbered_columns_is_named_by_the_config_as_text():
    from recsys.kinds.base import source_table

    # pd.DataFrame(array): a config's "0" named no column ("did you mean
    # '0' (for '0')?"), and nothing else could.
    frame = pd.DataFrame([[1, 10, 5], [2, 11, 6]])
    data = {"user": "0", "item": "1", "time": "2"}
    read = source_table({"data": data}, frame)
    assert read.columns.tolist() == ["0", "1", "2"]
    assert frame.columns.tolist() == [0, 1, 2]  # the caller's, as it was
    with pytest.raises(ValueError, match=r"columns \['0'\] are alike"):
        source_table({"data": data}, frame.set_axis([0, "0", 2], axis=1))
    # A name given twice: pandas hands a table for it, and the checks
    # failed on that ("'DataFrame' object has no attribute 'dtype'").
    twice = frame.set_axis(["user", "item", "user"], axis=1)
    with pytest.raises(ValueError, match="names the column 'user' more than"):
        source_table({"data": {**data, "user": "user"}}, twice)
    # One nothing reads (after a pd.concat): its copies are left out.
    notes = frame.set_axis(["user", "note", "note"], axis=1)
    read = source_table({"data": {**data, "user": "user", "item": ""}}, notes)
    assert read.columns.tolist() == ["user"]


def test_a_numeric_feature_cell_that_is_no_time_is_named_by_its_file_row():
    from recsys.kinds.base import source_table

    # Fitting sees the training split's rows, numbered afresh: the bad
    # date of file row 7 was named at its row among them.
    days = [f"2024-01-{d:02d}" for d in range(1, 11)]
    days[7] = "2024-02-30"
    frame = pd.DataFrame({"x": range(10), "signup": days, "y": [0, 1] * 5})
    config = {
        "data": {"label": "y"},
        "features": {"signup": {"kind": "numeric"}, "x": {"kind": "numeric"}},
    }
    with pytest.raises(ValueError, match=r"'2024-02-30' \(row 7\)"):
        source_table(config, frame)


def test_numbers_grouped_by_commas_are_read_trained_and_scored(tmp_path):
    # A spreadsheet's "30,841": read as text, init made the label a task of
    # 1,963 classes (and a feature a categorical of as many values).
    rng = np.random.default_rng(0)
    age = rng.integers(18, 80, 400)
    income = 20000 + 800 * age + rng.integers(0, 8000, 400)
    frame = pd.DataFrame(
        {
            "age": [f"{a * 1000:,}" for a in age],  # 18,000 ... 79,000
            "name": [f"Smith, {i}" for i in range(400)],  # commas in text
            "pair": [f"{a},{a % 7}" for a in age],  # no thousands
            "income": [f"{v:,}" for v in income],
        }
    )
    path = tmp_path / "incomes.csv"
    frame.to_csv(path, index=False)
    read = load_interactions(path)
    assert read["income"].tolist() == income.tolist()
    assert read["age"].iloc[0] == age[0] * 1000
    assert read["name"].iloc[0] == "Smith, 0"
    assert read["pair"].iloc[0] == f"{age[0]},{age[0] % 7}"  # left as text
    text = init_config("tabular", str(path), columns={"label": "income"})
    assert 'task = "regression"' in text
    age_table = text.split("[features.age]\n")[1].split("\n")[0]
    assert 'kind = "numeric"' in age_table
    _check_scored_as_read(text, path, read.drop(columns="income"), tmp_path)


def _check_scored_as_read(config_text, path, features, tmp_path):
    """Trains the config `config_text` (2 epochs), then checks that `recsys
    score` of the file at `path`, which reads it its own way (pyarrow),
    scores it as `features` (the table as training read it) predict."""
    from recsys import train
    from recsys.config import load_config
    from recsys.scoring import score_file

    config = tmp_path / "config.toml"
    config.write_text(config_text)
    bundle, _ = train(
        load_config(str(config), ["train.epochs=2", "evaluate.baselines=[]"]),
        str(tmp_path / "bundle"),
        progress=False,
    )
    out = tmp_path / f"scored{path.suffix}"  # written as the file is
    score_file(bundle, str(path), str(out), progress=False)
    read = pd.read_parquet if out.suffix == ".parquet" else pd.read_csv
    np.testing.assert_allclose(
        read(out).iloc[:, -1], np.ravel(bundle.predict(features)), rtol=1e-5
    )


def test_numbers_grouped_by_points_beside_decimal_commas_are_numbers(tmp_path):
    # A German spreadsheet's `;` export writes 124.983,30: read as text, init
    # made the column a categorical of as many values as rows.
    rng = np.random.default_rng(0)
    spent = np.round(rng.uniform(10, 200_000, 300), 2)
    frame = pd.DataFrame(
        {
            "spent": [
                f"{v:,.2f}".replace(",", " ")
                .replace(".", ",")
                .replace(" ", ".")
                for v in spent
            ],
            "share": [f"{v:.3f}".replace(".", ",") for v in spent / 2e5],
            "bought": (spent > 90_000).astype(int),
        }
    )
    assert frame["spent"].str.contains(".", regex=False).any()
    path = tmp_path / "ausgaben.csv"
    frame.to_csv(path, sep=";", index=False)
    read = load_interactions(path)
    np.testing.assert_allclose(read["spent"], spent)
    text = init_config("tabular", str(path), columns={"label": "bought"})
    spent_table = text.split("[features.spent]\n")[1].split("\n")[0]
    assert 'kind = "numeric"' in spent_table
    _check_scored_as_read(text, path, read.drop(columns="bought"), tmp_path)


def test_a_semicolon_file_of_decimal_points_reads_its_commas_as_thousands(
    tmp_path,
):
    # Its 2,733 was read as 2.733 (the whole file taken for decimal commas),
    # below 950, without a word.
    path = tmp_path / "spent.csv"
    path.write_text("age;spent\n37.25;2,733\n33.5;950\n41.75;1,283\n")
    read = load_interactions(path)
    assert read["spent"].tolist() == [2733, 950, 1283]
    assert read["age"].tolist() == [37.25, 33.5, 41.75]
    # With no decimal point anywhere, the commas are decimal marks.
    path.write_text("litres;bottles\n1,500;2\n0,750;1\n")
    assert load_interactions(path)["litres"].tolist() == [1.5, 0.75]
    path.write_text("litres;bottles\n1,500;2\n2,250;1\n")
    assert load_interactions(path)["litres"].tolist() == [1.5, 2.25]


def test_rs_write_table_keeps_its_row_names_as_a_column(tmp_path):
    # Its header is one field short: pandas made the row names the index
    # and they were dropped (ids kept as row names vanished), and `recsys
    # score` refused the file as rows of more fields than the header.
    from recsys.scoring import _batches

    path = tmp_path / "accounts.csv"
    path.write_text('"plan","spent"\n"a17","x",1.5\n"b22","y",2.5\n')
    read = load_interactions(path)
    assert read.columns.tolist() == ["rownames", "plan", "spent"]
    assert read["rownames"].tolist() == ["a17", "b22"]
    assert read.index.tolist() == [0, 1]
    batches, _, names, *_ = _batches(str(path), 10)
    assert names == ["rownames", "plan", "spent"]
    scored = pd.concat(batch.to_pandas() for batch in batches)
    assert scored["rownames"].tolist() == ["a17", "b22"]


def test_parquet_decimals_are_read_as_their_csv_is(tmp_path):
    # A database's export writes money as decimal128: pandas gave Python
    # Decimal objects, and init left the prices out as "a row id".
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    price = np.round(rng.uniform(1, 5000, 300), 2)
    cents = [decimal.Decimal(f"{v:.2f}") for v in price]
    table = pa.table(
        {
            "price": pa.array(cents, pa.decimal128(8, 2)),
            "store": pa.array(
                [decimal.Decimal(int(v) % 7) for v in price],
                pa.decimal128(4, 0),
            ),
            "account": pa.array(
                [decimal.Decimal(10**17 + i) for i in range(300)],
                pa.decimal128(20, 0),
            ),
            "bought": (price > 2500).astype(int),
        }
    )
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path)
    read = load_interactions(path)
    np.testing.assert_allclose(read["price"], price)
    assert read["store"].dtype == "int64"
    assert read["account"].iloc[1] == str(10**17 + 1)  # an id: exact text
    text = init_config("tabular", str(path), columns={"label": "bought"})
    price_table = text.split("[features.price]\n")[1].split("\n")[0]
    assert 'kind = "numeric"' in price_table
    _check_scored_as_read(text, path, read.drop(columns="bought"), tmp_path)


@pytest.mark.parametrize("column", ["color", "size"])
def test_a_feature_column_empty_on_every_row_is_refused(
    tmp_path, capsys, column
):
    # A categorical one trained on nothing but its missing value, without
    # a word (an upstream join that broke); a numeric one was refused.
    from recsys.cli import main

    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "color": rng.choice(["red", "blue", "green"], 200),
            "size": rng.normal(size=200),
            "bought": rng.integers(0, 2, 200),
        }
    )
    path = tmp_path / "orders.csv"
    table.to_csv(path, index=False)
    config = tmp_path / "orders.toml"
    text = init_config(
        "tabular", str(path), source=str(path), columns={"label": "bought"}
    )
    config.write_text(text)
    table.assign(**{column: None}).to_csv(path, index=False)
    argv = ["train", str(config), "-o", str(tmp_path / "b"), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"Column '{column}' is empty on every one of the" in err, err
    assert f"Fix: remove [features.{column}]" in err
