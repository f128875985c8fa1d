import os
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recsys.serving import Settings
from recsys.serving import create_app


@pytest.fixture(scope="module")
def client(trained_bundle):
    bundle, _ = trained_bundle
    with TestClient(create_app(bundle.path, settings=Settings())) as client:
        yield client


def test_retrieve_known_user_matches_the_bundle(client, trained_bundle):
    bundle, _ = trained_bundle
    answer = client.post("/v1/retrieve", json={"user_id": "42", "k": 10})
    assert answer.status_code == 200
    body = answer.json()
    ids, scores = bundle.recommend([42], k=10)
    assert [item["id"] for item in body["items"]] == [str(i) for i in ids[0]]
    np.testing.assert_allclose(
        [item["score"] for item in body["items"]], scores[0], rtol=1e-6
    )
    assert body["bundle"] == bundle.version and body["fallback"] is None


def test_retrieve_excludes_ids_and_seen_items(client, trained_bundle):
    bundle, _ = trained_bundle
    first = client.post("/v1/retrieve", json={"user_id": 42, "k": 5}).json()
    banned = [item["id"] for item in first["items"][:2]]
    again = client.post(
        "/v1/retrieve", json={"user_id": 42, "k": 5, "exclude": banned}
    ).json()
    ids = [item["id"] for item in again["items"]]
    assert len(ids) == 5 and not set(banned) & set(ids)
    seen = {
        str(i) for i in bundle.item_ids[bundle.seen(bundle.user_rows([42])[0])]
    }
    assert not seen & set(ids)


def test_empty_features_leave_a_known_user_as_stored(client):
    # `{}` got the tower's answer for an empty history: another list.
    plain = client.post("/v1/retrieve", json={"user_id": 42, "k": 5}).json()
    body = client.post(
        "/v1/retrieve", json={"user_id": 42, "k": 5, "features": {}}
    ).json()
    assert body["items"] == plain["items"]
    # An empty history is a history: it replaces the stored one.
    emptied = client.post(
        "/v1/retrieve",
        json={"user_id": 42, "k": 5, "features": {"history": []}},
    ).json()
    assert emptied["items"] != plain["items"]


def test_retrieve_unknown_user_falls_back_to_popular(client):
    body = client.post(
        "/v1/retrieve", json={"user_id": "new-user", "k": 3}
    ).json()
    assert body["fallback"] == "popular" and len(body["items"]) == 3


def test_retrieve_from_features_excludes_the_given_history(client):
    history = ["1", "260", "1196"]
    body = client.post(
        "/v1/retrieve", json={"features": {"history": history}, "k": 10}
    ).json()
    ids = [item["id"] for item in body["items"]]
    assert len(ids) == 10 and not set(history) & set(ids)


def test_a_history_of_nothing_known_gets_the_popular_items(client):
    popular = client.post(
        "/v1/retrieve", json={"user_id": "new-user", "k": 5}
    ).json()
    for history in ([], ["no-such-movie", "nor-this-one"]):
        body = client.post(
            "/v1/retrieve", json={"features": {"history": history}, "k": 5}
        ).json()
        assert body["fallback"] == "popular"
        assert body["items"] == popular["items"]
    # One known movie is enough for the tower, which leaves it out.
    body = client.post(
        "/v1/retrieve",
        json={"features": {"history": ["no-such-movie", "260"]}, "k": 5},
    ).json()
    ids = [item["id"] for item in body["items"]]
    assert body["fallback"] is None and len(ids) == 5 and "260" not in ids


def test_batch_answers_each_query(client):
    body = client.post(
        "/v1/retrieve/batch",
        json={"queries": [{"user_id": 1, "k": 2}, {"user_id": 2, "k": 3}]},
    ).json()
    assert [len(r["items"]) for r in body["results"]] == [2, 3]


def test_similar_items(client):
    body = client.get("/v1/items/1/similar", params={"k": 4}).json()
    assert len(body["items"]) == 4 and "1" not in [
        i["id"] for i in body["items"]
    ]
    assert client.get("/v1/items/no-such-item/similar").status_code == 404


