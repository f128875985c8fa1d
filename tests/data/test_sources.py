"""A user's table in any common form reads as its CSV does (issue #15)."""

import gzip
import os

import numpy as np
import pandas as pd
import pytest

from recsys.data.sources import check_output_file
from recsys.data.sources import csv_layout
from recsys.data.sources import load_interactions
from recsys.data.sources import table_form

TABLE = pd.DataFrame(
    {
        "user": [1, 1, 2, 3],
        "item": ["a", "b", "a", "c"],
        "rating": [4.5, 3.0, 5.0, 1.5],
        "timestamp": [1700000000, 1700000100, 1700000200, 1700000300],
        "day": ["2024-03-01", "2024-03-02", "2024-03-01T12:00", "2024-03-04"],
    }
)


def _write(path, form):
    """Writes TABLE at `path` in the form its name says."""
    if form == "csv":
        TABLE.to_csv(path, index=False)
    elif form == "tsv":
        TABLE.to_csv(path, sep="\t", index=False)
    elif form == "jsonl":
        TABLE.to_json(path, orient="records", lines=True)
    elif form == "json":
        TABLE.to_json(path, orient="records")
    elif form == "json-columns":
        TABLE.to_json(path)  # pandas' own default: an object of columns
    elif form == "parquet":
        TABLE.to_parquet(path, index=False)
    elif form == "parquet-dir":
        os.makedirs(path)
        TABLE.iloc[:2].to_parquet(os.path.join(path, "part-0.parquet"))
        TABLE.iloc[2:].to_parquet(os.path.join(path, "part-1.parquet"))


@pytest.fixture
def as_csv(tmp_path):
    path = tmp_path / "reference.csv"
    _write(path, "csv")
    return pd.read_csv(path)


@pytest.mark.parametrize(
    "name, form",
    [
        ("ratings.csv", "csv"),
        ("ratings.csv.gz", "csv"),
        ("ratings.csv.bz2", "csv"),
        ("ratings.CSV.XZ", "csv"),
        ("ratings.tsv", "tsv"),
        ("ratings.tsv.gz", "tsv"),
        ("ratings.jsonl", "jsonl"),
        ("ratings.ndjson", "jsonl"),
        ("ratings.jsonl.gz", "jsonl"),
        ("ratings.json", "json"),
        ("ratings.json.gz", "json"),
        ("ratings.json", "json-columns"),
        ("ratings.json", "jsonl"),  # one object a line, named .json
        ("ratings.parquet", "parquet"),
        ("shards", "parquet-dir"),
    ],
)
def test_every_form_reads_as_its_csv(tmp_path, as_csv, name, form):
    path = tmp_path / name
    _write(path, form)
    frame = load_interactions(str(path))
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), as_csv)


@pytest.mark.parametrize(
    "name, sep, decimal",
    [
        ("ratings.csv", ";", ","),  # a spreadsheet's CSV in a comma locale
        ("ratings.csv.gz", ";", "."),
        ("ratings.csv", "|", "."),
        ("ratings.csv", "\t", "."),
    ],
)
def test_a_csv_of_other_separators_reads_as_its_comma_csv(
    tmp_path, as_csv, name, sep, decimal
):
    path = tmp_path / name
    TABLE.to_csv(path, sep=sep, decimal=decimal, index=False)
    pd.testing.assert_frame_equal(load_interactions(str(path)), as_csv)


@pytest.mark.parametrize(
    "name, sep", [("a.csv", ","), ("a.csv", ";"), ("a.tsv.gz", "\t")]
)
def test_digits_with_leading_zeros_stay_text(tmp_path, name, sep):
    path = tmp_path / name
    pd.DataFrame(
        {
            "user": ["0042", "0007", "1234"],
            "item": ["1", "2", "3"],
            "n": [1, 2, 3],
        }
    ).to_csv(path, sep=sep, index=False)
    frame = load_interactions(str(path))
    assert frame["user"].tolist() == ["0042", "0007", "1234"]
    # Plain numbers stay numbers.
    assert frame["item"].tolist() == [1, 2, 3]
    assert frame["n"].dtype.kind == "i"


def test_ids_of_sixteen_digits_or_more_stay_text(tmp_path):
    # Tweet ids beside an empty cell: as numbers the column is float64 and
    # 1212121212121212121 would come back as 1212121212121212160.
    path = tmp_path / "tweets.csv"
    path.write_text(
        "id_str,likes,text\n"
        "1212121212121212121,3,a\n"
        ",4,b\n"
        "1000000000000000001,5,c\n"
    )
    frame = load_interactions(str(path))
    assert frame["id_str"].tolist()[::2] == [
        "1212121212121212121",
        "1000000000000000001",
    ]
    assert frame["id_str"].isna().tolist() == [False, True, False]
    assert frame["likes"].dtype.kind == "i"  # short numbers stay numbers


