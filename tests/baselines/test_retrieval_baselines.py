"""EASE and item-kNN: exact on tiny matrices, chosen on validation only."""

import numpy as np
import pandas as pd
import pytest

from recsys.baselines import retrieval
from recsys.baselines.retrieval import EASE
from recsys.baselines.retrieval import ItemKNN
from recsys.baselines.retrieval import UserRepeats
from recsys.baselines.retrieval import climb
from recsys.baselines.retrieval import fit_retrieval_baselines
from recsys.config import ConfigError
from recsys.config import load_config
from recsys.kinds.two_tower import summary

CANDIDATES = np.array([10, 20, 30, 40, 50, 60])


def _table(num_users, seed=0):
    """Random interactions of `num_users` users over items 10..50 (not 60)."""
    rng = np.random.default_rng(seed)
    rows = [
        (user, item)
        for user in range(num_users)
        for item in CANDIDATES[:5]
        if rng.random() < 0.5
    ]
    return pd.DataFrame(rows, columns=["user", "item"])


def _dense_ease(frame, l2):
    users = np.unique(frame["user"])
    x = np.zeros((len(users), len(CANDIDATES)))
    x[
        np.searchsorted(users, frame["user"]),
        np.searchsorted(CANDIDATES, frame["item"]),
    ] = 1.0
    p = np.linalg.inv(x.T @ x + l2 * np.eye(len(CANDIDATES)))
    return users, x @ (np.eye(len(CANDIDATES)) - p / np.diag(p))


# 30 users over 5 items solves the item side; 3 users its user-side dual.
@pytest.mark.parametrize("num_users", [30, 3])
def test_ease_matches_the_dense_closed_form(num_users):
    frame = _table(num_users)
    users, expected = _dense_ease(frame, l2=2.0)
    ease = EASE(l2=2.0).fit(frame["user"], frame["item"], CANDIDATES)
    np.testing.assert_allclose(ease.score(users), expected, atol=1e-5)
    # Item 60 was never trained on: it scores 0, as in the full model.
    assert not ease.score(users)[:, -1].any()


@pytest.mark.parametrize("scorer", [EASE(l2=1.0), ItemKNN(neighbours=2)])
def test_unknown_users_get_the_popularity_order(scorer):
    frame = pd.DataFrame(
        {"user": [1, 1, 2, 2, 3], "item": [30, 10, 30, 20, 30]}
    )
    scorer.fit(frame["user"], frame["item"], CANDIDATES)
    scores = scorer.score(np.array([999, 1]))
    assert scores.shape == (2, len(CANDIDATES)) and scores.dtype == np.float32
    # 30 (three users) before 10 and 20 (one each), untrained items last.
    assert list(np.argsort(-scores[0], kind="stable")[:3]) == [2, 0, 1]
    assert scores[0, 3:].max() == 0 < scores[0, :3].min()
    # A known user keeps the item-item scores.
    assert scores[1, 3:].max() == 0 and scores[1, 2] != scores[0, 2]


def test_ease_refuses_a_nonpositive_l2():
    with pytest.raises(ValueError, match="`l2` must be positive"):
        EASE(l2=0.0)


def test_item_knn_recommends_the_co_occurring_item():
    # Items 10 and 20 always come together; 30 goes with 40 once.
    frame = pd.DataFrame(
        {
            "user": [1, 1, 2, 2, 3, 3, 4, 4, 5],
            "item": [10, 20, 10, 20, 10, 20, 30, 40, 10],
        }
    )
    knn = ItemKNN(neighbours=2).fit(frame["user"], frame["item"], CANDIDATES)
    scores = knn.score(np.array([5]))[0]
    assert CANDIDATES[np.argmax(scores)] == 20
    assert scores[CANDIDATES == 30] == 0 and scores[CANDIDATES == 60] == 0
    # Cosine of 10 and 20: 3 shared users over sqrt(4 * 3).
    assert scores[1] == pytest.approx(3 / np.sqrt(12))