def test_health_ready_metrics_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["query_tower"] in ("loading", "numpy")
    assert ready["top_items"] in ("building", "ready")
    client.post("/v1/retrieve", json={"user_id": 1})
    text = client.get("/metrics").text
    assert 'recsys_requests_total{route="/v1/retrieve",status="200"}' in text
    assert "recsys_request_latency_seconds_bucket" in text
    assert "recsys_bundle_info{version=" in text
    # Batches over 1 s had only +Inf; the process's own metrics were not
    # there (the app's registry is its own).
    assert 'bucket{le="10.0",route="/v1/retrieve"}' in text
    assert "process_resident_memory_bytes" in text
    assert "python_gc_collections_total" in text
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    # FastAPI's own pages were counted as "unmatched", like a 404.
    text = client.get("/metrics").text
    assert 'recsys_requests_total{route="/docs",status="200"}' in text
    assert 'recsys_requests_total{route="/openapi.json",status="200"}' in text


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"user_id": 1, "k": 0}, "greater than or equal to 1"),
        ({"user_id": 1, "k": 100000}, "at most 1000"),
        ({"user_id": 1, "k": "ten"}, "valid integer"),
        ({"user_id": 1, "k": 2.5}, "valid integer"),
        ({"user_id": [1]}, "user_id"),
        # Pydantic's "Extra inputs are not permitted" named no field taken.
        ({"user_id": 1, "limit": 3}, "Unknown field 'limit'. The fields"),
        ({"userId": 1}, "Unknown field 'userId'. Did you mean 'user_id'?"),
        ({}, "Give a `user_id`, `features`, or both"),
        ({"features": {"age": 3}}, "Unknown query features ['age']"),
        ({"features": {"history": "1,2"}}, "must be a list of item ids"),
        ({"features": {"history": [[1]]}}, "must be a list of item ids"),
        ({"features": {"userId": {"a": 1}}}, "single value"),
        ({"user_id": 1, "exclude_seen": "yes"}, "valid boolean"),
        ({"user_id": 1, "exclude": "1"}, "valid list"),
        ({"user_id": 1, "rerank": True}, "--ranker RANKER_BUNDLE"),
        ({"user_id": 1, "blend": 0.5}, 'only with "rerank": true'),
    ],
)
def test_bad_requests_get_4xx_with_the_fix(body, fragment, client):
    answer = client.post("/v1/retrieve", json=body)
    assert answer.status_code == 422
    assert fragment in str(answer.json()["detail"])


def test_malformed_and_oversized_bodies(trained_bundle):
    bundle, _ = trained_bundle
    settings = Settings(max_body_bytes=200, max_batch=2)
    with TestClient(create_app(bundle.path, settings=settings)) as client:
        assert (
            client.post("/v1/retrieve", content=b"{not json").status_code == 422
        )
        huge = {"user_id": 1, "exclude": list(range(100))}
        answer = client.post("/v1/retrieve", json=huge)
        assert answer.status_code == 413
        assert "200 bytes" in answer.json()["detail"][0]["msg"]
        chunks = (b"x" * 100 for _ in range(5))  # no Content-Length
        assert client.post("/v1/retrieve", content=chunks).status_code == 413
        batch = {"queries": [{"user_id": 1}] * 3}
        answer = client.post("/v1/retrieve/batch", json=batch)
        assert answer.status_code == 422
        assert "at most 2" in answer.json()["detail"][0]["msg"]


