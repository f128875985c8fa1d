"""Serving fixtures: a tiny ranker beside the session's bundles, bundles
whose query reads a profile, and a bundle whose query tower does not
load."""

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


def _profile_bundle(folder, users, min_frequency=1, member=False):
    """A two-tower bundle whose query reads the user id `u`, a `country`
    and an `age` (with `member`, a column of booleans too), and no
    history, trained in seconds on `users` (a user id a row; 30 items)."""
    import numpy as np
    import pandas as pd

    from recsys import train
    from recsys.config import load_config

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "u": users,
            "i": rng.integers(0, 30, len(users)),
            "t": np.arange(len(users)),
            "country": np.where(users % 2, "fr", "jp"),
            "age": 20.0 + users % 40,
        }
    )
    query = ["u", "country", "age"]
    if member:
        frame["member"] = users % 3 == 0
        query.append("member")
    frame.to_csv(folder / "rows.csv", index=False)
    config = folder / "profiles.toml"
    config.write_text(
        f"""
[data]
source = "{folder / "rows.csv"}"
user = "u"
item = "i"
time = "t"
[features.u]
kind = "categorical"
min_frequency = {min_frequency}
[features.i]
kind = "categorical"
[features.country]
kind = "categorical"
[features.age]
kind = "numeric"
{"[features.member]" if member else ""}
{'kind = "categorical"' if member else ""}
[model]
query_features = {query!r}
candidate_features = ["i"]
history_length = 0
combine = "concat"
embedding_dim = 8
[train]
epochs = 1
[evaluate]
baselines = []
"""
    )
    bundle, _ = train(
        load_config(str(config)), str(folder / "bundle"), progress=False
    )
    return bundle


@pytest.fixture(scope="session")
def profile_bundle(tmp_path_factory):
    """60 users of 8 rows each: every training user is in the vocabulary
    of `u`, whose out-of-vocabulary row no training row reached."""
    import numpy as np

    folder = tmp_path_factory.mktemp("profiles")
    return _profile_bundle(folder, np.repeat(np.arange(60), 8))


@pytest.fixture(scope="session")
def rare_users_bundle(tmp_path_factory):
    """A bundle whose `u` vocabulary leaves the rare users out (the odd
    ones, 2 rows each, under `min_frequency = 4`): its out-of-vocabulary
    row learnt them. Its query reads `member`, a column of booleans."""
    import numpy as np

    folder = tmp_path_factory.mktemp("rare_users")
    users = np.concatenate(
        [np.repeat(np.arange(0, 60, 2), 8), np.repeat(np.arange(1, 60, 2), 2)]
    )
    return _profile_bundle(folder, users, min_frequency=4, member=True)
