import json
import os

import numpy as np
import pandas as pd
import pytest

from recsys import Bundle
from recsys import train
from recsys.bundles import load_bundle
from recsys.bundles.two_tower import BundleError
from recsys.bundles.two_tower import write_bundle
from recsys.config import load_config
from recsys.data import load_movielens
from recsys.kinds.two_tower import prepare_data

CONFIG = "configs/movielens_two_tower.toml"


def test_bundle_quality_on_the_protocol_test_split(trained_bundle):
    _, metrics = trained_bundle
    test, popular = metrics["test"], metrics["baseline_popularity"]
    # Floors well above the popularity row (0.1497 / 0.0252 / 0.1037).
    assert test["hr@100_filtered"] >= 0.21
    assert test["hr@10_filtered"] >= 0.035
    assert test["hr@100"] >= 0.12
    for key in ("hr@10", "hr@100", "hr@10_filtered", "hr@100_filtered"):
        assert test[key] > popular[key]
    assert f"{popular['hr@100_filtered']:.6f}" == "0.149684"


def test_bundle_metrics_json_has_the_documented_keys(trained_bundle):
    bundle, _ = trained_bundle
    with open(os.path.join(bundle.path, "metrics.json")) as f:
        metrics = json.load(f)
    keys = {f"hr@{k}{s}" for k in (10, 50, 100) for s in ("", "_filtered")}
    assert keys <= set(metrics["test"]) and keys <= set(
        metrics["baseline_popularity"]
    )
    assert {"seconds", "examples_per_second"} <= set(metrics["train"])
    assert metrics["index"]["recall@10_vs_exact"] >= 0.95
    assert metrics["index"]["kind"] == "scann"
    # Tuned on every training user (fewer than 1,000) with their seen
    # items excluded, as `recommend` serves them: the recall measured
    # after training over the same users is the one tuned for.
    index = metrics["index"]
    assert index["tuning"]["target_metric"] == "recall@10_filtered"
    assert index["recall@10_vs_exact_filtered"] == pytest.approx(
        index["tuning"]["recall@10_filtered"], abs=6e-5
    )
    assert index["recall@10_vs_exact_filtered"] >= 0.95


def test_bundle_recommend_shapes_and_order(trained_bundle):
    bundle, _ = trained_bundle
    ids, scores = bundle.recommend([1, 42, 671], k=10)
    assert ids.shape == scores.shape == (3, 10)
    assert ids.dtype.kind == "i" and np.isin(ids, bundle.item_ids).all()
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_bundle_recommend_excludes_seen_items(trained_bundle):
    bundle, _ = trained_bundle
    seen = bundle.item_ids[bundle.seen(bundle.user_rows([1])[0])]
    ids, _ = bundle.recommend([1], k=50)
    assert not np.isin(ids, seen).any()
    with_seen, _ = bundle.recommend([1], k=50, exclude_seen=False)
    assert np.isin(with_seen, seen).any()


def test_bundle_index_agrees_with_exact_search(trained_bundle):
    bundle, _ = trained_bundle
    users = np.arange(1, 101)
    approx, _ = bundle.recommend(users, k=10)
    exact, _ = bundle.recommend(users, k=10, exact=True)
    overlap = np.mean(
        [
            len(np.intersect1d(a, e)) / 10
            for a, e in zip(approx, exact, strict=True)
        ]
    )
    # The index is tuned to its recall target over all users' queries;
    # these 100 users measure it with a sampling error of about 0.015.
    assert overlap >= bundle.index.tuning.get("recall_target", 0.95) - 0.03


def test_bundle_reload_gives_identical_top_k(trained_bundle):
    bundle, _ = trained_bundle
    again = Bundle.load(bundle.path)
    users = np.arange(1, 672)
    for exact in (False, True):
        a, sa = bundle.recommend(users, k=20, exact=exact)
        b, sb = again.recommend(users, k=20, exact=exact)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sa, sb)


def test_bundle_query_tower_reproduces_user_vectors(trained_bundle):
    bundle, _ = trained_bundle
    prepared = prepare_data(bundle.config)
    vectors = bundle.query_tower.predict(prepared.users["inputs"], verbose=0)
    np.testing.assert_allclose(vectors, bundle.user_embeddings, atol=1e-5)


def test_bundle_user_ids_in_any_spelling(trained_bundle):
    bundle, _ = trained_bundle
    a, _ = bundle.recommend([42], k=5)
    b, _ = bundle.recommend(["42"], k=5)
    np.testing.assert_array_equal(a, b)
    # "42.0" as a float id column writes it (a CSV whose id column has an
    # empty cell): the same user, and the same item.
    c, _ = bundle.recommend(["42.0"], k=5)
    np.testing.assert_array_equal(a, c)
    assert bundle.user_row("42.0") == bundle.user_row(42) >= 0
    rows = bundle.user_rows(["42.00", 42.0, "-42.0", "42.5", None])
    assert rows.tolist() == [bundle.user_row(42)] * 2 + [-1, -1, -1]
    item = bundle.item_ids[3]
    assert bundle.item_rows([f"{item}.0"]).tolist() == [3]