def test_a_form_encoded_body_says_to_send_json(client):
    # What `curl -d '{"user_id": 1}'` sends.
    form = {"content-type": "application/x-www-form-urlencoded"}
    answer = client.post(
        "/v1/retrieve", content=b'{"user_id": 1}', headers=form
    )
    assert answer.status_code == 422
    message = answer.json()["detail"][0]["msg"]
    assert "Content-Type: application/json" in message
    assert (
        "'application/x-www-form-urlencoded'" in message and "curl" in message
    )
    # No Content-Type at all: `requests.post(url, data=json.dumps(...))`.
    answer = client.post("/v1/retrieve", content=b'{"user_id": 1}')
    assert answer.status_code == 422
    assert answer.request.headers.get("content-type") is None
    message = answer.json()["detail"][0]["msg"]
    assert "Content-Type: application/json" in message
    assert "has no Content-Type" in message and "json=, not data=" in message
    # A JSON body that is no object: said so, with an example (pydantic's
    # "a valid dictionary or object to extract fields from" before).
    answer = client.post("/v1/retrieve", json=[1])
    message = answer.json()["detail"][0]["msg"]
    assert "must be a JSON object, e.g. {" in message
    assert "Received: a list" in message
    # Malformed JSON: where, and the fix ("JSON decode error" before).
    answer = client.post(
        "/v1/retrieve",
        content=b'{"user_id": 1,',
        headers={"content-type": "application/json"},
    )
    message = answer.json()["detail"][0]["msg"]
    assert "not valid JSON" in message and "at character 14" in message
    # In a batch's query: that query's fields.
    batch = {"queries": [{"user_id": 1, "kk": 2}]}
    answer = client.post("/v1/retrieve/batch", json=batch)
    detail = answer.json()["detail"][0]
    assert detail["loc"] == ["body", "queries", 0, "kk"]
    assert "Did you mean 'k'?" in detail["msg"]


def test_no_500_for_random_json(client):
    rng = np.random.default_rng(0)
    values = [None, -1, 0, 1.5, "", "x" * 300, [], {}, True, 10**30]
    for _ in range(200):
        body = {
            key: values[rng.integers(len(values))]
            for key in (
                "user_id",
                "k",
                "exclude",
                "exclude_seen",
                "features",
                "rerank",
                "candidates",
                "blend",
            )
            if rng.random() < 0.6
        }
        assert client.post("/v1/retrieve", json=body).status_code < 500, body


def test_token_protects_admin_and_optionally_everything(trained_bundle):
    bundle, _ = trained_bundle
    with TestClient(create_app(bundle.path, settings=Settings())) as client:
        assert client.post("/admin/reload").status_code == 403  # no token
    settings = Settings(api_token="s3cret")
    with TestClient(create_app(bundle.path, settings=settings)) as client:
        assert client.post("/admin/reload").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post("/admin/reload", headers=wrong).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/admin/reload", headers=good).status_code == 200
        assert (
            client.post("/v1/retrieve", json={"user_id": 1}).status_code == 200
        )
    settings = Settings(api_token="s3cret", auth_all=True)
    with TestClient(create_app(bundle.path, settings=settings)) as client:
        assert (
            client.post("/v1/retrieve", json={"user_id": 1}).status_code == 401
        )
        # The document too (it lists the bundle's query features): before,
        # /openapi.json and /docs answered without the token.
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/docs").status_code == 404
        document = client.get("/openapi.json", headers=good)
        assert document.status_code == 200
        assert "/v1/retrieve" in document.json()["paths"]


def test_reload_swaps_bundles_and_refuses_broken_ones(
    trained_bundle, second_bundle, tmp_path, bundle_root
):
    bundle, _ = trained_bundle
    settings = Settings(api_token="s3cret", bundle_root=str(bundle_root))
    app = create_app(bundle.path, settings=settings)
    with TestClient(app, headers={"Authorization": "Bearer s3cret"}) as client:
        answer = client.post("/admin/reload", json={"path": second_bundle.path})
        assert answer.status_code == 200
        assert answer.json() == {
            "bundle": second_bundle.version,
            "previous": bundle.version,
            "path": second_bundle.path,
        }
        (tmp_path / "manifest.json").write_text("{broken")
        refused = client.post("/admin/reload", json={"path": str(tmp_path)})
        assert refused.status_code == 422
        assert second_bundle.version in refused.json()["detail"][0]["msg"]
        body = client.post("/v1/retrieve", json={"user_id": 1}).json()
        assert body["bundle"] == second_bundle.version


