import asyncio

import pytest
from fastapi.testclient import TestClient

from recsys.serving import Settings
from recsys.serving import create_app
from recsys.serving import fast_route
from recsys.serving.fast_route import FastRetrieve
from recsys.serving.service import RetrievalService

JSON = "application/json"

# Bodies (as sent, bytes) the fast path answers, and those it hands to
# FastAPI: malformed JSON, what `json.loads` takes and orjson does not,
# invalid fields, refused queries.
TAKEN = [
    b'{"user_id": "42", "k": 10}',
    b'{"user_id": 42, "k": 5.0, "exclude": ["1", 260]}',
    b'{"user_id": 42, "k": 150, "exclude": [1, 260, 1196]}',
    b'{"user_id": 42, "exclude_seen": false}',
    b'{"features": {"history": ["1", 260]}, "k": 10}',
    b'{"user_id": 1, "features": {"history": []}}',
    b'{"user_id": "nobody", "k": 3}',
    # Valid, then refused by the route itself (422 with its message).
    b"{}",
    b'{"user_id": 1, "k": 100000}',
    b'{"user_id": 1, "rerank": true}',
    b'{"user_id": 1, "blend": 0.5}',
    b'{"features": {"age": 3}}',
    b'{"features": {"history": "1,2"}}',
]
HANDED_ON = [
    b"",
    b"{not json",
    b"[1, 2]",
    b'"user_id"',
    b'{"user_id": 1, "k": 0}',
    b'{"user_id": 1, "k": "ten"}',
    b'{"user_id": 1, "limit": 3}',
    b'{"user_id": 1, "exclude_seen": "yes"}',
    b'{"features": {"x": NaN}}',
    b'{"features": {"x": 1e309}}',
    b'{"user_id": "\\ud800"}',
    b'{"user_id": 123456789012345678901234567890}',
    b'{"user_id": -9223372036854775809}',
    b'\xef\xbb\xbf{"user_id": 42}',
    b"\xff\xfe",
]


def _app(bundle, service, settings=None, fast=True):
    app = create_app(
        bundle.path, settings=settings or Settings(), service=service
    )
    if not fast:  # FastAPI alone, as before the fast path
        app.user_middleware = [
            m for m in app.user_middleware if m.cls is not FastRetrieve
        ]
    return app


@pytest.fixture(scope="module")
def service(trained_bundle):
    return RetrievalService(trained_bundle[0], precompute_depth=20)


@pytest.fixture
def parsed(monkeypatch):
    """The fast path's verdict on each body it read (None: handed on)."""
    seen = {}
    parse = fast_route._parse

    def spy(body):
        seen[body] = parse(body)
        return seen[body]

    monkeypatch.setattr(fast_route, "_parse", spy)
    return seen


CONTENT_TYPES = [JSON, "application/json; charset=utf-8", None, "text/plain"]


def _count(status):
    return (
        f'recsys_requests_total{{route="/v1/retrieve",status="{status}"}} 1.0'
    )


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_answers_equal_fastapis_own_for_every_body(
    trained_bundle, service, parsed, content_type
):
    bundle, _ = trained_bundle
    headers = {"content-type": content_type} if content_type else {}
    answers = {}
    for fast in (True, False):
        app = _app(bundle, service, fast=fast)
        with TestClient(app, raise_server_exceptions=False) as client:
            answers[fast] = [
                client.post("/v1/retrieve", content=body, headers=headers)
                for body in TAKEN + HANDED_ON
            ]
    for body, mine, theirs in zip(
        TAKEN + HANDED_ON, answers[True], answers[False], strict=True
    ):
        assert mine.status_code == theirs.status_code < 500, body
        assert mine.content == theirs.content, body
        assert mine.headers["content-type"] == theirs.headers["content-type"]
    if content_type in (None, "text/plain"):
        assert parsed == {}  # FastAPI reads those bodies its own way
        return
    assert all(parsed[body] is not None for body in TAKEN)
    assert all(parsed[body] is None for body in HANDED_ON)
    statuses = [answer.status_code for answer in answers[True]]
    assert statuses[: len(TAKEN)] == [200] * 7 + [422] * (len(TAKEN) - 7)


def test_the_token_and_metrics_hold_on_the_fast_path(
    trained_bundle, service, parsed
):
    bundle, _ = trained_bundle
    settings = Settings(api_token="s3cret", auth_all=True)
    body = b'{"user_id": 42, "k": 3}'
    with TestClient(_app(bundle, service, settings)) as client:
        refused = client.post(
            "/v1/retrieve", content=body, headers={"content-type": JSON}
        )
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "Missing or wrong token" in refused.json()["detail"][0]["msg"]
        good = {"content-type": JSON, "authorization": "Bearer s3cret"}
        answer = client.post("/v1/retrieve", content=body, headers=good)
        assert answer.status_code == 200 and len(answer.json()["items"]) == 3
        assert parsed[body] is not None
        text = client.get("/metrics", headers=good).text
    assert _count(200) in text and _count(401) in text


def test_a_client_gone_before_its_body_gets_no_answer(trained_bundle, service):
    bundle, _ = trained_bundle
    app = _app(bundle, service)
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/retrieve",
        "raw_path": b"/v1/retrieve",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"20"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }

    async def main():
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(main())
    assert sent == []
    assert _count(499) in app.state.metrics.render().decode()


def test_a_route_with_its_own_dependencies_is_refused():
    # The fast path would skip them: it refuses the route instead.
    from fastapi import APIRouter
    from fastapi import Depends

    async def guard():
        return None

    router = APIRouter()

    @router.post("/v1/retrieve", dependencies=[Depends(guard)])
    async def guarded(query: dict):
        return query

    with pytest.raises(ValueError, match="dependencies of its own"):
        FastRetrieve(None, guarded, router.routes[0])
