"""The service over real HTTP: `recsys serve` (uvicorn) on loopback."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from recsys.serving.server import _bind
from recsys.serving.server import serve
from tests.serving.server import free_port
from tests.serving.server import running_server
from tests.serving.server import server_process
from tests.serving.test_workers import _server_pid


@pytest.fixture
def served(trained_bundle, tmp_path):
    """`recsys serve --watch` on a pointer file naming the first bundle."""
    bundle, _ = trained_bundle
    pointer = tmp_path / "current"
    pointer.write_text(bundle.path)
    with running_server(
        str(pointer),
        "--watch",
        log_path=tmp_path / "server.log",
        env={"RECSYS_WATCH_INTERVAL": "0.2"},
    ) as url:
        yield url, pointer


def test_server_answers_and_hot_reloads_under_load(
    served, second_bundle, trained_bundle
):
    url, pointer = served
    first, _ = trained_bundle
    answer = httpx.post(f"{url}/v1/retrieve", json={"user_id": 42, "k": 5})
    assert answer.status_code == 200
    assert answer.json()["bundle"] == first.version
    assert len(answer.json()["items"]) == 5
    # The query tower loaded before the port was bound: a query with
    # features is answered at once.
    answer = httpx.post(
        f"{url}/v1/retrieve",
        json={"features": {"userId": 42}, "k": 5},
        timeout=120,
    )
    assert answer.status_code == 200 and len(answer.json()["items"]) == 5

    failures, versions, stop = [], set(), threading.Event()

    def hammer():
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post(
                        "/v1/retrieve", json={"user_id": 7, "k": 10}
                    )
                    if r.status_code != 200 or len(r.json()["items"]) != 10:
                        failures.append(r.status_code)
                    else:
                        versions.add(r.json()["bundle"])
                except httpx.HTTPError as error:
                    failures.append(repr(error))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    pointer.write_text(second_bundle.path)  # --watch picks this up
    deadline = time.time() + 60
    while second_bundle.version not in versions and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert {first.version, second_bundle.version} <= versions
    ready = httpx.get(f"{url}/readyz").json()
    assert ready["bundle"] == second_bundle.version


def _bundle_of(url, version, timeout=60):
    """Waits until `/readyz` names bundle `version`."""
    deadline = time.time() + timeout
    while httpx.get(f"{url}/readyz").json()["bundle"] != version:
        assert time.time() < deadline, f"{version} was not served"
        time.sleep(0.2)


def test_a_sighup_and_the_watch_load_a_new_bundle_once(
    served, second_bundle, tmp_path
):
    # The SIGHUP loaded it, then the watch's next poll loaded it again.
    url, pointer = served
    pointer.write_text(second_bundle.path)
    os.kill(_server_pid(url), signal.SIGHUP)
    _bundle_of(url, second_bundle.version)
    time.sleep(1.5)  # the watch polls every 0.2 s
    log = (tmp_path / "server.log").read_text()
    assert log.count(f"bundle {second_bundle.version} (was") == 1, log


def test_sighup_reloads_a_one_worker_server(
    trained_bundle, second_bundle, tmp_path
):
    # SIGHUP's default action ended it (exit 129, nothing logged), where
    # the same signal reloads a server with --workers.
    first, _ = trained_bundle
    pointer = tmp_path / "current"
    pointer.write_text(first.path)
    log = tmp_path / "server.log"
    with running_server(str(pointer), log_path=log) as url:
        pid = _server_pid(url)
        pointer.write_text(second_bundle.path)
        os.kill(pid, signal.SIGHUP)
        _bundle_of(url, second_bundle.version)
        answer = httpx.post(f"{url}/v1/retrieve", json={"user_id": 7})
        assert answer.json()["bundle"] == second_bundle.version
        # A bundle that does not load is refused, logged; the old serves on.
        pointer.write_text(str(tmp_path))
        os.kill(pid, signal.SIGHUP)
        deadline = time.time() + 30
        while "refused" not in log.read_text():
            assert time.time() < deadline, log.read_text()
            time.sleep(0.2)
        assert httpx.get(f"{url}/readyz").json()["bundle"] == (
            second_bundle.version
        )
    said = log.read_text()
    assert (
        f"SIGHUP: reloaded bundle {second_bundle.version} (was "
        f"{first.version})" in said
    )
    assert (
        f"SIGHUP: Bundle {str(pointer)!r} refused, still serving "
        f"{second_bundle.version}: " in said
    )
    assert f"SIGHUP to pid {pid} reloads" in said


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_a_one_worker_server_with_status_0(
    trained_bundle, tmp_path, stop
):
    # uvicorn raised the signal again once it had shut down: Ctrl-C ended
    # in a KeyboardInterrupt traceback, SIGTERM in status 143 (with
    # --workers: 0, no traceback).
    bundle, _ = trained_bundle
    log = tmp_path / "server.log"
    with server_process(bundle.path, log_path=log) as (process, url):
        assert httpx.get(f"{url}/readyz").status_code == 200
        process.send_signal(stop)
        assert process.wait(timeout=60) == 0
    assert "Traceback" not in log.read_text()


# `recsys serve` whose query tower loads for a minute, once it has
# created the file $LOADING.
SLOW_TOWER = """
import os, pathlib, time
import recsys.serving.server as server

