"""Bad input gets one line that says what is wrong and how to fix it.

Each case here once printed an errno, a codec name, a bare key or a
traceback, or was silently accepted (issue #12, item 11), or wrapped an id
(item 10).
"""

import os

import numpy as np
import pandas as pd
import pytest

from recsys.bundles.two_tower import _storable
from recsys.cli import error_message
from recsys.cli import main
from recsys.config import ConfigError
from recsys.config import load_config
from recsys.data.split import protocol_split
from recsys.features import canonical_string
from recsys.features import canonical_strings

DEFAULT = "configs/movielens_two_tower.toml"


def _config(tmp_path, source, extra=""):
    path = tmp_path / "mine.toml"
    path.write_text(
        f"""
[data]
source = "{source}"
user = "u"
item = "i"
time = "t"
[features.u]
kind = "categorical"
[features.i]
kind = "categorical"
[model]
query_features = ["u"]
candidate_features = ["i"]
history_length = 0
embedding_dim = 8
[train]
epochs = 1
{extra}
"""
    )
    return path


@pytest.mark.parametrize(
    "error, expected",
    [
        (
            FileNotFoundError(2, "No such file or directory", "/x/y.csv"),
            "No such file or directory: /x/y.csv",
        ),
        (PermissionError(13, "Permission denied"), "Permission denied"),
        (
            UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
            "not utf-8 text (byte 0: bad)",
        ),
        (
            # `--user $'\xff'`: a byte that is not UTF-8, in an argument.
            UnicodeEncodeError("utf-8", "a\udcff", 1, 2, "surrogates"),
            "'\\udcff' in 'a\\udcff' is not valid text (surrogates). Fix:",
        ),
        (KeyError("data"), "missing key 'data'"),
        (KeyError("Columns ['x'] are missing"), "Columns ['x'] are missing"),
        (ValueError(), "ValueError"),
    ],
)
def test_error_message_is_a_sentence(error, expected):
    assert error_message(error) == expected or expected in error_message(error)


