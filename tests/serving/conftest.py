"""Serving fixtures: a tiny ranker beside the session's bundles."""

import pytest


@pytest.fixture(scope="session")
def ranker_bundle(tmp_path_factory):
    """A rating regression `TabularBundle` trained in seconds: MovieLens
    users 1-40, one epoch, no baselines. Its ids are the full data's, so it
    reranks the `trained_bundle`'s candidates."""
    from recsys import train
    from recsys.config import load_config
    from recsys.data.movielens import load_movielens

    frame = load_movielens()
    frame = frame[frame["userId"] <= 40].reset_index(drop=True)
    config = load_config(
        "configs/movielens_rating.toml",
        [
            "train.epochs=1",
            "train.refit=false",
            "evaluate.baselines=[]",
        ],
    )
    path = tmp_path_factory.mktemp("rankers") / "rating"
    bundle, _ = train(config, str(path), frame=frame, progress=False)
    return bundle