def slow_tower(service):
    pathlib.Path(os.environ["LOADING"]).touch()
    time.sleep(60)

server._load_tower = slow_tower
from recsys.cli import run
run()
"""


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_while_a_one_worker_server_loads_exits_0(
    trained_bundle, tmp_path, stop
):
    # Ctrl-C ended in a KeyboardInterrupt traceback from the loading,
    # SIGTERM in status 143 (with --workers: 0 once the load ends).
    bundle, _ = trained_bundle
    loading, log = tmp_path / "loading", tmp_path / "server.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", SLOW_TOWER, "serve", bundle.path]
            + ["--port", str(free_port())],
            env={**os.environ, "LOADING": str(loading)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.time() + 120
            while not loading.exists():
                assert process.poll() is None, log.read_text()
                assert time.time() < deadline, "the tower never loaded"
                time.sleep(0.1)
            process.send_signal(stop)
            assert process.wait(timeout=30) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_banner_names_the_ranker_by_its_version(
    trained_bundle, ranker_bundle, tmp_path, workers
):
    # With --workers it named the ranker's path, without its version.
    bundle, _ = trained_bundle
    # On stderr, beside the server's log: stdout keeps results only.
    log = tmp_path / "server.log"
    with running_server(
        bundle.path,
        "--ranker",
        ranker_bundle.path,
        "--workers",
        workers,
        log_path=log,
    ):
        said = log.read_text().splitlines()
    banner = next(line for line in said if line.startswith("serving bundle"))
    assert f"serving bundle {bundle.version}, reranked by " in banner
    assert f"reranked by {ranker_bundle.version} on " in banner


def test_serve_refuses_a_broken_bundle(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "recsys.cli", "serve", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "not a recsys bundle" in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_names_an_address_it_cannot_listen_on(trained_bundle, workers):
    # It printed the "serving" banner, then uvicorn's log lines (exit 3),
    # or with workers an "Address already in use" naming no address.
    bundle, _ = trained_bundle
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "recsys.cli", "serve", bundle.path]
            + ["--port", str(port), "--workers", workers],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert "serving" not in done.stdout
    assert done.stderr.strip().splitlines() == [
        f"recsys serve: error: cannot listen on 127.0.0.1:{port}: address "
        "already in use. Fix: pass another --port, or stop the server "
        "using it."
    ]


@pytest.mark.parametrize(
    "option, said",
    [
        # Bound on every interface, silently (an unset `--host "$HOST"`).
        ({"host": ""}, "--host is empty. Fix: pass 127.0.0.1"),
        ({"port": 65536}, "--port must be in 0..65535"),
        # Said after the bundle loaded and the banner said it served.
        ({"log_level": "bogus"}, "--log-level must be one of critical,"),
    ],
)
def test_serve_refuses_bad_options_before_loading(tmp_path, option, said):
    with pytest.raises(ValueError, match=re.escape(said)):
        serve(tmp_path / "no-bundle", **option)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_0_serves_on_a_free_port_the_banner_names(
    trained_bundle, tmp_path, workers
):
    bundle, _ = trained_bundle
    log = tmp_path / "log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "recsys.cli", "serve", bundle.path]
            + ["--port", "0", "--workers", workers],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.time() + 120
        while not (
            found := re.search(r"http://127.0.0.1:(\d+) ", log.read_text())
        ):
            assert process.poll() is None, log.read_text()
            assert time.time() < deadline, "no banner"
            time.sleep(0.1)
        port = int(found.group(1))
        assert port != 0
        while True:  # a worker may still be starting
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.ConnectError:
                assert time.time() < deadline, "nothing listens"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_bind_names_a_host_of_another_machine():
    # TEST-NET-1: no interface of this machine has it.
    with pytest.raises(ValueError, match=r"192\.0\.2\.1:8000: .* --host"):
        _bind("192.0.2.1", 8000)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_a_bundle_whose_query_tower_does_not_load(
    tower_of_other_inputs, workers
):
    # It started, and answered every query with `features` 503 (the tower
    # loaded in the background, or in the workers' helper, after the
    # start was accepted).
    done = subprocess.run(
        [sys.executable, "-m", "recsys.cli", "serve", tower_of_other_inputs]
        + ["--port", str(free_port()), "--workers", workers],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 1
    assert "serving" not in done.stdout
    lines = [
        line
        for line in done.stderr.strip().splitlines()
        if not line.startswith("Precomputed")  # the table's thread
    ]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("recsys serve: error: ")
    assert "query_tower.keras reads inputs" in lines[0]


def test_a_reload_frees_the_last_bundles_reference_cycles():
    # Frozen after a load, a dropped bundle's cycles (Keras layers) were
    # never collected: ~12 MB more at each reload, without end.
    import gc
    import weakref

    from recsys.serving.server import freeze_heap

    class Layer:
        pass

    layer = Layer()
    layer.parent = layer  # a cycle: reference counting never frees it
    dropped = weakref.ref(layer)
    try:
        freeze_heap()  # the first load
        del layer  # the reload drops it
        freeze_heap()  # the next load
        assert dropped() is None
    finally:
        gc.unfreeze()
