"""What a query must say of a new user to be answered by the query tower.

A query whose features hold nothing the tower learnt from (an unknown id,
an unknown category, a null) got the tower's vector of out-of-vocabulary
rows: one fixed list for every new user, labelled as no fallback.
"""

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
def profile_client(profile_bundle):
    app = create_app(profile_bundle.path, settings=Settings())
    with TestClient(app) as client:
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


def _history(bundle):
    """Five popular items: a history the tower reads."""
    return [str(i) for i in bundle.item_ids[bundle.popular_rows[:5]]]


@pytest.mark.parametrize("fast_tower", [True, False])
def test_an_unknown_user_with_a_history_is_answered_as_the_history_alone(
    trained_bundle, fast_tower
):
    # The unknown id went into the tower through the out-of-vocabulary row,
    # which no training row reached: a random vector added to the history's
    # (the top 10 differed for 50 of 50 histories).
    bundle, _ = trained_bundle
    history = {"history": _history(bundle)}
    settings = Settings(fast_tower=fast_tower)
    with TestClient(create_app(bundle.path, settings=settings)) as client:
        alone = _retrieve(client, {"features": history, "k": 20})
        assert alone["fallback"] is None
        for body in (
            {"user_id": "someone-new", "features": history},
            {"user_id": 99999999, "features": history},
            {"features": {"userId": 99999999, **history}},
        ):
            assert _retrieve(client, {**body, "k": 20}) == alone
        ready = client.get("/readyz").json()
        assert ready["query_tower"] == ("numpy" if fast_tower else "keras")


def test_an_unknown_user_reranks_the_candidates_of_the_history_alone(
    trained_bundle, ranker_bundle
):
    bundle, _ = trained_bundle
    history = {"history": _history(bundle)}
    app = create_app(
        bundle.path, settings=Settings(), ranker=ranker_bundle.path
    )
    with TestClient(app) as client:
        alone = _retrieve(client, {"features": history, "k": 10})
        # `blend` 0: the candidates in retrieval's order.
        reranked = _retrieve(
            client,
            {
                "user_id": "someone-new",
                "features": history,
                "rerank": True,
                "blend": 0.0,
                "k": 10,
                "candidates": 10,
            },
        )
    assert reranked["reranked"] is True
    assert [i["id"] for i in reranked["items"]] == [
        i["id"] for i in alone["items"]
    ]


def test_an_unknown_id_beside_other_features_says_nothing(profile_client):
    alone = _retrieve(profile_client, {"features": {"country": "fr"}})
    for body in (
        {"features": {"u": "nobody", "country": "fr"}},
        {"user_id": "nobody", "features": {"country": "fr"}},
    ):
        assert _retrieve(profile_client, body) == alone


def test_a_trained_out_of_vocabulary_row_is_read(rare_users_bundle):
    # Users rarer than `min_frequency` trained the out-of-vocabulary row:
    # a new user is read as they are, not as a null.
    app = create_app(rare_users_bundle.path, settings=Settings())
    with TestClient(app) as client:
        new = _retrieve(client, {"features": {"u": "nobody", "age": 30}})
        rare = _retrieve(client, {"features": {"u": 1, "age": 30}})
        null = _retrieve(client, {"features": {"age": 30}})
    assert new == rare
    assert new["items"] != null["items"]