def test_the_app_changes_no_gc_state_and_calls_after_load(
    trained_bundle, second_bundle, bundle_root
):
    # gc.freeze is the serving process's choice (recsys.serving.server),
    # made through `after_load`: the app factory never freezes by itself.
    import gc

    bundle, _ = trained_bundle
    settings = Settings(api_token="s3cret", bundle_root=str(bundle_root))
    frozen = gc.get_freeze_count()
    with TestClient(create_app(bundle.path, settings=settings)) as client:
        assert client.get("/readyz").status_code == 200
    assert gc.get_freeze_count() == frozen
    calls = []
    app = create_app(
        bundle.path, settings=settings, after_load=lambda: calls.append(1)
    )
    with TestClient(app, headers={"Authorization": "Bearer s3cret"}) as client:
        assert calls[:1] == [1]  # at load
        # Again once the query tower and the top-items table, built in the
        # background, are done: what they allocated is frozen too.
        deadline = time.monotonic() + 120
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = client.get("/readyz").json()
        assert calls == [1, 1]
        assert ready["query_tower"] == "numpy" and ready["top_items"] == "ready"
        client.post("/admin/reload", json={"path": second_bundle.path})
        assert calls == [1, 1, 1]
    assert gc.get_freeze_count() == frozen


def test_the_query_tower_loads_on_demand(trained_bundle):
    from recsys.serving.service import RetrievalService

    bundle, _ = trained_bundle
    service = RetrievalService(bundle, precompute_depth=0, load_tower=False)
    assert not service.tower_loaded
    ids, _, _ = service.retrieve(user_id=42, k=5)
    assert not service.tower_loaded  # known users need no model call
    np.testing.assert_array_equal(ids, bundle.recommend([42], k=5)[0][0])
    ids, _, _ = service.retrieve(features={"userId": 42}, k=5)
    assert service.tower_loaded and len(ids) == 5


