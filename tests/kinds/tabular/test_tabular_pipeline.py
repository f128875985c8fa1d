import json
import os

import numpy as np
import pytest

from recsys import train
from recsys.bundles import load_bundle
from recsys.bundles.tabular import TabularBundle
from recsys.config import ConfigError
from recsys.config import load_config
from tests.kinds.tabular.conftest import FAST
from tests.kinds.tabular.conftest import LIKED
from tests.kinds.tabular.conftest import RATING


def test_rating_run_reports_the_model_and_the_bias_baseline(rating_run):
    bundle, metrics = rating_run
    assert set(metrics["test"]) == set(metrics["baseline_bias"])
    assert {"rmse", "mae"} <= set(metrics["test"])
    assert metrics["baselines_tuned"]["bias"]["l2"] > 0
    with open(os.path.join(bundle.path, "metrics.json")) as f:
        on_disk = json.load(f)
    assert on_disk["test"] == metrics["test"]
    # A model that predicts anything sensible beats a constant 0.
    assert metrics["test"]["rmse"] < 1.5


def test_liked_run_reports_classification_metrics(liked_run):
    _, metrics = liked_run
    keys = {"auc", "logloss", "accuracy", "num_examples"}
    assert set(metrics["test"]) == keys
    assert set(metrics["baseline_logistic_regression"]) == keys
    assert 0.5 < metrics["test"]["auc"] <= 1.0


def test_tabular_bundle_reloads_and_predicts_the_test_rows(
    rating_run, small_frame
):
    bundle, metrics = rating_run
    again = load_bundle(bundle.path)
    assert isinstance(again, TabularBundle) and again.task == "regression"
    rows = small_frame.iloc[:50]
    np.testing.assert_allclose(
        again.predict(rows), bundle.predict(rows), rtol=1e-5
    )
    # Scoring a (user, item) pair from the side tables gives the score of
    # the same pair's own row (every feature is a user or item column).
    pairs = bundle.score_pairs(rows["userId"], rows["movieId"])
    np.testing.assert_allclose(pairs, bundle.predict(rows), rtol=1e-5)


def test_tabular_bundle_side_tables(rating_run):
    bundle, _ = rating_run
    assert set(bundle.items.columns) == {"movieId", "genres", "year", "title"}
    assert list(bundle.users.columns) == ["userId"]
    frame = bundle.pair_frame(np.array([1, 999]), np.array([31, -5]))
    assert frame["genres"].isna().tolist() == [False, True]
    assert frame["userId"].tolist() == [1, 999]


def _config(path, *overrides):
    return load_config(path, [*FAST, *overrides])


def test_unknown_feature_column_is_named(small_frame, tmp_path):
    config = _config(RATING, 'features.budget.kind="numeric"')
    with pytest.raises(KeyError, match="budget"):
        train(config, str(tmp_path / "b"), frame=small_frame)


def test_model_features_must_be_declared():
    with pytest.raises(ConfigError, match="model.features names 'age'"):
        _config(RATING, 'model.features=["userId", "age"]')


def test_non_numeric_numeric_column_is_named(small_frame, tmp_path):
    frame = small_frame.assign(budget="unknown")
    config = _config(RATING, 'features.budget.kind="numeric"')
    with pytest.raises(ValueError, match="Column 'budget' must be numeric"):
        train(config, str(tmp_path / "b"), frame=frame)


def test_missing_label_is_named(small_frame, tmp_path):
    config = _config(RATING, 'data.label="stars"')
    with pytest.raises(KeyError, match="Label column 'stars' is missing"):
        train(config, str(tmp_path / "b"), frame=small_frame)


def test_a_binary_label_of_one_class_names_the_threshold(small_frame, tmp_path):
    config = _config(LIKED, "data.label_threshold=99")
    with pytest.raises(
        ValueError,
        match=r"Every training row of label "
        r"'rating' is negative \(positive when >= "
        r"data.label_threshold = 99\)",
    ):
        train(config, str(tmp_path / "b"), frame=small_frame)


@pytest.mark.parametrize(
    "target, error, match",
    [
        ("stars", KeyError, "auxiliary_target names 'stars'"),
        ("title", ValueError, "auxiliary_target 'title' must be numeric"),
    ],
)
def test_bad_auxiliary_target_is_named(
    small_frame, tmp_path, target, error, match
):
    config = _config(LIKED, f'model.auxiliary_target="{target}"')
    with pytest.raises(error, match=match):
        train(config, str(tmp_path / "b"), frame=small_frame)


