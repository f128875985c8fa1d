"""Bundles trained once per session on a slice of MovieLens (fast)."""

import pytest

RATING = "configs/movielens_rating.toml"
LIKED = "configs/movielens_liked.toml"
TWO_TOWER = "configs/movielens_two_tower.toml"
FAST = ["train.epochs=2", "train.patience=1", "train.refit=false"]


@pytest.fixture(scope="session")
def small_frame():
    """MovieLens ratings of users 1-40 (about 5,000 rows)."""
    from recsys.data.movielens import load_movielens

    frame = load_movielens()
    return frame[frame["userId"] <= 40].reset_index(drop=True)


def _train(config_path, overrides, frame, path):
    from recsys import train
    from recsys.config import load_config

    config = load_config(config_path, overrides)
    return train(config, str(path), frame=frame, progress=False)


@pytest.fixture(scope="session")
def rating_run(small_frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("tabular") / "rating"
    return _train(RATING, FAST, small_frame, path)


@pytest.fixture(scope="session")
def liked_run(small_frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("tabular") / "liked"
    return _train(LIKED, FAST, small_frame, path)


@pytest.fixture(scope="session")
def retriever(small_frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("tabular") / "two_tower"
    bundle, _ = _train(
        TWO_TOWER,
        ["train.epochs=1"],
        small_frame,
        path,
    )
    return bundle