def test_bundle_unknown_user_gets_popular_items(trained_bundle):
    bundle, _ = trained_bundle
    ids, scores = bundle.recommend([10**9], k=5)
    popular = bundle.item_ids[
        np.argsort(-bundle.item_popularity, kind="stable")[:5]
    ]
    np.testing.assert_array_equal(ids[0], popular)
    assert np.all(np.diff(scores[0]) <= 0)


def test_bundle_similar_items(trained_bundle):
    bundle, _ = trained_bundle
    ids, scores = bundle.similar_items(1, k=5)  # Toy Story
    assert len(ids) == 5 and 1 not in ids
    with pytest.raises(KeyError, match="Unknown item"):
        bundle.similar_items(-5)
    # A k as large as the catalog: every other item, no padding.
    ids, scores = bundle.similar_items(1, k=10**6)
    assert len(ids) == len(bundle.item_ids) - 1 and 1 not in ids
    assert np.isfinite(scores).all()
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        bundle.similar_items(1, k=0)


@pytest.mark.parametrize(
    "args, match",
    [
        (([1], 0), "`k` must be a positive integer"),
        (("1", 5), "1-D list"),
        (([1], 5.0), "`k` must be a positive integer"),
        (([[1, 2]], 5), "1-D list"),
        # A missing id (a failed join) got the popular items, silently.
        (([1, None], 5), r"1 missing id\(s\) .* position\(s\) \[1\]"),
        ((np.array([np.nan, 1.0]), 5), r"position\(s\) \[0\]"),
        ((pd.array([pd.NA, 1], dtype="Int64"), 5), r"position\(s\) \[0\]"),
    ],
)
def test_bundle_recommend_rejects_bad_arguments(args, match, trained_bundle):
    bundle, _ = trained_bundle
    with pytest.raises(ValueError, match=match):
        bundle.recommend(*args)
    if match != "`k` must be a positive integer":  # score reads users alike
        with pytest.raises(ValueError, match=match):
            bundle.score(args[0])


def test_bundle_holds_no_pickle_and_a_manifest(trained_bundle):
    bundle, _ = trained_bundle
    files = [n for _, _, names in os.walk(bundle.path) for n in names]
    assert not [n for n in files if n.endswith((".pkl", ".pickle"))]
    manifest = bundle.manifest
    assert {"created_at", "versions", "spec_hash", "config", "metrics"} <= set(
        manifest
    )
    for name in (".npy",):
        for file in files:
            if file.endswith(name):
                path = next(
                    os.path.join(d, file)
                    for d, _, n in os.walk(bundle.path)
                    if file in n
                )
                np.load(path, allow_pickle=False)


def test_bundle_load_errors_are_clear(tmp_path, trained_bundle):
    with pytest.raises(BundleError, match="manifest.json not found"):
        Bundle.load(tmp_path)
    bundle, _ = trained_bundle
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(bundle.path, broken)
    os.remove(broken / "item_embeddings.npy")
    with pytest.raises(BundleError, match="incomplete or corrupt"):
        Bundle.load(broken)


def test_load_bundle_dispatches_on_the_manifest_kind(tmp_path, trained_bundle):
    bundle, _ = trained_bundle
    assert bundle.manifest["kind"] == "two_tower"
    loaded = load_bundle(bundle.path)
    assert isinstance(loaded, Bundle) and loaded.version == bundle.version
    import shutil

    other = tmp_path / "other"
    shutil.copytree(bundle.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["kind"] = "no_such_kind"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="'no_such_kind' bundle"):
        load_bundle(other)
    with pytest.raises(BundleError, match="not a 'two_tower' bundle"):
        Bundle.load(other)
    (other / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="JSON object"):
        load_bundle(other)


def test_write_bundle_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(BundleError, match="not a recsys bundle"):
        write_bundle(
            tmp_path,
            config=None,
            metrics=None,
            preprocessor=None,
            query_tower=None,
            items=None,
            arrays=None,
            index=None,
        )
    assert (tmp_path / "notes.txt").read_text() == "keep me"


# -- bad inputs to training: each fails before any training, naming the fix --


@pytest.fixture(scope="module")
def movielens():
    return load_movielens()


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (
            lambda f: f.drop(columns=["genres"]),
            KeyError,
            r"\['genres'\] are missing",
        ),
        (
            lambda f: f.drop(columns=["userId"]),
            KeyError,
            r"\['userId'\] are missing",
        ),
        (
            lambda f: f.assign(timestamp=f.timestamp.astype(str)),
            ValueError,
            "must hold numbers or datetimes",
        ),
        (
            lambda f: f.assign(userId=f.userId.where(f.index % 100 != 0)),
            ValueError,
            "'userId' has 1001 null values",
        ),
        (lambda f: f.iloc[:0], ValueError, "empty"),
    ],
)
def test_train_bundle_bad_inputs(mutate, error, match, movielens, tmp_path):
    config = load_config(CONFIG)
    with pytest.raises(error, match=match):
        train(
            config, str(tmp_path / "b"), frame=mutate(movielens), progress=False
        )
    assert not os.path.exists(tmp_path / "b")


