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
    # NDCG counts the hit at 0-based rank r as 1 / log2(r + 2); MRR is
    # 1 / (r + 1), uncut.
    assert (m["ndcg@2"], m["ndcg@3"]) == (0.0, 0.5)
    assert m["ndcg@2_filtered"] == pytest.approx(1 / np.log2(3))
    assert (m["mrr"], m["mrr_filtered"]) == (1 / 3, 1 / 2)
    # The list is 40, 20, 30, 10; filtered 20, 30, 10.
    assert [m[f"coverage@{k}"] for k in (1, 2, 3)] == [0.25, 0.5, 0.75]
    assert m["coverage@1_filtered"] == 0.25
    assert m["coverage@3_filtered"] == 0.75


def test_recall_is_per_user_and_hr_per_interaction():
    # User 1's single test item is first; user 2's three are last.
    scores = {1: [4.0, 3.0, 2.0, 1.0, 0.0], 2: [4.0, 3.0, 2.0, 1.0, 0.0]}
    m = evaluate_retrieval(
        lambda users: np.array([scores[u] for u in users], "float32"),
        candidates=np.arange(5),
        test_users=np.array([1, 2, 2, 2]),
        test_items=np.array([0, 2, 3, 4]),
        train_users=np.array([1]),
        train_items=np.array([1]),
        ks=(1,),
    )
    assert m["hr@1"] == 0.25
    assert m["recall@1"] == 0.5
    assert m["num_users"] == 2


