import numpy as np
import pandas as pd
import pytest

from recsys.data import load_movielens
from recsys.data import temporal_split
from recsys.data.history import last_items
from recsys.data.history import previous_items
from recsys.evaluation.retrieval import evaluate_retrieval
from recsys.evaluation.retrieval import popularity_scores


@pytest.fixture(scope="module")
def movielens_split():
    frame = load_movielens()
    train, test = temporal_split(
        frame, user="userId", item="movieId", time="timestamp"
    )
    return frame, train, test


def test_temporal_split_reproduces_protocol_counts(movielens_split):
    _, train, test = movielens_split
    assert (len(train), len(test)) == (79_748, 20_256)
    assert test.userId.nunique() == 671
    assert int((~test.movieId.isin(train.movieId)).sum()) == 1_523
    checksum = int((test.userId.astype("int64") * 100_003 + test.movieId).sum())
    assert checksum % 1_000_000_007 == 796_257_472


def test_temporal_split_uses_integer_ceil():
    # 35 rows: ceil(0.2 * 35) is 7 in integers (8 in floating point).
    frame = pd.DataFrame({"u": [1] * 35, "i": range(35), "t": range(35)})
    _, test = temporal_split(frame, user="u", item="i", time="t")
    assert len(test) == 7
    assert test.i.tolist() == list(range(28, 35))


def test_popularity_baseline_matches_protocol_to_every_digit(movielens_split):
    frame, train, test = movielens_split
    candidates = np.sort(frame.movieId.unique())
    popularity = popularity_scores(train.movieId, candidates)
    metrics = evaluate_retrieval(
        lambda users: np.tile(popularity, (len(users), 1)),
        candidates=candidates,
        test_users=test.userId,
        test_items=test.movieId,
        train_users=train.userId,
        train_items=train.movieId,
    )
    expected = {
        "hr@10": "0.012391",
        "hr@50": "0.057810",
        "hr@100": "0.103673",
        "hr@10_filtered": "0.025227",
        "hr@50_filtered": "0.092071",
        "hr@100_filtered": "0.149684",
    }
    assert {k: f"{metrics[k]:.6f}" for k in expected} == expected


def test_evaluate_retrieval_ranks_by_hand():
    # One user, candidates 10 < 20 < 30 < 40; scores tie 20 with 30.
    scores = np.array([[0.1, 0.5, 0.5, 0.9]], "float32")
    common = {
        "candidates": np.array([10, 20, 30, 40]),
        "train_users": np.array([1]),
        "train_items": np.array([40]),
        "ks": (1, 2, 3),
    }
    # Item 30: 40 scores higher, 20 ties and comes first -> rank 2.
    m = evaluate_retrieval(
        lambda u: scores,
        test_users=np.array([1]),
        test_items=np.array([30]),
        **common,
    )
    assert (m["hr@2"], m["hr@3"]) == (0.0, 1.0)
    # Filtered: 40 is a training item, so 30 moves up to rank 1.
    assert (m["hr@1_filtered"], m["hr@2_filtered"]) == (0.0, 1.0)


def test_evaluate_retrieval_rejects_unknown_test_items():
    with pytest.raises(ValueError, match="candidates"):
        evaluate_retrieval(
            lambda u: np.zeros((1, 2), "float32"),
            candidates=np.array([1, 2]),
            test_users=np.array([1]),
            test_items=np.array([3]),
            train_users=np.array([1]),
            train_items=np.array([1]),
        )


def test_history_holds_only_earlier_items():
    users = np.array([1, 1, 1, 2, 2])
    items = np.array([5, 6, 7, 8, 9])
    np.testing.assert_array_equal(
        previous_items(users, items, 2),
        [[0, 0], [5, 0], [6, 5], [0, 0], [8, 0]],
    )
    ids, histories = last_items(users, items, 2)
    np.testing.assert_array_equal(ids, [1, 2])
    np.testing.assert_array_equal(histories, [[7, 6], [9, 8]])