def test_train_bundle_nulls_in_features_are_documented_oov(movielens, tmp_path):
    # 7 movies have no title or year: they map to the padding id and train.
    assert movielens.year.isna().sum() == 7
    config = load_config(CONFIG, ["train.epochs=1"])
    small = movielens[movielens.userId <= 60]
    bundle, metrics = train(
        config, str(tmp_path / "b"), frame=small, progress=False
    )
    assert np.isfinite(bundle.item_embeddings).all()
    assert metrics["test"]["num_interactions"] > 0


def test_train_bundle_on_a_csv_with_string_ids(movielens, tmp_path):
    small = movielens[movielens.userId <= 80].copy()
    small["userId"] = "u" + small.userId.astype(str)
    small["movieId"] = "m" + small.movieId.astype(str)
    path = tmp_path / "ratings.csv"
    small.to_csv(path, index=False)
    config = load_config(CONFIG, [f"data.source='{path}'", "train.epochs=1"])
    bundle, _ = train(config, str(tmp_path / "b"), progress=False)
    ids, _ = bundle.recommend(["u3"], k=5)
    assert ids.dtype.kind == "U" and all(i.startswith("m") for i in ids[0])
    assert pd.Index(bundle.item_ids).is_monotonic_increasing


def test_bundle_k_is_capped_at_the_catalog_size(trained_bundle):
    bundle, _ = trained_bundle
    ids, scores = bundle.recommend([1, 10**9], k=10**6, exclude_seen=False)
    assert ids.shape == (2, len(bundle.item_ids))
    assert sorted(ids[0]) == sorted(bundle.item_ids)


def test_bundle_manifest_lists_the_sha256_of_every_file(trained_bundle):
    import hashlib

    bundle, _ = trained_bundle
    on_disk = {
        os.path.relpath(os.path.join(d, n), bundle.path)
        for d, _, names in os.walk(bundle.path)
        for n in names
    }
    listed = bundle.manifest["files"]
    assert set(listed) == on_disk - {"manifest.json"}
    assert bundle.manifest["format_version"] == 2
    for name, entry in listed.items():
        with open(os.path.join(bundle.path, name), "rb") as f:
            data = f.read()
        assert entry == {
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }


def test_a_candidate_feature_that_differs_within_items_is_warned(
    movielens, caplog
):
    config = load_config(CONFIG, ["train.epochs=1"])
    small = movielens[movielens.userId <= 60]
    caplog.set_level("WARNING", logger="recsys.kinds.two_tower")
    prepare_data(config, small)
    assert "several values" not in caplog.text  # genres and year: per movie
    # The year of the rating, not of the movie: one per row.
    rated = small.assign(year=pd.to_datetime(small.timestamp, unit="s").dt.year)
    prepared = prepare_data(config, rated)
    assert "Candidate feature 'year' has several values within" in caplog.text
    assert "np.int64" not in caplog.text  # the item id as written
    # What the tower reads: each movie's first row.
    first = rated.drop_duplicates("movieId").set_index("movieId").year
    read = prepared.items.set_index("movieId").year
    pd.testing.assert_series_equal(read, first.loc[read.index])


def test_a_per_user_split_of_one_row_users_is_warned(movielens, caplog):
    # Users of one row (a table of orders, each its own "user") are held
    # out whole: the test share is far above data.test_fraction.
    config = load_config(CONFIG, ["train.epochs=1"])
    small = movielens[movielens.userId <= 60]
    caplog.set_level("WARNING", logger="recsys.kinds.two_tower")
    prepare_data(config, small)
    assert "held out" not in caplog.text  # 20 ratings or more each
    orders = small.assign(userId=np.arange(len(small)) // 2)
    orders.loc[orders.userId % 2 == 0, "userId"] = -1 - np.arange(
        np.count_nonzero(orders.userId % 2 == 0)
    )
    prepare_data(config, orders)
    assert 'data.split = "user_time" held out' in caplog.text
    assert "have no training row" in caplog.text


def test_a_feature_table_neither_tower_reads_is_warned(movielens, caplog):
    config = load_config(CONFIG, ["train.epochs=1"])
    small = movielens[movielens.userId <= 60]
    caplog.set_level("WARNING", logger="recsys.kinds.two_tower")
    prepare_data(config, small)
    assert "neither tower" not in caplog.text  # every table is read
    # A query of the history alone leaves the user's table out on purpose.
    config["model"]["query_features"] = []
    prepare_data(config, small)
    assert "neither tower" not in caplog.text
    config["features"]["rating"] = {"kind": "numeric"}
    prepare_data(config, small)
    assert "[features.rating] is read by neither tower" in caplog.text
    assert "userId" not in caplog.text
