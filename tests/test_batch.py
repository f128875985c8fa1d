import json
import os

import numpy as np
import pandas as pd
import pytest

from recsys.batch import read_users
from recsys.batch import recommend_all
from recsys.cli import main


def _seen_ids(bundle, user):
    return set(bundle.item_ids[bundle.seen(bundle.user_rows([user])[0])])


@pytest.mark.parametrize("exact", [False, True])
def test_recommend_all_writes_every_users_top_k(
    trained_bundle, tmp_path, exact
):
    bundle, _ = trained_bundle
    output = tmp_path / "recs.parquet"
    done = recommend_all(
        bundle, str(output), k=5, exact=exact, chunk=300, progress=False
    )
    users = bundle.user_ids
    frame = pd.read_parquet(output)
    assert list(frame.columns) == ["userId", "rank", "movieId", "score"]
    assert len(frame) == len(users) * 5 == done["rows"]
    assert done["users"] == done["known_users"] == len(users)
    np.testing.assert_array_equal(frame["userId"], np.repeat(users, 5))
    np.testing.assert_array_equal(
        frame["rank"], np.tile(np.arange(1, 6), len(users))
    )
    # The same answer as asking the bundle, a few users at a time.
    sample = users[:: max(1, len(users) // 40)]
    ids, scores = bundle.recommend(sample, k=5, exact=exact)
    rows = frame.set_index("userId").loc[sample]
    np.testing.assert_array_equal(rows["movieId"].to_numpy(), ids.ravel())
    np.testing.assert_allclose(
        rows["score"].to_numpy(), scores.ravel(), rtol=1e-6
    )
    for user in sample:
        assert not set(frame.movieId[frame.userId == user]) & _seen_ids(
            bundle, user
        )
    # Best first.
    assert (
        np.diff(frame["score"].to_numpy().reshape(-1, 5), axis=1) <= 0
    ).all()


def test_recommend_all_gives_unknown_users_the_popular_items(
    trained_bundle, tmp_path
):
    bundle, _ = trained_bundle
    output = tmp_path / "recs.parquet"
    users = [str(bundle.user_ids[0]), "nobody"]
    done = recommend_all(bundle, str(output), k=3, users=users, progress=False)
    assert (done["users"], done["known_users"], done["rows"]) == (2, 1, 6)
    frame = pd.read_parquet(output)
    nobody = frame[frame.userId == "nobody"]
    popular = bundle.item_ids[bundle.popular_rows[:3]]
    np.testing.assert_array_equal(nobody["movieId"], popular)
    np.testing.assert_allclose(
        nobody["score"], bundle.item_popularity[bundle.popular_rows[:3]]
    )
    # One user without a list: the value is shown and the fix given.
    with pytest.raises(ValueError, match=r"Received: array\(42\)\. Fix"):
        recommend_all(bundle, str(output), users=42, progress=False)


def test_a_failure_midway_leaves_no_output(
    trained_bundle, tmp_path, monkeypatch
):
    bundle, _ = trained_bundle
    output = tmp_path / "recs.parquet"
    output.write_bytes(b"the previous run's file")
    calls = []
    recommend = bundle.recommend

    def fail_on_third_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed midway")
        return recommend(*args, **kwargs)

    monkeypatch.setattr(bundle, "recommend", fail_on_third_call)
    with pytest.raises(RuntimeError, match="killed midway"):
        recommend_all(bundle, str(output), k=5, chunk=100, progress=False)
    # The old file is whole, and no temporary file is left beside it.
    assert output.read_bytes() == b"the previous run's file"
    assert os.listdir(tmp_path) == ["recs.parquet"]
    output.unlink()
    with pytest.raises(RuntimeError, match="killed midway"):
        calls.clear()
        recommend_all(bundle, str(output), k=5, chunk=100, progress=False)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "output, k, message",
    [
        ("recs.csv", 5, "must end in .parquet"),
        ("recs.parquet", 0, "`k` must be a positive integer"),
    ],
)
def test_recommend_all_rejects_bad_arguments(
    trained_bundle, tmp_path, output, k, message
):
    bundle, _ = trained_bundle
    with pytest.raises(ValueError, match=message):
        recommend_all(bundle, str(tmp_path / output), k=k, progress=False)
    assert os.listdir(tmp_path) == []


def test_read_users_from_text_csv_and_parquet(tmp_path):
    like = np.array([1, 2, 3], np.int64)
    text = tmp_path / "users.txt"
    text.write_text("3\n1\n\n 2 \n")
    np.testing.assert_array_equal(
        read_users(str(text), "userId", like), [3, 1, 2]
    )
    assert read_users(str(text), "userId", like).dtype == np.int64

    table = tmp_path / "users.csv"
    table.write_text("country,userId\nfr,2\nde,7\n")
    np.testing.assert_array_equal(
        read_users(str(table), "userId", like), [2, 7]
    )
    # A spreadsheet's export: before, "country;userId" was one column, and
    # "fr;2" an id nobody had.
    table.write_text("country;userId\nfr;2\nde;7\n")
    np.testing.assert_array_equal(
        read_users(str(table), "userId", like), [2, 7]
    )

    parquet = tmp_path / "users.parquet"
    pd.DataFrame({"userId": [3, 1], "other": ["a", "b"]}).to_parquet(parquet)
    np.testing.assert_array_equal(
        read_users(str(parquet), "userId", like), [3, 1]
    )

    # Text ids: the file's ids as text, whatever the file.
    text_ids = np.array(["1", "nobody"], object)
    assert read_users(str(parquet), "userId", text_ids).tolist() == ["3", "1"]


def test_read_users_names_a_missing_column(tmp_path):
    table = tmp_path / "users.csv"
    table.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no column 'userId'"):
        read_users(str(table), "userId")
    table.write_text("userId\n")
    with pytest.raises(ValueError, match="lists no users"):
        read_users(str(table), "userId")
    with pytest.raises(FileNotFoundError, match="Users file not found"):
        read_users(str(tmp_path / "missing.txt"), "userId")


def test_read_users_takes_a_first_line_that_is_no_id_for_a_header(
    tmp_path, caplog
):
    # `uid` above integer ids became a user, and turned the output's user
    # column (int64 in the bundle) into strings.
    users = tmp_path / "users.csv"
    users.write_text("uid\n5\n0042\n3.0\n")
    with caplog.at_level("INFO", logger="recsys"):
        found = read_users(str(users), "userId", np.array([1, 5], np.int64))
    assert found.tolist() == [5, 42, 3]
    assert found.dtype == np.int64
    assert "'uid', as a header" in caplog.text
    # Text ids: a first line that is no user, above users, is a header...
    ids = np.array(["u1", "u2"], object)
    users.write_text("uid\nu2\nnew\n")
    with caplog.at_level("WARNING", logger="recsys"):
        assert read_users(str(users), "userId", ids).tolist() == ["u2", "new"]
    assert "put a header line 'userId' above it" in caplog.text
    # ...but a list of new users keeps its first one.
    users.write_text("new1\nnew2\n")
    assert read_users(str(users), "userId", ids).tolist() == ["new1", "new2"]


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            "userId\n5\n\nabc\n7\n",
            r"Line 4 of .*users\.csv holds 'abc', which cannot be a user id "
            r"of this bundle: its ids are integers \(int64\)\. Fix: correct "
            r"or delete it",
        ),
        ("5\n2.5\nx\n", r"Line 2 .* holds '2\.5', .*\); 1 more like it\."),
        ("5\n99999999999999999999\n", r"Line 2 .* '99999999999999999999'"),
    ],
)
def test_read_users_names_a_line_that_cannot_be_an_id(tmp_path, lines, message):
    # Such a line turned every id into a string: none of them joined back
    # to the training table.
    users = tmp_path / "users.csv"
    users.write_text(lines)
    with pytest.raises(ValueError, match=message):
        read_users(str(users), "userId", np.array([5], np.int64))


