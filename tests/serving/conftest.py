"""Serving fixtures: a tiny ranker beside the session's bundles, and a
bundle whose query tower does not load."""

import json
import os
import shutil

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


@pytest.fixture(scope="session")
def tower_of_other_inputs(trained_bundle, tmp_path_factory):
    """The path of a copy of the trained bundle whose query tower is its
    candidate tower (re-signed): everything loads but the query tower,
    which reads other inputs than the bundle's (a `BundleError`)."""
    from recsys.storage.files import file_digests

    bundle, _ = trained_bundle
    path = tmp_path_factory.mktemp("bundles") / "other_inputs"
    shutil.copytree(bundle.path, path)
    shutil.copy(path / "candidate_tower.keras", path / "query_tower.keras")
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = file_digests(str(path), exclude=("manifest.json",))
    manifest_path.write_text(json.dumps(manifest))
    return os.fspath(path)