def _late_padded_ids(path, sep=","):
    """A table whose first 1,200 rows hold customers 10000-10199 and whose
    next rows hold `00150`-like ids beside `150`-like ones."""
    first = [str(10000 + i % 200) for i in range(1200)]
    later = [
        f"{100 + i % 100:05d}" if i % 2 else str(100 + i % 100)
        for i in range(400)
    ]
    customers = first + later
    pd.DataFrame(
        {
            "customer": customers,
            "product": [f"p{i % 50}" for i in range(len(customers))],
            "ts": range(len(customers)),
        }
    ).to_csv(path, sep=sep, index=False)
    return customers


@pytest.mark.parametrize(
    "name, sep",
    [
        ("late.csv", ","),
        ("late.csv.gz", ";"),
        ("late.tsv", "\t"),
        ("late.csv.xz", ","),  # not pyarrow's: pandas reads it through
    ],
)
def test_leading_zeros_after_the_first_rows_stay_text(tmp_path, name, sep):
    # The first 1,000 rows alone decided: `00150` and `150` were one id.
    path = tmp_path / name
    customers = _late_padded_ids(path, sep)
    frame = load_interactions(path)
    assert frame["customer"].tolist() == customers
    assert frame["customer"].nunique() == 300
    assert frame["ts"].dtype.kind == "i"  # whole numbers stay numbers
    assert csv_layout(str(path), "\t" if sep == "\t" else None)["dtype"] == {
        "customer": str
    }


def test_the_scorer_reads_late_leading_zeros_as_training_does(tmp_path):
    import pyarrow as pa

    from recsys.scoring import _batches

    path = tmp_path / "late.csv"
    customers = _late_padded_ids(path)
    batches, *_ = _batches(str(path), 500)
    scored = pa.Table.from_batches(list(batches)).to_pandas()
    assert scored["customer"].tolist() == customers


def test_long_ids_after_the_first_rows_stay_text(tmp_path):
    # Short numbers for 1,000 rows, then a tweet id and an empty cell: as
    # numbers the column was float64, 1212121212121212121 lost its digits.
    path = tmp_path / "tweets.csv"
    ids = [str(i) for i in range(1000)] + ["1212121212121212121", ""]
    path.write_text("id,likes\n" + "".join(f"{i},1\n" for i in ids))
    frame = load_interactions(path)
    assert frame["id"].iloc[1000] == "1212121212121212121"
    assert frame["id"].iloc[-1:].isna().all()
    # Beside a cell that is no whole number, they are numbers as before.
    path.write_text("id,likes\n" + "".join(f"{i},1\n" for i in ids) + "1.5,1\n")
    assert load_interactions(path)["id"].dtype == "float64"


@pytest.mark.parametrize(
    "text, expected",
    [
        # Decimal commas with empty cells: rows of 1 and 2 commas.
        ("id;a;b\n1;0,5;\n2;0,5;1,5\n", {"a": [0.5, 0.5], "b": [np.nan, 1.5]}),
        # A text cell holding a comma.
        (
            "id;name;city\n1;Doe;Berlin\n2;Smith, John;Paris\n3;Roe;Rome\n",
            {"name": ["Doe", "Smith, John", "Roe"]},
        ),
        # Every cell quoted (`quoting=csv.QUOTE_ALL`), with a byte-order mark.
        (
            '\ufeff"id";"name";"score"\n"1";"Roe";""\n'
            '"2";"Smith, John";"0,5"\n"3";"Doe";"1,25"\n',
            {
                "name": ["Roe", "Smith, John", "Doe"],
                "score": [np.nan, 0.5, 1.25],
            },
        ),
        # A quoted header name holding a comma.
        (
            'id;"size, cm"\n1;2,5\n2;3\n',
            {"size, cm": [2.5, 3.0]},
        ),
    ],
)
@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_a_semicolon_csv_reads_whatever_commas_its_rows_hold(
    tmp_path, text, expected, name
):
    # pandas read the first rows with `sep=","` before the header was
    # looked at: "Error tokenizing data. C error: Expected 2 fields in
    # line 3, saw 3".
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    frame = load_interactions(path)
    assert frame["id"].tolist() == list(range(1, len(frame) + 1))
    for column, values in expected.items():
        pd.testing.assert_series_equal(
            frame[column], pd.Series(values, name=column), check_dtype=False
        )