# JSON can spell a lone UTF-16 surrogate, which UTF-8 cannot encode: the
# bodies are raw bytes (httpx's `json=` would refuse to encode them).
@pytest.mark.parametrize(
    "path, body, where, loc",
    [
        ("/v1/retrieve", r'{"user_id": "\ud800"}', "`user_id`", ["user_id"]),
        (
            "/v1/retrieve",
            r'{"user_id": 1, "exclude": [1, "\ud800"]}',
            "`exclude[1]`",
            ["exclude", 1],
        ),
        (
            "/v1/retrieve",
            r'{"features": {"history": ["\udfff"]}}',
            "`features['history'][0]`",
            ["features", "history", 0],
        ),
        (
            "/v1/retrieve",
            r'{"features": {"userId": "\ud800"}}',
            "`features['userId']`",
            ["features", "userId"],
        ),
        (
            "/v1/retrieve",
            r'{"features": {"\ud800": 1}}',
            "`features`",
            ["features"],
        ),
        (
            "/v1/retrieve/batch",
            r'{"queries": [{"user_id": 1}, '
            r'{"user_id": 1, "exclude": ["\udfff"]}]}',
            "`exclude[0]`",
            ["queries", 1, "exclude", 0],
        ),
    ],
)
def test_lone_surrogates_get_422_naming_the_field(
    client, path, body, where, loc
):
    answer = client.post(
        path,
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert f"{where} must be valid Unicode" in error["msg"]
    assert error["loc"] == ["body", *loc]


@pytest.mark.parametrize(
    "body",
    [
        r'{"user_id": ["\ud800"]}',  # pydantic's error holds the value
        r'{"user_id": 1, "\ud800": 1}',  # and this one the name
        '{"user_id": ' + "[" * 900 + "]" * 900 + "}",
        '{"features": {"history": ' + "[" * 995 + "]" * 995 + "}}",
    ],
)
def test_error_bodies_hold_any_value_a_request_held(client, body):
    answer = client.post(
        "/v1/retrieve",
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code in (400, 422), answer.text


def test_unparsable_bodies_get_400_saying_why(client):
    json_type = {"content-type": "application/json"}
    answer = client.post(
        "/v1/retrieve", content=b'{"user_id": "\xff"}', headers=json_type
    )
    assert answer.status_code == 400
    assert answer.json()["detail"][0]["msg"].startswith(
        "The body is not UTF-8: byte 0xff at position 13"
    )
    deep = b'{"user_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = client.post("/v1/retrieve", content=deep, headers=json_type)
    assert answer.status_code == 400
    assert "nested too deeply" in answer.json()["detail"][0]["msg"]
    # A number of 5,000 digits: "There was an error parsing the body".
    answer = client.post(
        "/v1/retrieve",
        content=b'{"user_id": ' + b"9" * 5000 + b', "k": 3}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert "more than 4,300 digits" in answer.json()["detail"][0]["msg"]


def test_reload_refuses_whatever_a_bundle_raises(
    trained_bundle, second_bundle, bundle_root, monkeypatch
):
    # A manifest of the wrong types raised TypeError (and one nested too
    # deep RecursionError) out of the load: a 500, not a refusal.
    from recsys.serving.service import RetrievalService

    bundle, _ = trained_bundle
    settings = Settings(api_token="s3cret", bundle_root=str(bundle_root))
    app = create_app(bundle.path, settings=settings)
    with TestClient(app, headers={"Authorization": "Bearer s3cret"}) as client:

        def broken(path, **options):
            raise TypeError("string indices must be integers, not 'str'")

        monkeypatch.setattr(RetrievalService, "load", broken)
        answer = client.post("/admin/reload", json={"path": second_bundle.path})
        assert answer.status_code == 422
        message = answer.json()["detail"][0]["msg"]
        assert repr(second_bundle.path) in message
        assert f"still serving {bundle.version}" in message
        assert "TypeError: string indices must be integers" in message
        body = client.post("/v1/retrieve", json={"user_id": 1}).json()
        assert body["bundle"] == bundle.version


def test_watch_goes_on_after_a_bundle_that_fails_to_load(
    tmp_path, monkeypatch, caplog
):
    import asyncio
    import types

    from recsys.serving import app as app_module

    for name in ("bad", "good"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
    pointer = tmp_path / "current"
    pointer.write_text("bad")
    loaded = []

    async def swap_bundle(app, path):
        loaded.append(os.path.basename(path))
        if path.endswith("bad"):
            raise RecursionError("maximum recursion depth exceeded")
        return types.SimpleNamespace(bundle="good", previous="bad")

    async def main():
        app = types.SimpleNamespace(
            state=types.SimpleNamespace(watch_path=str(pointer))
        )
        watch = asyncio.create_task(app_module._watch(app, 0.01))
        await asyncio.sleep(0.01)
        os.utime(tmp_path / "bad" / "manifest.json", ns=(1, 1))
        while not loaded:
            await asyncio.sleep(0.01)
        pointer.write_text("good")
        while loaded[-1:] != ["good"] and not watch.done():
            await asyncio.sleep(0.01)
        watch.cancel()

    monkeypatch.setattr(app_module, "swap_bundle", swap_bundle)
    asyncio.run(asyncio.wait_for(main(), 10))
    assert loaded == ["bad", "good"]
    assert "Watched bundle" in caplog.text and "refused" in caplog.text


def test_watch_tries_a_refused_bundle_again_once_its_files_change(
    tmp_path, monkeypatch
):
    # Copied in file by file (rsync), the manifest came before the rest:
    # refused then, the whole bundle was never tried again.
    import asyncio
    import types

    from recsys.serving import app as app_module

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text("{}")
    tried = []

    async def swap_bundle(app, path):
        whole = os.path.exists(os.path.join(path, "metrics.json"))
        tried.append(whole)
        if not whole:
            raise RuntimeError("metrics.json is missing")
        return types.SimpleNamespace(bundle="b", previous="a")

    async def main():
        app = types.SimpleNamespace(
            state=types.SimpleNamespace(watch_path=str(tmp_path / "b"))
        )
        watch = asyncio.create_task(app_module._watch(app, 0.01))
        await asyncio.sleep(0.01)
        os.utime(tmp_path / "b" / "manifest.json", ns=(1, 1))
        while not tried:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # polls of an unchanged refused bundle
        assert tried == [False]
        (tmp_path / "b" / "metrics.json").write_text("{}")
        while tried[-1:] != [True] and not watch.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        watch.cancel()

    monkeypatch.setattr(app_module, "swap_bundle", swap_bundle)
    asyncio.run(asyncio.wait_for(main(), 10))
    assert tried == [False, True]


def test_watch_says_when_its_pointer_names_no_bundle(tmp_path, caplog):
    import asyncio
    import types

    from recsys.serving import app as app_module

    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "manifest.json").write_text("{}")
    pointer = tmp_path / "current"
    pointer.write_text("good")

    async def main():
        app = types.SimpleNamespace(
            state=types.SimpleNamespace(watch_path=str(pointer))
        )
        watch = asyncio.create_task(app_module._watch(app, 0.01))
        await asyncio.sleep(0.02)
        pointer.write_text("typo_bundel")
        while "names no bundle" not in caplog.text and not watch.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # said once, not every poll
        watch.cancel()

    # Before: nothing logged, and the rollout silently did nothing.
    with caplog.at_level("WARNING", logger="recsys"):
        asyncio.run(asyncio.wait_for(main(), 10))
    warnings = [r for r in caplog.records if "names no bundle" in r.message]
    assert len(warnings) == 1
    assert "typo_bundel" in warnings[0].message


def test_a_query_tower_that_failed_to_load_is_a_503(
    trained_bundle, monkeypatch
):
    from recsys.serving.fast_tower import NumpyTower
    from recsys.serving.service import RetrievalService

    bundle, _ = trained_bundle
    service = RetrievalService(bundle, precompute_depth=0, load_tower=False)

    def broken(tower):
        raise KeyError("item_id")  # as a candidate tower in its place did

    monkeypatch.setattr(NumpyTower, "from_keras", broken)
    with TestClient(create_app(bundle.path, service=service)) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").json()["query_tower"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for path, body in [
            ("/v1/retrieve", {"features": {"history": [1, 2]}}),
            ("/v1/retrieve", {"user_id": 1, "features": {"userId": 1}}),
            ("/v1/retrieve/batch", {"queries": [{"features": {"userId": 1}}]}),
        ]:
            answer = client.post(path, json=body)
            assert answer.status_code == 503, answer.text
            assert "query tower" in answer.json()["detail"][0]["msg"]
        answer = client.post("/v1/retrieve", json={"user_id": 1})
        assert answer.status_code == 200


def test_a_pointer_outside_the_root_is_refused_alike_whatever_exists(
    tmp_path,
):
    from recsys.serving.bundle_paths import OutsideRoot
    from recsys.serving.bundle_paths import resolve_under_root

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    (outside / "bundle").mkdir(parents=True)
    (outside / "bundle" / "manifest.json").write_text("{}")
    messages = []
    for target in ("bundle", "nothing_here"):
        (root / target).write_text(str(outside / target))
        with pytest.raises(OutsideRoot) as raised:
            resolve_under_root(target, str(root))
        messages.append(str(raised.value))
    assert messages[0] == messages[1]


def test_scores_that_are_not_finite_are_not_answered_as_null(trained_bundle):
    from recsys.serving.service import RetrievalService

    bundle, _ = trained_bundle
    service = RetrievalService(bundle, precompute_depth=0)
    ids = service.bundle.item_ids[:3]
    # As vectors whose dot products overflow float32: NaN and inf.
    scores = np.array([1.0, np.nan, np.inf], np.float32)
    service.similar = lambda item_id, k: (ids, scores)
    app = create_app(bundle.path, settings=Settings(), service=service)
    with TestClient(app) as client:
        answer = client.get(f"/v1/items/{ids[0]}/similar", params={"k": 3})
    # Before: {"score": null} twice, which the schema says is a float.
    assert answer.status_code == 200
    assert answer.json()["items"] == [{"id": str(ids[0]), "score": 1.0}]


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"user_id": 42.5}, ["body", "user_id"]),
        ({"user_id": 42, "exclude": [1, 1.5]}, ["body", "exclude", 1]),
        ({"user_id": [42]}, ["body", "user_id"]),
    ],
)
def test_an_id_of_another_type_is_one_error_at_its_place(client, body, loc):
    # Pydantic's two branches of `str | int`: two errors, one under a
    # validator's name ("function-before[_integral(), int]").
    answer = client.post("/v1/retrieve", json=body)
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == loc
    assert error["msg"] == "Input should be an id: a string or a whole number"


