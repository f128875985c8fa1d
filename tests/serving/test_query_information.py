"""What a query must say of a new user to be answered by the query tower.

A query whose features hold nothing the tower learnt from (an unknown id,
an unknown category, a null) got the tower's vector of out-of-vocabulary
rows: one fixed list for every new user, labelled as no fallback.
"""

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recsys.serving import Settings
from recsys.serving import create_app


@pytest.fixture(scope="module")
def movielens_client(trained_bundle):
    bundle, _ = trained_bundle
    with TestClient(create_app(bundle.path, settings=Settings())) as client:
        yield client


@pytest.fixture(scope="module")
def profile_client(tmp_path_factory):
    """A bundle whose query reads the user id, a country and an age, and
    no history: trained in seconds on 60 users."""
    from recsys import train
    from recsys.config import load_config

    folder = tmp_path_factory.mktemp("profiles")
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(60), 8)
    frame = pd.DataFrame(
        {
            "u": users,
            "i": rng.integers(0, 30, len(users)),
            "t": np.arange(len(users)),
            "country": np.where(users % 2, "fr", "jp"),
            "age": 20.0 + users % 40,
        }
    )
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
[features.i]
kind = "categorical"
[features.country]
kind = "categorical"
[features.age]
kind = "numeric"
[model]
query_features = ["u", "country", "age"]
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
    with TestClient(create_app(bundle.path, settings=Settings())) as client:
        yield client


def _retrieve(client, body):
    answer = client.post("/v1/retrieve", json={"k": 3, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_unknown_id_in_features_gets_the_popular_items(movielens_client):
    popular = _retrieve(movielens_client, {"user_id": 99999999})
    assert popular["fallback"] == "popular"
    for features in ({"userId": 99999999}, {"userId": "someone-new"}):
        body = _retrieve(movielens_client, {"features": features})
        assert body["fallback"] == "popular"
        assert body["items"] == popular["items"]
    # A known id is read by the tower.
    body = _retrieve(movielens_client, {"features": {"userId": 42}})
    assert body["fallback"] is None


@pytest.mark.parametrize(
    "features",
    [
        {"u": "nobody"},
        {"u": "nobody", "country": "atlantis"},
        {"country": "atlantis", "age": None},
        {"age": None},
        {"age": ""},  # was a 422 worded for files ("empty those cells")
    ],
)
def test_unknown_values_and_nulls_say_nothing_of_a_new_user(
    profile_client, features
):
    popular = _retrieve(profile_client, {"user_id": "nobody"})
    body = _retrieve(profile_client, {"features": features})
    assert body["fallback"] == "popular"
    assert body["items"] == popular["items"]


@pytest.mark.parametrize(
    "features",
    [
        {"u": "nobody", "country": "fr"},
        {"country": "jp"},
        {"u": "nobody", "age": 31},
        {"age": 0},
    ],
)
def test_a_known_category_or_a_number_is_read_by_the_tower(
    profile_client, features
):
    body = _retrieve(profile_client, {"features": features})
    assert body["fallback"] is None and len(body["items"]) == 3
    # The same with an unknown `user_id` beside them.
    body = _retrieve(
        profile_client, {"user_id": "nobody", "features": features}
    )
    assert body["fallback"] is None


@pytest.mark.parametrize("user", [{}, {"user_id": 3}, {"user_id": "nobody"}])
def test_a_history_without_a_history_input_is_refused_whoever_asks(
    profile_client, user
):
    answer = profile_client.post(
        "/v1/retrieve", json={**user, "features": {"history": [1, 2]}}
    )
    assert answer.status_code == 422, answer.text
    message = answer.json()["detail"][0]["msg"]
    assert "Unknown query features ['history']" in message
    assert "['u', 'country', 'age']" in message