@pytest.mark.parametrize(
    "header, sep",
    [
        ('"a;b",c,d\n', ","),  # quoted names hold the other marks
        ('"x, y";z\n', ";"),
        ("a;b,c\n", ","),  # a tie: the comma, as before
        ("a|b|c\n", "|"),
        ("a\tb\n", "\t"),
        ("text\n", ","),
    ],
)
def test_the_separator_is_the_headers_most_frequent(tmp_path, header, sep):
    path = tmp_path / "t.csv"
    path.write_text(header)
    assert csv_layout(str(path)).get("sep", ",") == sep


@pytest.mark.parametrize(
    "name, sep", [("t.csv", ","), ("t.csv", ";"), ("t.tsv", "\t")]
)
@pytest.mark.parametrize("line", [3, 1500])  # in the first rows, or after
def test_a_row_of_more_fields_than_the_header_names_the_line_and_the_fix(
    tmp_path, name, sep, line
):
    # pandas' own words named no file and no fix: "Error tokenizing data.
    # C error: Expected 2 fields in line 3, saw 3".
    path = tmp_path / name
    rows = [["id", "name"]] + [[str(i), "Roe"] for i in range(1, 2000)]
    rows[line - 1] = ["2", "Smith", " John"]
    path.write_text("\n".join(sep.join(row) for row in rows) + "\n")
    reads = [load_interactions]
    if line < 1000:  # in the rows `csv_layout` reads whole
        reads.append(lambda path: csv_layout(str(path)))
    for read in reads:
        with pytest.raises(ValueError) as caught:
            read(path)
        message = str(caught.value)
        assert (
            f"{path}: line {line} holds 3 fields separated by {sep!r}, "
            "where the header holds 2"
        ) in message
        assert "Fix: put the cells that hold" in message


def test_a_one_column_csv_stays_one_column(tmp_path):
    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": ["a; b", "c d", "e;f"]}).to_csv(path, index=False)
    assert list(load_interactions(str(path)).columns) == ["text"]


def test_jsonl_keeps_an_integer_timestamp_a_number(tmp_path):
    # pandas.read_json alone turns a column named "timestamp" into dates.
    path = tmp_path / "events.jsonl"
    _write(path, "jsonl")
    frame = load_interactions(path)
    assert frame["timestamp"].tolist() == TABLE["timestamp"].tolist()


@pytest.mark.parametrize(
    "name, form",
    [
        ("a.csv", ".csv"),
        ("a.csv.gz", ".csv"),
        ("a.tsv.tar.gz", ".tsv"),
        ("a.JSONL", ".jsonl"),
        ("a.json.zst", ".json"),
        ("a.ndjson", ".ndjson"),
        ("a.parquet", ".parquet"),
        ("a.xlsx", ""),
        ("a.gz", ""),
        ("csv", ""),
    ],
)
def test_table_form(name, form):
    assert table_form(name) == form


def test_unknown_extension_names_the_path_the_forms_and_the_fix(tmp_path):
    path = tmp_path / "ratings.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(ValueError) as caught:
        load_interactions(str(path))
    message = str(caught.value)
    assert str(path) in message
    assert ".csv" in message and ".tsv" in message and ".jsonl" in message
    assert "directory of Parquet files" in message
    assert "Fix:" in message


@pytest.mark.parametrize("name", ["events.json", "events.jsonl"])
def test_a_sample_of_a_json_table_reads_its_first_rows(tmp_path, name):
    path = tmp_path / name
    _write(path, "json" if name.endswith(".json") else "jsonl")
    frame = load_interactions(path, max_rows=2)
    assert frame["item"].tolist() == ["a", "b"]


@pytest.mark.parametrize("form", ["json", "jsonl"])
def test_a_json_file_read_with_a_progress_bar(
    tmp_path, as_csv, form, monkeypatch
):
    # The bar wraps the open file: a file of one object a line named .json
    # is read a second time from its start.
    monkeypatch.setattr("recsys.data.sources.PROGRESS_BYTES", 0)
    path = tmp_path / "events.json.gz"
    _write(path, form)
    frame = load_interactions(path, progress=True)
    pd.testing.assert_frame_equal(frame, as_csv)