def test_climb_stops_at_the_peak_without_trying_every_setting():
    grid = (1, 2, 5, 10, 20, 50, 100)
    best, tried = climb(grid, 10, lambda value: -abs(np.log(value / 4)))
    assert best == 5
    assert [value for value, _ in tried] == [10, 20, 5, 2]


def _temporal_table(num_users=12, num_items=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        items = rng.choice(num_items, size=6, replace=False)
        rows += [(user, item, time) for time, item in enumerate(items)]
    return pd.DataFrame(rows, columns=["user", "item", "time"])


def _last_per_user(frame):
    held = frame.groupby("user").cumcount(ascending=False) == 0
    return frame[~held], frame[held]


def _fit(names, train, **options):
    """`fit_retrieval_baselines` on columns user and item, the carve of
    each user's last row, k = 3 and 8 candidates unless `options` say."""
    options = {
        "user": "user",
        "item": "item",
        "candidates": np.arange(8),
        "carve": _last_per_user,
        "k": 3,
        **options,
    }
    return fit_retrieval_baselines(names, train, **options)


def test_settings_are_chosen_on_the_validation_carve_only(monkeypatch):
    # The function sees the training rows alone; the carve of them is what
    # chooses, and the chosen setting is refitted on all of them.
    train = _temporal_table()
    carved = []

    def carve(frame):
        carved.append(frame)
        return _last_per_user(frame)

    evaluated, fitted = [], []
    real_evaluate = retrieval.evaluate_retrieval
    real_fit = EASE.fit

    def spy_evaluate(score, **kwargs):
        evaluated.append(kwargs)
        return real_evaluate(score, **kwargs)

    def spy_fit(self, users, items, candidates):
        fitted.append(len(users))
        return real_fit(self, users, items, candidates)

    monkeypatch.setattr(retrieval, "evaluate_retrieval", spy_evaluate)
    monkeypatch.setattr(EASE, "fit", spy_fit)
    scorers, details = fit_retrieval_baselines(
        ["ease"],
        train,
        user="user",
        item="item",
        candidates=np.arange(8),
        carve=carve,
        k=3,
    )
    fit_rows, validation = _last_per_user(train)
    assert len(carved) == 1 and carved[0] is train
    assert evaluated and all(
        np.array_equal(kw["test_items"], validation["item"])
        and np.array_equal(kw["train_items"], fit_rows["item"])
        for kw in evaluated
    )
    # One fit on the carve per setting tried, then one on all of train.
    assert fitted == [len(fit_rows)] * len(details["ease"]["tried"]) + [
        len(train)
    ]
    assert details["ease"]["l2"] in retrieval.EASE_L2_GRID
    assert scorers["ease"](np.array([0])).shape == (1, 8)


def test_baselines_above_max_items_are_skipped_with_a_note():
    train = _temporal_table()
    scorers, details = fit_retrieval_baselines(
        ["popularity", "ease", "item_knn"],
        train,
        user="user",
        item="item",
        candidates=np.arange(8),
        carve=_last_per_user,
        ease_max_items=5,
    )
    assert set(scorers) == {"item_knn"}
    assert "above its limit of 5" in details["ease"]["skipped"]
    assert "evaluate.ease_max_items" in details["ease"]["skipped"]
    assert details["item_knn"]["neighbours"] == retrieval.ITEM_KNN_NEIGHBOURS


def test_repeats_rank_a_users_own_items_by_count_then_popularity():
    users = [1, 1, 1, 2, 2, 3, 3, 3]
    items = [30, 30, 10, 20, 20, 20, 10, 20]
    repeats = UserRepeats().fit(users, items, np.array([10, 20, 30, 40]))
    scores = repeats.score(np.array([1, 2, 9]))
    order = np.argsort(-scores, axis=1, kind="stable")
    # User 1: item 30 twice, 10 once; then 20 (popular), 40 (never).
    assert order[0].tolist() == [2, 0, 1, 3]
    # User 2: item 20, then by popularity (20: 4 rows, 10: 2, 30: 2).
    assert order[1].tolist() == [1, 0, 2, 3]
    # An unknown user: popularity alone.
    assert order[2].tolist() == [1, 0, 2, 3]


def test_the_repeat_baseline_is_named_in_a_config_and_fitted():
    default = "configs/movielens_two_tower.toml"
    config = load_config(
        default, ["evaluate.baselines=['popularity', 'repeat']"]
    )
    assert config["evaluate"]["baselines"] == ["popularity", "repeat"]
    assert "repeat" not in load_config(default)["evaluate"]["baselines"]
    scorers, details = fit_retrieval_baselines(
        ["repeat"],
        _temporal_table(),
        user="user",
        item="item",
        candidates=np.arange(8),
        carve=_last_per_user,
        ease_max_items=1,  # not a limit of this one
    )
    assert set(scorers) == {"repeat"} and set(details["repeat"]) == {"seconds"}


def test_config_refuses_an_unknown_baseline():
    with pytest.raises(ConfigError, match="unknown baselines"):
        load_config(overrides=["evaluate.baselines=['als']"])


def test_summary_prints_a_column_per_baseline_and_their_settings():
    names = ["hr@10", "hr@10_filtered"]
    metrics = {
        "test": {**dict.fromkeys(names, 0.5), "num_interactions": 7},
        "baseline_popularity": dict.fromkeys(names, 0.25),
        "baseline_item_knn": dict.fromkeys(names, 0.375),
        "baselines": {
            "ease": {
                "l2": 200.0,
                "chosen_by": "hr@10_filtered on the validation carve",
                "seconds": 2.5,
            },
            "item_knn": {"neighbours": 50, "seconds": 1.25},
        },
        "train": {
            "seconds": 1.0,
            "examples_per_second": 10.0,
            "backend": "jax",
        },
        "index": {"kind": "brute_force", "recall@10_vs_exact": 1.0},
    }
    lines = summary(metrics, {"evaluate": {"split": "test", "ks": [10]}})
    lines = lines.splitlines()
    assert lines[1].split() == ["metric", "model", "popularity", "item_knn"]
    assert lines[2] == "hr@10                 0.5000      0.2500      0.3750"
    assert (
        "ease: l2 = 200 (hr@10_filtered on the validation carve), 2.5 s"
        in lines
    )
    assert "item_knn: 50 neighbours, 1.2 s" in lines
    metrics["baselines"]["repeat"] = {"seconds": 0.5}
    lines = summary(metrics, {"evaluate": {"split": "test", "ks": [10]}})
    assert "repeat: no setting, 0.5 s" in lines.splitlines()
    metrics["baselines"]["ease"] = {"skipped": "12,000 training items"}
    lines = summary(metrics, {"evaluate": {"split": "test", "ks": [10]}})
    assert "ease: skipped, 12,000 training items" in lines.splitlines()


def test_training_metrics_hold_the_baselines(trained_bundle):
    _, metrics = trained_bundle
    for name in ("ease", "item_knn"):
        baseline = metrics[f"baseline_{name}"]
        assert set(baseline) == set(metrics["baseline_popularity"])
        assert metrics["baselines"][name]["seconds"] > 0
    assert metrics["baselines"]["ease"]["l2"] > 0


def test_recency_weights_of_zero_are_ease_and_weigh_the_latest_items():
    train = _temporal_table()
    ease = EASE(l2=2.0).fit(train["user"], train["item"], np.arange(8))
    columns = {"user": "user", "item": "item", "time_column": "time"}
    plain = retrieval.recency_weighted(ease, train, boost=0.0, **columns)
    users = np.arange(12)
    np.testing.assert_allclose(plain.score(users), ease.score(users))
    # Shuffled rows give the same weights: the time orders them.
    shuffled = train.sample(frac=1.0, random_state=0)
    weighted = retrieval.recency_weighted(ease, shuffled, boost=5.0, **columns)
    latest = train.groupby("user").tail(1)
    row = weighted.users_.get_indexer(latest["user"])
    column = np.searchsorted(weighted.columns_, latest["item"].to_numpy())
    assert np.all(weighted.matrix_[row, column] == 6.0)  # 1 + 5 e^0
    assert weighted.matrix_.max() == 6.0 and weighted.matrix_.min() >= 0
    assert ease.matrix_.max() == 1.0  # the fitted model is left as it was


def _drifting_table(num_users=300, seed=0):
    """Each user moves from one group of 20 items to another at random:
    their first rows say nothing of what comes next, their latest do."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        groups = rng.choice(5, size=2, replace=False)
        for time in range(16):
            item = groups[time // 8] * 20 + rng.integers(0, 20)
            rows.append((user, item, time))
    frame = pd.DataFrame(rows, columns=["user", "item", "time"])
    return frame.drop_duplicates(["user", "item"])


def test_recent_ease_is_chosen_on_the_carve_and_beats_ease_on_drift():
    frame = _drifting_table()
    ordered = frame.sort_values(["user", "time"])
    held = ordered.groupby("user").cumcount(ascending=False) < 2
    train, test = ordered[~held], ordered[held]

    def carve(rows):
        last = rows.groupby("user").cumcount(ascending=False) < 2
        return rows[~last], rows[last]

    scorers, details = _fit(
        ["ease", "ease_recent"],
        train,
        candidates=np.arange(100),
        carve=carve,
        k=10,
        time_column="time",
    )
    recent = details["ease_recent"]
    assert recent["l2"] == details["ease"]["l2"]
    assert recent["boost"] > 0 and len(recent["tried"]) == 10
    hits = {}
    for name, score in scorers.items():
        metrics = retrieval.evaluate_retrieval(
            score,
            candidates=np.arange(100),
            test_users=test["user"].to_numpy(),
            test_items=test["item"].to_numpy(),
            train_users=train["user"].to_numpy(),
            train_items=train["item"].to_numpy(),
            ks=(10,),
        )
        hits[name] = metrics["hr@10_filtered"]
    assert hits["ease_recent"] > hits["ease"] + 0.2
    # Without a time column it is skipped, with the reason.
    _, skipped = _fit(
        ["ease_recent"], train, candidates=np.arange(100), carve=carve
    )
    assert "data.time" in skipped["ease_recent"]["skipped"]


def test_a_table_of_repeats_chooses_by_the_unfiltered_metric():
    train = _temporal_table()
    # Every user's last row repeats one of their earlier items.
    repeats = train.groupby("user").head(1).assign(time=99)
    train = pd.concat([train, repeats]).sort_values(["user", "time"])
    _, details = _fit(["ease"], train)
    assert details["ease"]["chosen_by"] == "hr@3 on the validation carve"
    _, details = _fit(["ease"], _temporal_table())
    assert details["ease"]["chosen_by"].startswith("hr@3_filtered on")


def test_recency_weights_are_chosen_on_a_sample_of_many_users(monkeypatch):
    monkeypatch.setattr(retrieval, "RECENCY_CHOICE_USERS", 20)
    calls = []
    real_evaluate = retrieval.evaluate_retrieval

    def spy_evaluate(score, **kwargs):
        calls.append(len(np.unique(kwargs["test_users"])))
        return real_evaluate(score, **kwargs)

    monkeypatch.setattr(retrieval, "evaluate_retrieval", spy_evaluate)
    frame = _drifting_table(num_users=60).sort_values(["user", "time"])
    _fit(
        ["ease_recent"],
        frame,
        candidates=np.arange(100),
        k=10,
        time_column="time",
    )
    grid = len(retrieval.RECENCY_GRID)
    assert calls[-grid:] == [20] * grid  # the weights: a sample
    assert set(calls[:-grid]) == {60}  # EASE's L2: every user


def test_item_knn_keeps_the_first_of_neighbours_tied_at_the_cut():
    from recsys.baselines.retrieval import _top_columns

    # Before: `np.argpartition` chose among ties as NumPy's build and the
    # CPU happened to (MovieLens' filtered HR@100, 0.2190 or 0.2191).
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (60, 30)).astype(np.float32)
    for k in (1, 5, 29):
        top = _top_columns(scores, k)
        for row, kept in zip(scores, top, strict=True):
            best = sorted(range(30), key=lambda c: (-row[c], c))[:k]
            assert kept.tolist() == sorted(best)