def _random_rows(seed, num_items=40, num_users=12, levels=None):
    """Scores, test and training rows of a small random catalog."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(num_users, num_items)).astype("float32")
    if levels:
        # Few distinct values: many ties, broken by item id.
        scores = np.floor(scores * levels).astype("float32")
    test_users, test_items, train_users, train_items = [], [], [], []
    for user in range(num_users):
        items = rng.permutation(num_items)
        held, seen = rng.integers(1, 4), rng.integers(0, num_items // 2)
        test_users += [user] * held
        test_items += items[:held].tolist()
        train_users += [user] * seen
        train_items += items[held : held + seen].tolist()
    rows = {
        "candidates": np.arange(num_items) * 10,
        "test_users": np.array(test_users),
        "test_items": np.array(test_items) * 10,
        "train_users": np.array(train_users, "int64"),
        "train_items": np.array(train_items, "int64") * 10,
    }
    return scores, rows


def test_ranking_metrics_match_keras_rs():
    from keras_rs import metrics as rs_metrics

    scores, rows = _random_rows(0)
    ks = (1, 5, 20)
    m = evaluate_retrieval(
        lambda users: scores[users], ks=ks, users_per_batch=5, **rows
    )
    num_items = scores.shape[1]
    cols = rows["test_items"] // 10
    seen = np.zeros_like(scores, bool)
    seen[rows["train_users"], rows["train_items"] // 10] = True
    for suffix, user_scores in (
        ("", scores),
        # Filtered: training items sink below every other item.
        ("_filtered", np.where(seen, -1e9, scores).astype("float32")),
    ):
        # One list per test interaction, its item the single relevant one.
        one_hot = np.eye(num_items, dtype="float32")[cols]
        per_row = user_scores[rows["test_users"]]
        # One list per user, all the user's test items relevant.
        multi_hot = np.zeros_like(scores)
        multi_hot[rows["test_users"], cols] = 1.0
        mrr = rs_metrics.MeanReciprocalRank(shuffle_ties=False)
        mrr.update_state(one_hot, per_row)
        assert m[f"mrr{suffix}"] == pytest.approx(float(mrr.result()), 1e-5)
        for k in ks:
            ndcg = rs_metrics.NDCG(k=k)
            ndcg.update_state(one_hot, per_row)
            expected = float(ndcg.result())
            assert m[f"ndcg@{k}{suffix}"] == pytest.approx(expected, 1e-5)
            recall = rs_metrics.RecallAtK(k=k, shuffle_ties=False)
            recall.update_state(multi_hot, user_scores)
            expected = float(recall.result())
            assert m[f"recall@{k}{suffix}"] == pytest.approx(expected, 1e-5)


@pytest.mark.parametrize("levels", [None, 2])
def test_coverage_matches_a_full_sort(levels):
    # With levels=2 most scores tie, and some users have fewer unseen items
    # than the largest k: their filtered lists are short.
    scores, rows = _random_rows(1, num_items=30, levels=levels)
    ks = (1, 3, 20)
    m = evaluate_retrieval(
        lambda users: scores[users], ks=ks, users_per_batch=4, **rows
    )
    seen = np.zeros_like(scores, bool)
    seen[rows["train_users"], rows["train_items"] // 10] = True
    users = np.unique(rows["test_users"])
    for k in ks:
        for suffix, excluded in (("", False), ("_filtered", True)):
            covered = set()
            for user in users:
                # A stable sort breaks ties by item id, as PROTOCOL.md does.
                ranking = np.argsort(-scores[user], kind="stable")
                if excluded:
                    ranking = ranking[~seen[user, ranking]]
                covered.update(ranking[:k].tolist())
            expected = len(covered) / scores.shape[1]
            assert m[f"coverage@{k}{suffix}"] == expected, (k, suffix)


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


def test_history_leaves_out_items_of_the_same_time():
    # Rows of one time are ordered by item id, which is no order at all: a
    # history of them would teach "the next item has a larger id".
    users = np.array([1, 1, 1, 1, 2, 2, 2])
    items = np.array([5, 6, 7, 8, 9, 10, 11])
    times = np.array([0, 1, 1, 2, 2, 2, 3])
    np.testing.assert_array_equal(
        previous_items(users, items, 3, times),
        [[0, 0, 0], [5, 0, 0], [5, 0, 0], [7, 6, 5]]
        + [[0, 0, 0], [0, 0, 0], [10, 9, 0]],
    )


@pytest.mark.parametrize("ties", ["none", "one user", "most"])
def test_ranks_match_the_protocol_definition(ties):
    # Repeated training pairs, and a test item the user also trained on,
    # count once in the filtered ranking.
    scores, rows = _random_rows(2, levels=2 if ties == "most" else None)
    if ties == "one user":
        scores[0] = np.round(scores[0], 1)
    rows["train_users"] = np.r_[rows["train_users"], rows["train_users"], 0]
    rows["train_items"] = np.r_[
        rows["train_items"], rows["train_items"], rows["test_items"][0]
    ]
    m = evaluate_retrieval(
        lambda users: scores[users], ks=(1, 5), users_per_batch=5, **rows
    )
    seen = np.zeros_like(scores, bool)
    seen[rows["train_users"], rows["train_items"] // 10] = True
    ranks, ranks_filtered = [], []
    pairs = zip(rows["test_users"], rows["test_items"] // 10, strict=True)
    for user, item in pairs:
        s = scores[user]
        ahead = (s > s[item]) | ((s == s[item]) & (np.arange(len(s)) < item))
        ranks.append(ahead.sum())
        ranks_filtered.append((ahead & ~seen[user]).sum())
    for suffix, r in (("", ranks), ("_filtered", ranks_filtered)):
        r = np.array(r)
        assert m[f"mrr{suffix}"] == float(np.mean(1.0 / (r + 1.0)))
        assert m[f"hr@5{suffix}"] == float(np.mean(r < 5))


def test_a_heavy_users_rows_are_ranked_in_bounded_memory():
    # One user of a Zipf table held 16,271 test rows: their rows times a
    # 20,000-item catalog (and its bool copies) took 7 GB at once.
    import tracemalloc

    rng = np.random.default_rng(0)
    catalog = 20_000
    scores = rng.random((1, catalog), dtype=np.float32)
    test_items = rng.permutation(catalog)[:4_000]
    seen = np.setdiff1d(rng.permutation(catalog)[:9_000], test_items)
    rows = {
        "candidates": np.arange(catalog),
        "test_users": np.zeros(len(test_items), np.int64),
        "test_items": test_items,
        "train_users": np.zeros(len(seen), np.int64),
        "train_items": seen,
    }
    tracemalloc.start()
    metrics = evaluate_retrieval(lambda users: scores[users], ks=(10,), **rows)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # 4,000 rows x 20,000 float32 scores alone are 320 MB.
    assert peak < 150 * 2**20, peak / 2**20
    ahead = scores[0][None, :] > scores[0][test_items][:, None]
    ranks = ahead.sum(axis=1)
    filtered = ranks - ahead[:, seen].sum(axis=1)
    assert metrics["mrr"] == pytest.approx(np.mean(1.0 / (ranks + 1.0)))
    assert metrics["mrr_filtered"] == pytest.approx(
        np.mean(1.0 / (filtered + 1.0))
    )


def test_a_user_with_training_rows_alone_lends_no_seen_items():
    # User 1 has no test rows (a random or global-time split's); their
    # id fell between users 0 and 2 of one batch, and their seen item 10
    # was taken for another's: filtered HR@1 1.0 instead of 0.5.
    rows = {
        "candidates": np.array([10, 20]),
        "test_users": np.array([0, 2]),
        "test_items": np.array([10, 20]),
        "train_users": np.array([1, 3]),
        "train_items": np.array([10, 20]),
    }
    scores = np.float32([1.0, 0.5])
    for users_per_batch in (64, 1):
        m = evaluate_retrieval(
            lambda users: np.tile(scores, (len(users), 1)),
            ks=(1,),
            users_per_batch=users_per_batch,
            **rows,
        )
        assert m["hr@1_filtered"] == 0.5 and m["mrr_filtered"] == 0.75