def test_missing_file_names_it(tmp_path):
    path = str(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_interactions(path)


def test_text_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("user\titem\nJos\xe9\t1\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8.*Fix: save it as UTF-8"):
        load_interactions(str(path))
    # Deep in the file: its line, not the byte of pandas' block (was 0).
    rows = "".join(f"{i},x{i}\n" for i in range(3000)).encode()
    path = tmp_path / "late.csv"
    path.write_bytes(b"user,item\n" + rows + "Jos\xe9,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"line 3002, byte \d[\d,]*: invalid"):
        load_interactions(str(path))


def test_builtin_names_are_not_paths():
    frame = load_interactions("movielens")
    assert {"userId", "movieId", "timestamp"} <= set(frame.columns)


@pytest.mark.parametrize("name", ["big.csv", "big.csv.gz", "big.tsv.xz"])
def test_a_large_file_shows_the_bytes_read(tmp_path, monkeypatch, capsys, name):
    import recsys.data.sources as sources

    frame = pd.DataFrame({"user": range(3000), "item": ["a", "b", "c"] * 1000})
    path = tmp_path / name
    frame.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    monkeypatch.setattr(sources, "PROGRESS_BYTES", 1000)
    loaded = load_interactions(path, progress=True)
    pd.testing.assert_frame_equal(loaded, frame)
    assert f"read {name}" in capsys.readouterr().err
    load_interactions(path)  # no bar unless asked
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "name, form",
    [("r.csv", "csv"), ("r.jsonl", "jsonl"), ("shards", "parquet-dir")],
)
def test_max_rows_reads_the_first_rows(tmp_path, as_csv, name, form):
    path = tmp_path / name
    _write(path, form)
    head = load_interactions(str(path), max_rows=3)
    pd.testing.assert_frame_equal(head, as_csv.head(3))
    assert len(load_interactions("movielens", max_rows=2)) == 2


@pytest.mark.parametrize("name", ["empty.csv", "empty.tsv", "blank.csv"])
def test_an_empty_file_names_its_path_and_the_fix(tmp_path, name):
    # pandas' own error, "No columns to parse from file", names neither.
    path = tmp_path / name
    path.write_text("\n\n" if name == "blank.csv" else "")
    with pytest.raises(ValueError) as caught:
        load_interactions(str(path))
    message = str(caught.value)
    assert f"{path} is empty: it holds no header row. Fix:" in message


def test_a_directory_without_parquet_files_says_what_it_holds(tmp_path):
    # Empty, pandas read it as a table of no columns; of CSVs, pyarrow said
    # "Parquet magic bytes not found".
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"without \.parquet files \(it is "):
        load_interactions(str(empty))
    tables = tmp_path / "tables"
    tables.mkdir()
    _write(tables / "ratings.csv", "csv")
    with pytest.raises(ValueError) as caught:
        load_interactions(str(tables), max_rows=2)
    message = str(caught.value)
    assert f"{str(tables)!r} is a directory without .parquet" in message
    assert "(it holds ratings.csv)" in message
    assert repr(str(tables / "ratings.csv")) in message and "Fix:" in message
    # Parquet files beside a README: pyarrow's own words, and the fix.
    # (The whole table: `max_rows` reads the first files only, which may
    # be the Parquet one, in the directory's order.)
    _write(tables / "part-0.parquet", "parquet")
    with pytest.raises(ValueError, match="Fix: keep only Parquet files"):
        load_interactions(str(tables))
    os.rename(tables / "ratings.csv", tables / "_ratings.csv")
    assert len(load_interactions(str(tables))) > 0


@pytest.mark.parametrize("name, sep", [("cars.csv", ","), ("cars.tsv", "\t")])
def test_a_header_naming_a_column_twice_is_refused(tmp_path, name, sep):
    # pandas reads the second `mpg` as `mpg.1`: a feature nobody named.
    path = tmp_path / name
    rows = [["model", "mpg", "cyl", "mpg", ""], ["a", "21", "6", "160", "1"]]
    path.write_text("\n".join(sep.join(row) for row in rows) + "\n")
    with pytest.raises(ValueError) as caught:
        load_interactions(str(path))
    message = str(caught.value)
    assert f"{path} names the column 'mpg' more than once" in message
    assert "(columns 2, 4)" in message and "Fix:" in message
    # Empty names are pandas' distinct `Unnamed: N`: no repeat.
    path.write_text(sep.join(["", "a", ""]) + "\n" + sep.join("123") + "\n")
    assert len(load_interactions(str(path)).columns) == 3