def test_an_empty_body_says_so(client):
    answer = client.post(
        "/v1/retrieve",
        content=b"",
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["msg"].startswith("The body is empty")


def test_a_huge_value_is_not_echoed_whole(client):
    # A 900 KB id came back whole in its 422.
    answer = client.post(
        "/v1/retrieve", json={"user_id": 1, "k": "9" * 900_000}
    )
    assert answer.status_code == 422
    assert len(answer.content) < 5_000
    (error,) = answer.json()["detail"]
    assert error["input"].endswith("...") and error["loc"] == ["body", "k"]


def test_a_body_that_is_no_json_is_not_echoed_whole(client):
    answer = client.post(
        "/v1/retrieve",
        content=b"x=" + b"y" * 5000,
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422 and len(answer.content) < 2_000


def test_an_item_id_holding_a_slash_has_its_similar_items(trained_bundle):
    # "cat/7" sent as cat%2F7, which the server decodes before routing: a
    # bare 404 "Not Found" before, naming neither the id nor the cause.
    from recsys.serving.service import RetrievalService

    bundle, _ = trained_bundle
    service = RetrievalService(bundle, precompute_depth=0)
    asked = []

    def similar(item_id, k):
        asked.append(item_id)
        if item_id != "cat/7 ?":
            raise KeyError(item_id)
        return service.bundle.item_ids[:k], np.ones(k, np.float32)

    service.similar = similar
    app = create_app(bundle.path, settings=Settings(), service=service)
    with TestClient(app) as client:
        found = client.get("/v1/items/cat%2F7%20%3F/similar", params={"k": 2})
        unknown = client.get("/v1/items/a%2Fb/similar")
    assert found.status_code == 200 and len(found.json()["items"]) == 2
    assert unknown.status_code == 404
    assert "'a/b'" in unknown.json()["detail"][0]["msg"]
    assert asked == ["cat/7 ?", "a/b"]


def test_a_reload_path_to_a_file_under_the_root_never_quotes_it(tmp_path):
    from recsys.serving.bundle_paths import resolve_under_root

    # Before: the error quoted the file's first line (a `.env`'s secret)
    # back to the client of /admin/reload.
    (tmp_path / "secrets.env").write_text("API_KEY=hunter2\n")
    with pytest.raises(ValueError) as raised:
        resolve_under_root("secrets.env", str(tmp_path))
    assert "hunter2" not in str(raised.value)
    assert "secrets.env" in str(raised.value)


def test_head_is_answered_wherever_get_is(trained_bundle):
    # RFC 9110: before, HEAD /healthz (a load balancer's probe) was a 405.
    bundle, _ = trained_bundle
    with TestClient(create_app(bundle.path, settings=Settings())) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            got = client.get(path)
            head = client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b""
            assert head.headers["content-type"] == got.headers["content-type"]
        item = bundle.item_ids[0]
        assert client.head(f"/v1/items/{item}/similar").status_code == 200
        assert client.head("/v1/items/no-such-item/similar").status_code == 404
        assert client.head("/v1/retrieve").status_code == 405  # POST only
