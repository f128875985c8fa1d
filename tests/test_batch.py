import os

import numpy as np
import pandas as pd
import pytest

from recsys.batch import read_users
from recsys.batch import recommend_all


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

    # An id that is no integer keeps them all strings: unknown users.
    text.write_text("1\nnobody\n")
    assert read_users(str(text), "userId", like).tolist() == ["1", "nobody"]


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
