"""The service under hostile requests (issue #12, items 2, 8, 9 and 11).

Closed by default (`/admin` needs a token, reloads stay under the bundle
root), never a 5xx from request input, bounded reads of heads and bodies
on a real uvicorn, and settings checked at startup.
"""

import concurrent.futures
import json
import os
import socket
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from recsys.cli import main
from recsys.serving import Settings
from recsys.serving import create_app
from tests.serving.server import running_server

TOKEN = {"Authorization": "Bearer s3cret"}
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e309"]


def _strict_json(text):
    """Parses `text` as JSON that any client can read (no NaN/Infinity)."""

    def refuse(constant):
        raise AssertionError(f"the body holds {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def client(trained_bundle):
    bundle, _ = trained_bundle
    app = create_app(bundle.path, settings=Settings())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def admin(trained_bundle, tmp_path_factory, bundle_root):
    """A client of an app started from a pointer file, with a token; the
    bundle root is the pytest base directory (both test bundles are under
    it)."""
    bundle, _ = trained_bundle
    root = bundle_root
    pointer = tmp_path_factory.mktemp("pointers") / "current"
    pointer.write_text(bundle.path)
    settings = Settings(api_token="s3cret", bundle_root=str(root))
    with TestClient(create_app(str(pointer), settings=settings)) as client:
        yield client, pointer


# -- never a 5xx from request input ----------------------------------------

RETRIEVE_FIELDS = [
    '{"user_id": %s}',
    '{"user_id": 1, "k": %s}',
    '{"user_id": 1, "exclude": [%s]}',
    '{"user_id": 1, "exclude_seen": %s}',
    '{"user_id": 1, "rerank": %s}',
    '{"user_id": 1, "rerank": true, "candidates": %s}',
    '{"user_id": 1, "rerank": true, "blend": %s}',
    '{"features": {"userId": %s}}',
    '{"features": {"history": [%s]}}',
    '{"features": {"history": %s}}',
    '{"features": %s}',
    '{"user_id": 1, "features": {"userId": %s}}',
]


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("template", RETRIEVE_FIELDS)
def test_non_finite_numbers_get_422_with_a_readable_body(
    client, template, value
):
    body = template % value
    for path, content in (
        ("/v1/retrieve", body),
        ("/v1/retrieve/batch", f'{{"queries": [{body}]}}'),
    ):
        answer = client.post(
            path, content=content, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422, (path, content, answer.text)
        detail = _strict_json(answer.text)["detail"]
        assert isinstance(detail, list) and detail[0]["loc"][0] == "body"
        assert {"loc", "msg", "type"} <= set(detail[0])


def test_non_finite_feature_errors_name_the_field(client):
    answer = client.post(
        "/v1/retrieve",
        content='{"features": {"history": [1, 1e309]}}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["msg"].startswith("`features['history']` must be a finite")
    assert error["loc"] == ["body", "features", "history", 1]
    answer = client.post(
        "/v1/retrieve",
        content='{"features": {"userId": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert answer.json()["detail"][0]["loc"] == ["body", "features", "userId"]


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.sampled_from(
    [
        "user_id",
        "k",
        "exclude",
        "exclude_seen",
        "features",
        "rerank",
        "candidates",
        "blend",
        "userId",
        "history",
    ]
)
_queries = st.dictionaries(
    _fields, _json_values, max_size=5
) | st.fixed_dictionaries(
    {
        "features": st.dictionaries(
            st.sampled_from(["userId", "history"]), _json_values
        )
    }
)


@hypothesis_settings(
    max_examples=150,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=_queries, batch=st.booleans())
def test_no_request_body_gets_a_5xx(client, query, batch):
    body = json.dumps({"queries": [query]} if batch else query)
    answer = client.post(
        "/v1/retrieve/batch" if batch else "/v1/retrieve",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert answer.status_code < 500, (body, answer.text)
    _strict_json(answer.text)


def test_unexpected_errors_are_json_500s_and_counted(client, monkeypatch):
    service = client.app.state.service

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    # A known user is answered inline (through `retrieve`) once the
    # top-items table is built; before, through the batcher.
    assert service.top_items_done.wait(60)
    monkeypatch.setattr(service, "retrieve", explode)
    answer = client.post("/v1/retrieve", json={"user_id": 1})
    assert answer.status_code == 500
    detail = answer.json()["detail"]
    assert detail[0]["type"] == "internal_error" and "boom" not in answer.text
    text = client.get("/metrics").text
    assert 'recsys_requests_total{route="/v1/retrieve",status="500"} 1.0' in (
        text
    )


# -- /admin: closed by default, reloads under the root ---------------------


def test_admin_without_a_token_is_403(client):
    for body in (None, {"path": "/etc"}, {"path": "/no/such/dir"}):
        answer = client.post("/admin/reload", json=body)
        assert answer.status_code == 403
        assert "RECSYS_API_TOKEN" in answer.json()["detail"][0]["msg"]
        assert "/etc" not in answer.text and "no/such" not in answer.text


def test_reload_outside_the_root_reveals_nothing(admin):
    client, pointer = admin
    link = pointer.parent / "escape"
    link.symlink_to("/etc")
    outside = [
        "/etc",
        "/etc/passwd",
        "/no/such/dir",
        "/dev/zero",
        "../../../../../../etc",
        str(link),
        "a\0b",
    ]
    bodies = set()
    for path in outside:
        answer = client.post(
            "/admin/reload", json={"path": path}, headers=TOKEN
        )
        assert answer.status_code == 403, (path, answer.text)
        bodies.add(answer.text)
    assert len(bodies) == 1
    assert "etc" not in bodies.pop()


def test_pointer_files_are_read_bounded(admin, tmp_path):
    client, _ = admin
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (1 << 20))
    for path in (fifo, big):
        started = time.perf_counter()
        answer = client.post(
            "/admin/reload", json={"path": str(path)}, headers=TOKEN
        )
        assert answer.status_code == 422, answer.text
        assert time.perf_counter() - started < 5
    assert (
        "not a regular file"
        in client.post(
            "/admin/reload", json={"path": str(fifo)}, headers=TOKEN
        ).text
    )


def test_plain_reload_reads_the_start_path_again(
    admin, trained_bundle, second_bundle
):
    client, pointer = admin
    first, _ = trained_bundle
    answer = client.post(
        "/admin/reload", json={"path": second_bundle.path}, headers=TOKEN
    )
    assert answer.status_code == 200, answer.text
    # A plain reload goes back to the pointer's bundle, not the last path.
    answer = client.post("/admin/reload", headers=TOKEN)
    assert answer.json()["bundle"] == first.version
    pointer.write_text(second_bundle.path)
    try:
        answer = client.post("/admin/reload", headers=TOKEN)
        assert answer.json()["bundle"] == second_bundle.version
    finally:
        pointer.write_text(first.path)
        client.post("/admin/reload", headers=TOKEN)


# -- settings ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        ("RECSYS_MAX_BODY_BYTES", "-1"),
        ("RECSYS_MAX_K", "0"),
        ("RECSYS_MAX_BATCH", "-5"),
        ("RECSYS_WATCH_INTERVAL", "0"),
        ("RECSYS_HEADER_TIMEOUT", "0"),
        ("RECSYS_BODY_TIMEOUT", "inf"),
        ("RECSYS_MAX_HEADER_BYTES", "10"),
    ],
)
def test_serve_refuses_bad_settings_in_one_line(
    name, value, monkeypatch, capsys, tmp_path
):
    monkeypatch.setenv(name, value)
    assert main(["serve", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"recsys serve: error: {name}: ")
    assert f"Received: {name}={value}" in err
    assert len(err.strip().splitlines()) == 1


def test_auth_all_needs_a_token(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("RECSYS_AUTH_ALL", "true")
    assert main(["serve", str(tmp_path)]) == 1
    assert "RECSYS_API_TOKEN" in capsys.readouterr().err


# -- bounded reads on a real uvicorn ---------------------------------------


@pytest.fixture(scope="module")
def server(trained_bundle, tmp_path_factory):
    bundle, _ = trained_bundle
    log = tmp_path_factory.mktemp("logs") / "server.log"
    env = {"RECSYS_HEADER_TIMEOUT": "2", "RECSYS_BODY_TIMEOUT": "2"}
    with running_server(bundle.path, log_path=log, env=env) as url:
        yield url


def _connect(url):
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _closed(sock):
    """Reads until the server closes; returns what it sent."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _healthz_seconds(url):
    started = time.perf_counter()
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    return time.perf_counter() - started


def test_an_endless_header_is_cut_off_and_health_stays_fast(server):
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ")
    slowest = 0.0
    try:
        for _ in range(200):  # up to 12.8 MB, in 64 KiB writes
            sock.sendall(b"a" * 65536)
            slowest = max(slowest, _healthz_seconds(server))
    except (BrokenPipeError, ConnectionResetError):
        pass
    else:
        pytest.fail("the server read an endless header line")
    finally:
        sock.close()
    assert slowest < 1.0
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 40000)
    reply = _closed(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert _strict_json(reply.partition(b"\r\n\r\n")[2])["detail"]
    # The same head as a kept-alive connection's second request: it was
    # closed without an answer.
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = sock.recv(65536)  # answered: the next head comes by itself
    sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 40000)
    reply += _closed(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply[reply.index(b"HTTP/1.1 ", 1) :].startswith(b"HTTP/1.1 431 ")


def test_half_open_requests_are_closed_after_the_timeout(server):
    # Connected and sent nothing; a header cut short; a body cut short.
    # The three wait together: each must be closed after the 2 s timeout.
    partial = [
        b"",
        b"POST /v1/retrieve HTTP/1.1\r\nHost: x\r\n",
        b"POST /v1/retrieve HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"user_id": 1',
        # A kept-alive connection's second head cut short: it was closed
        # without an answer.
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    ]
    started = time.perf_counter()

    def half_open(request_bytes):
        with _connect(server) as sock:
            sock.sendall(request_bytes)
            reply = _closed(sock)
        return reply, time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(len(partial)) as pool:
        pending = [pool.submit(half_open, each) for each in partial]
        time.sleep(0.2)  # the three are open: the server still answers
        assert _healthz_seconds(server) < 1.0
        answers = [each.result() for each in pending]
    for request_bytes, (reply, waited) in zip(partial, answers, strict=True):
        assert 1.5 < waited < 6, (request_bytes, waited)
        if request_bytes.startswith(b"GET"):  # answered, then refused
            assert reply.startswith(b"HTTP/1.1 200 "), reply
            reply = reply[reply.index(b"HTTP/1.1 ", 1) :]
        assert reply.startswith(b"HTTP/1.1 408"), (request_bytes, reply)


def test_a_heavy_batch_leaves_the_event_loop_free(server):
    queries = [
        {"features": {"history": [str(i), "1"]}, "k": 1000}
        for i in range(1, 257)
    ]
    done = []

    def heavy():
        started = time.perf_counter()
        answer = httpx.post(
            f"{server}/v1/retrieve/batch",
            json={"queries": queries},
            timeout=60,
        )
        done.append((answer.status_code, time.perf_counter() - started))

    worker = threading.Thread(target=heavy)
    worker.start()
    slowest = 0.0
    while worker.is_alive():
        slowest = max(slowest, _healthz_seconds(server))
        time.sleep(0.05)
    worker.join()
    [(status, heavy_seconds)] = done
    assert status == 200
    # A blocked loop would hold /healthz for the whole batch; on a loaded
    # machine everything is slower, the batch too.
    assert slowest < max(0.5, heavy_seconds / 3), (slowest, heavy_seconds)
