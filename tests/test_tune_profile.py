"""`recsys tune` on a two-tower tries the user's profile as the history
early, without the user's id, and every trial's config is valid."""

import numpy as np
import pandas as pd
import pytest

from recsys import load_config
from recsys.config import validate_config
from recsys.kinds.base import TrainResult
from recsys.kinds.two_tower import TwoTowerKind
from recsys.tune import Choice
from recsys.tune import consistent
from recsys.tune import search_space
from recsys.tune import tune


@pytest.fixture(scope="module")
def interactions(tmp_path_factory):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 30, 300),
            "item_id": rng.integers(0, 20, 300),
            "timestamp": np.arange(300),
        }
    )
    path = tmp_path_factory.mktemp("tune") / "interactions.csv"
    frame.to_csv(path, index=False)
    return path


def _config(interactions, *overrides):
    return load_config(
        "configs/examples/interactions.toml",
        [f'data.source="{interactions}"', "evaluate.ks=[5]", *overrides],
    )


def test_the_space_holds_the_profile_and_a_query_without_the_user(
    interactions,
):
    space = search_space(_config(interactions))
    assert space["model.history"] == Choice(("latest", "profile"))
    assert space["model.query_features"] == Choice((["user_id"], []))


def test_a_table_without_times_searches_no_order(interactions):
    # data.time = "": the history is the profile, read by its mean.
    space = search_space(_config(interactions, 'data.time=""'))
    assert "model.history" not in space
    assert "model.history_encoder" not in space
    assert space["model.query_features"] == Choice((["user_id"], []))


def test_without_a_history_the_query_keeps_its_features(interactions):
    config = _config(interactions)
    params = {
        "model.history_length": 0,
        "model.history": "profile",
        "model.query_features": [],
    }
    assert consistent(params, config) == {
        "model.history_length": 0,
        "model.history": "latest",
        "model.query_features": ["user_id"],
    }


def test_a_profile_is_read_without_order():
    params = {
        "model.history_length": 20,
        "model.history": "profile",
        "model.history_encoder": "gru",
    }
    assert consistent(params)["model.history_encoder"] == "mean"
    latest = {**params, "model.history": "latest"}
    assert consistent(latest) == latest


def test_the_third_trial_is_the_profile_without_the_user(
    interactions, tmp_path, monkeypatch
):
    configs = []

    def train(self, config, *args, **kwargs):
        configs.append(config)
        value = 0.5 if config["model"]["history"] == "profile" else 0.1
        return TrainResult(
            metrics={"validation": {"hr@5": value, "hr@5_filtered": value}}
        )

    monkeypatch.setattr(TwoTowerKind, "train", train)
    config = _config(interactions)
    result = tune(config, str(tmp_path), trials=3, final=False, progress=False)
    models = [c["model"] for c in configs]
    assert [m["history"] for m in models] == ["latest", "latest", "profile"]
    assert [m["history_length"] for m in models] == [10, 0, 50]
    assert [m["query_features"] for m in models] == [["user_id"]] * 2 + [[]]
    # A history drawn again each epoch needs more of them: the most searched.
    assert [c["train"]["epochs"] for c in configs] == [3, 3, 12]
    for trial in configs:
        validate_config(trial)  # raises for an invalid combination
    assert result.best_params["model.history"] == "profile"
    best = load_config(str(tmp_path / "best.toml"))
    assert best["model"]["history"] == "profile"
    assert best["model"]["query_features"] == []