def test_recommend_all_recommends_a_repeated_user_once(
    trained_bundle, tmp_path, caplog
):
    bundle, _ = trained_bundle
    output = tmp_path / "recs.parquet"
    first, second = bundle.user_ids[:2]
    users = np.array([first, second, first, first])
    with caplog.at_level("WARNING", logger="recsys"):
        done = recommend_all(bundle, str(output), k=2, users=users)
    assert (done["users"], done["known_users"], done["rows"]) == (2, 2, 4)
    frame = pd.read_parquet(output)
    assert frame["userId"].tolist() == [first, first, second, second]
    assert "Repeated ids in the users listed: 2 of 4" in caplog.text


def test_recommend_all_says_k_is_capped_at_the_catalog(
    trained_bundle, tmp_path, caplog
):
    bundle, _ = trained_bundle
    num_items = len(bundle.item_ids)
    output = tmp_path / "recs.parquet"
    with caplog.at_level("WARNING", logger="recsys"):
        done = recommend_all(
            bundle, str(output), k=num_items + 1, users=["nobody"]
        )
    assert done["k"] == done["rows"] == num_items
    assert (
        f"k={num_items + 1} is above the catalog size: k is capped at the "
        f"catalog ({num_items:,} items)" in caplog.text
    )
    caplog.clear()
    recommend_all(bundle, str(output), k=num_items, users=["nobody"])
    assert "catalog" not in caplog.text


def test_recommend_all_names_its_progress_bar(trained_bundle, tmp_path, capsys):
    bundle, _ = trained_bundle
    recommend_all(bundle, str(tmp_path / "recs.parquet"), users=["nobody"])
    assert "recommend: " in capsys.readouterr().err


def test_cli_users_file_keeps_the_bundles_id_type(
    trained_bundle, tmp_path, capsys
):
    # The audit's `uid` header: it became a user, the user column became
    # strings, and a repeated id was recommended (and counted) twice.
    bundle, _ = trained_bundle
    known = int(bundle.user_ids[0])
    unknown = int(bundle.user_ids.max()) + 1
    users = tmp_path / "users.csv"
    users.write_text(f"uid\n{known}\n{unknown}\n{known}\n")
    out = tmp_path / "recs.parquet"
    argv = ["recommend", bundle.path, "--users", str(users), "-o", str(out)]
    assert main([*argv, "-k", "2", "-q", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["users"], done["known_users"], done["rows"]) == (2, 1, 4)
    frame = pd.read_parquet(out)
    assert frame["userId"].dtype == bundle.user_ids.dtype
    assert frame["userId"].tolist() == [known, known, unknown, unknown]


def test_read_users_takes_ids_with_commas_one_a_line(tmp_path):
    # Before: "Muñoz, Juan" was read as two columns, and the file refused
    # with a fix ("list one id per line") it already followed.
    ids = np.array(["Muñoz, Juan", "Auerbach, Frank", "Absalon"], object)
    users = tmp_path / "users.txt"
    users.write_text("Muñoz, Juan\nAuerbach, Frank\n\nAbsalon\n")
    assert read_users(str(users), "artist", ids).tolist() == [
        "Muñoz, Juan",
        "Auerbach, Frank",
        "Absalon",
    ]
    # Two columns that are not the bundle's users: still refused.
    users.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no column 'artist'"):
        read_users(str(users), "artist", ids)