def test_liked_bundle_with_its_auxiliary_head_reloads_identically(
    liked_run, small_frame
):
    bundle, _ = liked_run
    assert bundle.model.auxiliary_head is not None
    again = load_bundle(bundle.path)
    rows = small_frame.iloc[:50]
    np.testing.assert_allclose(
        again.predict(rows), bundle.predict(rows), rtol=1e-6
    )
    # The auxiliary head regresses the rating: its estimates follow it.
    arrays = again.preprocessor.transform(rows)
    rating = again.model.predict_auxiliary(arrays)
    assert np.corrcoef(rating, rows["rating"])[0, 1] > 0.2


def test_text_label_of_a_regression_is_refused(small_frame, tmp_path):
    config = _config(RATING, 'data.label="title"', 'model.features=["userId"]')
    with pytest.raises(ValueError, match="must be numeric for a regression"):
        train(config, str(tmp_path / "b"), frame=small_frame)
    # Two text values: the fix is the binary task, naming its positive class.
    frame = small_frame.assign(title=np.where(small_frame.rating > 3, "y", "n"))
    with pytest.raises(
        ValueError, match="2 distinct values.*model.task = \"binary\".*'y'"
    ):
        train(config, str(tmp_path / "b"), frame=frame)


@pytest.mark.parametrize(
    "override, match",
    [
        ('model.interaction="attention"', "model.interaction"),
        ('evaluate.baselines=["logistic_regression"]', "not a baseline"),
        ("model.dropout=1.0", "model.dropout"),
        ('features.rating.kind="numeric"', "label column 'rating'"),
        ('model.auxiliary_target="year"', "auxiliary_target 'year' is also"),
        ("model.auxiliary_weight=-1.0", "model.auxiliary_weight"),
    ],
)
def test_bad_tabular_configs_fail_clearly(override, match):
    with pytest.raises(ConfigError, match=match):
        _config(RATING, override)


def test_liked_config_is_binary_at_four():
    config = load_config(LIKED)
    assert config["model"]["task"] == "binary"
    assert config["data"]["label_threshold"] == 4.0


@pytest.mark.slow
def test_history_model_and_logistic_regression_read_liked_items(
    small_frame, tmp_path
):
    config = _config(
        LIKED, "model.history_length=5", "train.epochs=1", "train.patience=0"
    )
    bundle, metrics = train(
        config, str(tmp_path / "h"), frame=small_frame, progress=False
    )
    assert "history" in bundle.model.feature_names
    assert bundle.user_history.shape == (len(bundle.users), 5)
    # User 1's latest liked movies, most recent first, as model item ids.
    user_1 = small_frame[small_frame["userId"] == 1].sort_values(
        ["timestamp", "movieId"]
    )
    user_1 = user_1.iloc[: len(user_1) - (len(user_1) + 4) // 5]
    liked = user_1[user_1["rating"] >= 4]["movieId"].to_numpy()[::-1][:5]
    ids = bundle.preprocessor.transform_column("movieId", liked)
    row = bundle.users.index[bundle.users["userId"] == 1][0]
    np.testing.assert_array_equal(bundle.user_history[row][: len(ids)], ids)
    assert set(metrics["baseline_logistic_regression"]) == set(metrics["test"])
    again = load_bundle(bundle.path)
    rows = small_frame.iloc[:20]
    np.testing.assert_allclose(
        again.predict(rows), bundle.predict(rows), rtol=1e-5
    )
    pairs = bundle.pair_frame(rows.userId.to_numpy(), rows.movieId.to_numpy())
    np.testing.assert_allclose(
        bundle.score_pairs(rows.userId, rows.movieId),
        again.predict(pairs),
        rtol=1e-5,
    )


def test_history_needs_the_item_feature():
    with pytest.raises(ConfigError, match="history_length > 0 needs"):
        _config(LIKED, "model.history_length=5", 'model.features=["userId"]')


def test_a_global_dtype_policy_does_not_reach_the_model(small_frame):
    # A notebook's `set_dtype_policy("mixed_float16")` built the tabular
    # model in float16 (saved so in its bundle).
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        result = train(_config(LIKED), write=False, frame=small_frame)
        assert keras.config.dtype_policy().name == "mixed_float16"
    finally:
        keras.config.set_dtype_policy(previous)
    policies = {layer.dtype_policy.name for layer in result.model.layers}
    assert policies == {"float32"}
