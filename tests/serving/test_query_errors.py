"""The service's own 422s name the field of the request they refuse, and
speak of the request (not of a table's columns, cells and rows)."""

import pytest
from fastapi.testclient import TestClient

from recsys.serving import Settings
from recsys.serving import create_app


@pytest.fixture(scope="module")
def profile_client(profile_bundle):
    app = create_app(profile_bundle.path, settings=Settings())
    with TestClient(app) as client:
        yield client


def _refused(client, body, path="/v1/retrieve"):
    answer = client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    return error


@pytest.mark.parametrize(
    "features, name, message",
    [
        ({"age": "abc"}, "age", "`features['age']` must be a number, or null"),
        ({"age": "inf"}, "age", "`features['age']` must be a finite number"),
        ({"age": 1e308}, "age", "`features['age']` is too large"),
        # An integer past any float: it was a 500 (OverflowError).
        ({"age": 10**400}, "age", "`features['age']` is too large"),
        ({"age": [30]}, "age", "`features['age']` must be a single value"),
        ({"agee": 3}, "agee", "Unknown query features ['agee']"),
        # A flag sent for a value: read as 1.0, or as the id "True".
        ({"age": True}, "age", "must be a number (1 or 0 for a flag), not a"),
        ({"u": True}, "u", "`features['u']` must be a string or a whole"),
        ({"country": False}, "country", "not a boolean. Received: false"),
    ],
)
def test_a_refused_feature_is_named_at_its_place(
    profile_client, features, name, message
):
    # It was `loc: ["body"]` and the preprocessor's words: "Column 'age'
    # holds 1 value that is no number ... (row 0) ... empty those cells".
    error = _refused(profile_client, {"features": features})
    assert error["loc"] == ["body", "features", name]
    assert message in error["msg"]
    for word in ("Column", "cell", "row"):
        assert word not in error["msg"]


def test_a_refused_feature_of_a_batch_query_is_named_at_its_place(
    profile_client,
):
    queries = [{"user_id": 1}, {"features": {"age": "abc"}}]
    error = _refused(
        profile_client, {"queries": queries}, path="/v1/retrieve/batch"
    )
    assert error["loc"] == ["body", "queries", 1, "features", "age"]


def test_a_history_that_is_no_list_is_named_at_its_place(trained_bundle):
    bundle, _ = trained_bundle
    with TestClient(create_app(bundle.path, settings=Settings())) as client:
        error = _refused(client, {"features": {"history": "001"}})
    assert error["loc"] == ["body", "features", "history"]
    assert "`features['history']` must be a list of item ids" in error["msg"]


def test_a_boolean_category_takes_a_boolean(rare_users_bundle):
    # `member` was a column of booleans: `true` is one of its categories.
    app = create_app(rare_users_bundle.path, settings=Settings())
    with TestClient(app) as client:
        answers = [
            client.post("/v1/retrieve", json={"features": {"member": value}})
            for value in (True, "True")
        ]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