def test_an_output_file_is_never_the_input_a_directory_or_inside_a_file(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    table = tmp_path / "rows.csv"
    _write(table, "csv")
    os.symlink(table, tmp_path / "link.csv")
    for output in ("rows.csv", "link.csv", "./missing/../rows.csv"):
        with pytest.raises(ValueError, match=f"'{output}' is the input"):
            check_output_file(output, "rows.csv", "scores.csv")
    with pytest.raises(ValueError, match="'.' is a directory.*'./x.toml'"):
        check_output_file(".", "rows.csv", "x.toml")
    with pytest.raises(ValueError, match="rows.csv' is a file, not a dir"):
        check_output_file("rows.csv/deeper/out.csv", "other.csv", "x.csv")
    check_output_file("new/scores.csv", "rows.csv", "x.csv")
    assert table.read_text() == (tmp_path / "link.csv").read_text()
    # A link to another file: renamed over, the link would be gone.
    (tmp_path / "published.csv").write_text("kept\n")
    os.symlink(tmp_path / "published.csv", tmp_path / "current.csv")
    with pytest.raises(ValueError, match="'current.csv' is a symbolic link"):
        check_output_file("current.csv", "rows.csv", "scores.csv")


def test_a_missing_column_names_the_likely_cause():
    import unicodedata

    from recsys.data.sources import closest_columns

    # 'dépendants' typed with a combining accent beside the file's
    # composed one: two names that look the same, said to be.
    typed = unicodedata.normalize("NFD", "dépendants")
    said = closest_columns([typed], ["dépendants", "age"])
    assert said == (
        f" Did you mean 'dépendants' (for {typed!r}, the same letters in "
        "other Unicode code points)?"
    )
    # A comma file named `.tsv`: one column named by the whole header.
    said = closest_columns(["card"], ["card,reports,age"])
    assert "read as one column, whose name holds ','" in said
    assert closest_columns(["zzz"], ["a", "b"]) == ""


def test_a_column_named_in_another_case_is_pointed_at(tmp_path):
    from recsys import train
    from recsys.config import load_config

    pd.DataFrame(
        {"plot": [1, 1, 2, 2], "species": list("abab"), "date": range(4)}
    ).to_csv(tmp_path / "plots.csv", index=False)
    config = tmp_path / "plots.toml"
    config.write_text(
        '[data]\nsource = "plots.csv"\nuser = "Plot"\nitem = "species"\n'
        'time = "date"\n[model]\nkind = "two_tower"\n'
    )
    # Before: the columns listed, and no word of 'plot'.
    with pytest.raises(KeyError, match=r"Did you mean 'plot' \(for 'Plot'\)"):
        train(load_config(str(config)), str(tmp_path / "b"), progress=False)


def test_excels_separator_line_is_refused_with_its_fix(tmp_path):
    # `sep=;` above the header: read as a header of one column 'sep=' and
    # an unnamed one, the real header a row; init wrote a config of them.
    path = tmp_path / "export.csv"
    path.write_text("sep=;\ncard;income\nyes;4,5\nno;2,4\n")
    with pytest.raises(ValueError, match=r"starts with the line 'sep=;'.*"):
        load_interactions(path)
    path.write_text("sep;income\nyes;4,5\nno;2,4\n")  # a column named sep
    assert list(load_interactions(path).columns) == ["sep", "income"]


def test_a_semicolon_header_whose_names_hold_commas_is_read_by_semicolons(
    tmp_path,
):
    # Two commas and two semicolons in the header: the tie went to the
    # comma, and the file became columns 'card;income (USD', ' yearly)'...
    path = tmp_path / "incomes.csv"
    path.write_text(
        "card;income (USD, yearly);owner\nyes;4,52;no\nno;2,5;yes\n"
    )
    read = load_interactions(path)
    assert list(read.columns) == ["card", "income (USD, yearly)", "owner"]
    assert read["income (USD, yearly)"].tolist() == [4.52, 2.5]
    # A comma file whose rows hold semicolons in text stays a comma file.
    path.write_text('name,note\nann,"a;b"\nbo,c;d\n')
    assert load_interactions(path)["note"].tolist() == ["a;b", "c;d"]


@pytest.mark.parametrize("lines", [False, True])
def test_json_floats_are_read_as_their_csv_is(tmp_path, lines):
    # pandas' fast float parser read 0.005216942 as 0.0052169420000000005.
    frame = pd.DataFrame({"share": [0.005216942, 37.66667, 1e-7]})
    path = tmp_path / ("rows.jsonl" if lines else "rows.json")
    frame.to_json(path, orient="records", lines=lines)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    read = load_interactions(path)["share"].tolist()
    assert read == load_interactions(tmp_path / "rows.csv")["share"].tolist()
    assert read == frame["share"].tolist()