def test_config_not_utf8(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe[train]\n")
    with pytest.raises(ConfigError, match="not UTF-8 text.*Fix"):
        load_config(path)


def test_config_with_a_byte_order_mark_loads(tmp_path):
    # Windows Notepad's UTF-8 starts with one: "Invalid statement (at line
    # 1, column 1)" before.
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[train]\nepochs = 3\n")
    assert load_config(path)["train"]["epochs"] == 3


def test_config_special_file_is_not_reported_missing():
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(os.devnull)


def test_config_fifo_does_not_hang(tmp_path):
    path = tmp_path / "fifo.toml"
    os.mkfifo(path)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(path)


@pytest.mark.parametrize(
    "override, match",
    [
        ("evaluate.ks=[-1, 0]", "evaluate.ks must be .* positive"),
        ("evaluate.ks=[]", "evaluate.ks must be a non-empty"),
        ("evaluate.ks=[10, 10]", "distinct"),
        ("evaluate.ks=['ten']", "evaluate.ks' must be a list of integers"),
        ("evaluate.ks=[true]", "evaluate.ks' must be a list of integers"),
        ("train.learning_rate=nan", "must be a finite number"),
        ("model.temperature=inf", "must be a finite number"),
    ],
)
def test_config_rejects_bad_values(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(DEFAULT, [override])


def test_config_model_must_be_a_table(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("model = 3\n")
    with pytest.raises(ConfigError, match=r"\[model\] must be a table"):
        load_config(path)


def test_split_leaving_no_training_rows_says_why():
    frame = pd.DataFrame({"u": [1, 2], "i": [5, 6], "t": [0, 1]})
    with pytest.raises(ValueError, match="2 rows leaves no training rows"):
        protocol_split(frame, user="u", item="i", time="t")
    three = pd.DataFrame({"u": [1, 1], "i": [5, 6], "t": [0, 1]})
    with pytest.raises(ValueError, match="at least 3 rows"):
        protocol_split(three, user="u", item="i", time="t", validation=True)


def test_cli_two_rows_one_line(tmp_path, capsys):
    data = tmp_path / "two.csv"
    data.write_text("u,i,t\n1,2,1\n2,3,2\n")
    config = _config(tmp_path, data)
    code = main(["train", str(config), "--output", str(tmp_path / "b"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "leaves no training rows" in err and "Fix" in err


def test_cli_csv_not_utf8_names_the_file(tmp_path, capsys):
    data = tmp_path / "bad.csv"
    data.write_bytes(b"\xff\xfeu,i,t\n1,2,1\n")
    config = _config(tmp_path, data)
    code = main(["train", str(config), "--output", str(tmp_path / "b"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "bad.csv" in err and "not UTF-8" in err


def test_storable_keeps_uint64_ids_exactly():
    big = np.array([2**64 - 1, 2**63, 7], dtype=np.uint64)
    stored = _storable(big)
    assert stored.dtype.kind == "U"
    assert stored.tolist() == [
        "18446744073709551615",
        "9223372036854775808",
        "7",
    ]
    small = _storable(np.array([1, 2], dtype=np.uint64))
    assert small.dtype == np.int64 and small.tolist() == [1, 2]


@pytest.mark.parametrize(
    "values",
    [
        [float("inf"), 1.0, float("nan")],
        [1e300, -3.0],
        [1.5, 2.0],
        [2.0**63, 2.0**62],
    ],
)
def test_canonical_strings_never_raise_and_match_the_scalar(values):
    vectorized = list(canonical_strings(values))
    assert vectorized == [canonical_string(v) for v in values]


def test_uint64_ids_train_and_recommend_exactly(tmp_path):
    from recsys import train
    from recsys.bundles.two_tower import Bundle
    from recsys.config import load_config as load

    rng = np.random.default_rng(0)
    n = 600
    users = rng.integers(0, 20, n).astype(np.uint64) + np.uint64(2**63 + 5)
    items = rng.integers(0, 30, n).astype(np.uint64) + np.uint64(2**64 - 99)
    source = tmp_path / "big.parquet"
    pd.DataFrame({"u": users, "i": items, "t": np.arange(n)}).to_parquet(source)
    config = load(_config(tmp_path, source, "[evaluate]\nks = [5]"))
    train(config, str(tmp_path / "b"), progress=False)
    bundle = Bundle.load(str(tmp_path / "b"))
    known = {str(i) for i in items.tolist()}
    ids, _ = bundle.recommend([int(users[0])], k=5)
    assert set(ids[0].tolist()) <= known
    assert bundle.user_rows([str(users[0])])[0] >= 0


def test_a_missing_positive_column_names_the_key(tmp_path, capsys):
    # The fix named data.user / data.item / data.time, not this key.
    data = tmp_path / "rows.csv"
    data.write_text(
        "u,i,t\n" + "".join(f"{n % 3},{n % 5},{n}\n" for n in range(30))
    )
    config = _config(tmp_path, data)
    code = main(
        ["train", str(config), "--output", str(tmp_path / "b"), "-q"]
        + ["--set", "data.positive_column=Nope", "--set", "data.positive_min=3"]
    )
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1
    assert "data.positive_column = 'Nope' is not a column of the data" in err
    assert "Fix: set data.positive_column" in err


def test_a_tower_naming_an_undeclared_id_says_when_ids_need_no_table():
    # "Declared features: []" although the ids read without tables, which
    # they do only while neither tower list is written.
    with pytest.raises(ConfigError) as caught:
        load_config(
            {"data": {"user": "u", "item": "i"}},
            ['model.query_features=["nope"]'],
        )
    message = str(caught.value)
    assert (
        "Declared features: [] (data.user 'u' and data.item 'i' are " in message
    )
    assert "only when neither model.query_features nor" in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "empty.csv is empty: it holds no header row. Fix:"),
        ("u,i,u,t\n1,2,3,1\n", "names the column 'u' more than once"),
    ],
)
def test_cli_train_on_an_empty_or_repeated_header_names_the_file(
    tmp_path, capsys, text, expected
):
    data = tmp_path / "empty.csv"
    data.write_text(text)
    config = _config(tmp_path, data)
    code = main(["train", str(config), "--output", str(tmp_path / "b"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1
    assert expected in err
