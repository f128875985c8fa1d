"""`recsys serve --workers N`: forked workers sharing one loaded bundle."""

import gc
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import recsys.serving.workers as supervisor
from recsys.serving.app import create_app
from recsys.serving.fast_tower import NumpyTower
from recsys.serving.reranker import Reranker
from recsys.serving.server import RELOAD_REFUSED
from recsys.serving.service import RetrievalService
from recsys.serving.settings import Settings
from recsys.serving.shared_tower import FAILED
from recsys.serving.shared_tower import PENDING
from recsys.serving.shared_tower import UNSUPPORTED
from recsys.serving.shared_tower import SharedTower
from recsys.storage.files import BundleError
from tests.serving.server import running_server

TOKEN = "s3cret"

# `run_workers` supervising workers that record their pid, then sleep
# (`serve`; `late`: told to stop, they say they are ready, then exit),
# exit as unable to start (`fail`) or crash at once (`crash`).
# The module is loaded from its file: it needs only the standard library,
# and importing the serving package would take seconds.
SUPERVISED = """
import importlib.util, os, signal, sys, time
mode, out, path = sys.argv[1:]
spec = importlib.util.spec_from_file_location("workers", path)
workers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(workers)

def ready_and_exit(sig, frame):
    workers.notify_ready()
    os._exit(0)

def run(number):
    if mode == "late":  # ready as the stop comes, as a worker starting then
        signal.signal(signal.SIGTERM, ready_and_exit)
    open(os.path.join(out, f"{number}-{os.getpid()}"), "w").close()
    if mode == "fail":
        return workers.STARTUP_FAILURE
    if mode == "crash":
        os._exit(7)
    time.sleep(600)

def load():
    # A generation per call (SIGHUP reloads); the third fails to load.
    generation = len(os.listdir(out)) // 2
    if generation == 2:
        raise ValueError("broken bundle")

    def run(number):
        name = f"{number}-{os.getpid()}-{generation}"
        open(os.path.join(out, name), "w").close()
        if generation == 0 or number == 0:
            workers.notify_ready()  # generation 1's worker 1: later
        else:
            time.sleep(1.5)
            workers.notify_ready()
        time.sleep(600)

    return run

if mode == "reload":
    sys.exit(workers.run_workers(2, load=load))
if mode == "watch":  # a change each time the file `<out>.reload` appears
    def changed():
        if os.path.exists(out + ".reload"):
            os.remove(out + ".reload")
            return True
        return False

    sys.exit(workers.run_workers(2, load=load, changed=changed, interval=0.1))
sys.exit(workers.run_workers(2, run))
"""


def _children(pid):
    """Pids of the live (not zombie) child processes of `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def _server_pid(url):
    """The pid of the `recsys serve` process listening at `url`.

    Its workers and helpers are forks with the same command line (and
    pids wrap around, so the lowest is not always the server): the server
    is the one this test process started.
    """
    port = url.rsplit(":", 1)[1]
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"serve" in args and port.encode() in args:
            found[int(entry)] = parent
    roots = [pid for pid, parent in found.items() if parent == os.getpid()]
    if len(roots) != 1:
        raise AssertionError(f"no one server process listens on {port}")
    return roots[0]


def _accepted_by(pids, port, client_port):
    """Whether one of `pids` holds the server side of the connection from
    `client_port` to `port` (an accepted socket: an open file)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if (
                    int(local.rsplit(":", 1)[1], 16) == port
                    and int(remote.rsplit(":", 1)[1], 16) == client_port
                ):
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return True
        except OSError:
            continue
    return False


def _wait_for(condition, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def _answers(url, user, count=6):
    """`count` retrievals, each on a new connection; all must be 200."""
    for _ in range(count):
        answer = httpx.post(
            f"{url}/v1/retrieve", json={"user_id": user, "k": 5}, timeout=30
        )
        assert answer.status_code == 200, answer.text
    return answer.json()


def _assert_a_stop_refuses_new_connections(url, parent):
    """SIGTERM to `parent` while a request's body is awaited: new
    connections are refused at once. They were accepted on the parent's
    copy of the socket, then reset when that worker ended (at the 10 s
    body timeout)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as held:
        held.sendall(
            b"POST /v1/retrieve HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        time.sleep(0.5)  # a worker holds it
        os.kill(parent, signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
            except ConnectionRefusedError:
                return True
            return False

        _wait_for(refused, timeout=5)


def _supervise(mode, tmp_path):
    script = tmp_path / "supervised.py"
    script.write_text(SUPERVISED)
    out = tmp_path / "started"
    out.mkdir()
    process = subprocess.Popen(
        [sys.executable, str(script), mode, str(out), supervisor.__file__],
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, out


def _started(out):
    """`{pid: worker number}` of the workers started so far."""
    return {
        int(name.split("-")[1]): int(name.split("-")[0])
        for name in os.listdir(out)
    }


def _generations(out):
    """`{generation: set of pids}` of the workers started so far."""
    found = {}
    for name in os.listdir(out):
        _, pid, generation = name.split("-")
        found.setdefault(int(generation), set()).add(int(pid))
    return found


def _alive(pid):
    return os.path.exists(f"/proc/{pid}") and _state(pid) != "Z"


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_supervisor_restarts_a_killed_worker_and_stops_on_sigterm(tmp_path):
    process, out = _supervise("serve", tmp_path)
    try:
        first = _wait_for(lambda: len(_started(out)) == 2 and _started(out))
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        started = _wait_for(lambda: len(_started(out)) == 3 and _started(out))
        (new,) = set(started) - set(first)
        assert started[new] == first[killed]  # the same worker number
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "restarted as pid" in stderr
    for pid in started:
        assert not os.path.exists(f"/proc/{pid}")


def test_sighup_starts_new_workers_then_stops_the_old_ones(tmp_path):
    process, out = _supervise("reload", tmp_path)
    try:
        first = _wait_for(lambda: len(_started(out)) == 2 and _generations(out))
        process.send_signal(signal.SIGHUP)
        second = _wait_for(
            lambda: len(_generations(out).get(1, ())) == 2 and _generations(out)
        )
        # The old workers answer until every new one is ready...
        time.sleep(0.5)
        assert all(_alive(pid) for pid in first[0])
        # ...then they are stopped (RETIRE_SIGNAL), not restarted.
        _wait_for(lambda: not any(_alive(pid) for pid in first[0]), 10)
        assert all(_alive(pid) for pid in second[1])
        # A generation that fails to load leaves the workers serving.
        process.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert all(_alive(pid) for pid in second[1])
        assert set(_generations(out)) == {0, 1}
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "Reload failed" in stderr and "broken bundle" in stderr
    assert "restarted as pid" not in stderr  # old workers are not replaced
    assert not any(_alive(pid) for pid in second[1])


def test_a_change_the_watch_sees_reloads_every_worker(tmp_path):
    process, out = _supervise("watch", tmp_path)
    try:
        first = _wait_for(lambda: len(_started(out)) == 2 and _generations(out))
        time.sleep(0.3)  # watched a few times: nothing changed
        assert set(_generations(out)) == {0}
        (tmp_path / "started.reload").touch()
        second = _wait_for(
            lambda: len(_generations(out).get(1, ())) == 2 and _generations(out)
        )
        _wait_for(lambda: not any(_alive(pid) for pid in first[0]), 10)
        assert all(_alive(pid) for pid in second[1])
        assert not (tmp_path / "started.reload").exists()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert not any(_alive(pid) for pid in second[1])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_supervisor_stopped_while_workers_start_exits_0(tmp_path, stop):
    # A worker that finished starting as the stop came said so (its ready
    # signal) to the stopping supervisor: left pending, that signal killed
    # the supervisor once unblocked (SIGRTMIN, exit status 162).
    process, out = _supervise("late", tmp_path)
    try:
        started = _wait_for(lambda: len(_started(out)) == 2 and _started(out))
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert not any(_alive(pid) for pid in started)


@pytest.mark.parametrize("mode", ["fail", "crash"])
def test_supervisor_exits_1_when_workers_cannot_run(tmp_path, mode):
    # A worker that cannot start stops the server at once; workers that
    # keep dying stop it after MAX_RESTARTS restarts.
    process, out = _supervise(mode, tmp_path)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    assert "stopping" in stderr
    if mode == "crash":
        assert len(_started(out)) > 2


# The child only writes numpy arrays and exits: JAX, loaded in this test
# process by other tests, warns about any fork.
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_shared_tower_round_trip_and_fork():
    rng = np.random.default_rng(0)
    fast = NumpyTower(
        [
            ("history", rng.normal(size=(50, 8)).astype(np.float32), "mean"),
            ("age", None, "mean"),
        ],
        "concat",
        [
            (rng.normal(size=(9, 6)).astype(np.float32), None, True),
            (
                rng.normal(size=(6, 4)).astype(np.float32),
                rng.normal(size=4).astype(np.float32),
                False,
            ),
        ],
        True,
    )
    inputs = {
        "history": rng.integers(0, 50, (5, 3)),
        "age": rng.normal(size=5).astype(np.float32),
    }
    shared = SharedTower(capacity=50 * 8 * 4 + 9 * 6 * 4 + 6 * 4 * 4 + 4096)
    assert shared.state == PENDING
    pid = os.fork()
    if pid == 0:  # another process writes; this one reads
        shared.write(fast)
        os._exit(0)
    os.waitpid(pid, 0)
    read = shared.wait(timeout=10)
    np.testing.assert_array_equal(read(inputs), fast(inputs))
    assert not read.parts[0][1].flags.writeable


def test_shared_tower_refuses_what_does_not_fit():
    table = np.zeros((100, 8), np.float32)
    shared = SharedTower(capacity=1024)
    with pytest.raises(ValueError, match="larger than its weights"):
        shared.write(NumpyTower([("history", table, "mean")], "sum", [], False))
    shared._set_state(UNSUPPORTED)
    assert shared.wait(timeout=1) is None


def _die(how):
    """Ends this (forked) process as a native crash or a kill would."""
    if how == "abort":
        import faulthandler
        import resource

        faulthandler.disable()  # pytest's: no traceback from the child
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.abort()
    if how == "exit":
        os._exit(134)
    os.kill(os.getpid(), signal.SIGKILL)


# The helper is forked from this test process: JAX, loaded by other
# tests, warns about any fork (the server forks it before any thread).
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
@pytest.mark.parametrize(
    "how, said",
    [
        ("abort", "was killed by SIGABRT"),
        ("exit", "exited with status 134"),
        ("kill", "was killed by SIGKILL"),
    ],
)
def test_a_helper_that_dies_refuses_the_tower(how, said):
    # Workers forked beside it waited for its tower for good: every query
    # with `features` hung (and SIGTERM waited for those).
    shared = SharedTower(capacity=1024)
    shared.fill_in_child(lambda: _die(how), "query tower of B")
    with pytest.raises(BundleError, match=f"query tower of B {said}"):
        shared.join(timeout=60)
    assert shared.state == PENDING and shared.pid is None  # reaped


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_join_says_why_a_tower_does_not_load_and_gives_up_in_time():
    def refused():
        raise BundleError("query_tower.keras: Keras refused\nit (safe_mode)")

    shared = SharedTower(capacity=1024)
    shared.fill_in_child(refused)
    with pytest.raises(BundleError) as raised:
        shared.join(timeout=60)
    said = "query_tower.keras: Keras refused it (safe_mode)"  # one line
    assert str(raised.value) == said
    assert shared.state == FAILED and shared.wait(timeout=1) is None

    shared = SharedTower(capacity=1024)
    shared.fill_in_child(lambda: None)  # numpy cannot evaluate it: Keras
    shared.join(timeout=60)
    assert shared.state == UNSUPPORTED

    for stop, error, match in [
        (None, BundleError, "did not finish within 0 s"),
        (lambda: True, InterruptedError, "Stopped while loading"),
    ]:
        shared = SharedTower(capacity=1024)
        pid = shared.fill_in_child(lambda: time.sleep(60))
        started = time.monotonic()
        with pytest.raises(error, match=match):
            shared.join(timeout=0.3, stop=stop)
        assert time.monotonic() - started < 10
        assert not os.path.exists(f"/proc/{pid}")  # killed and reaped


class _Guard:
    """Garbage that records which process collects it."""

    def __init__(self, path):
        self.path = path
        self.cycle = self

    def __del__(self):
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()} ")


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_the_helper_collects_none_of_what_it_inherited(tmp_path):
    # A refused reload left the supervisor's garbage with a ScaNN
    # searcher in it; the next reload's helper collected it, and the
    # searcher's destructor waited for threads the fork did not copy: the
    # helper hung for good.
    path = tmp_path / "collected"

    def convert():
        gc.collect()  # as loading Keras would, at some point

    gc.disable()
    try:
        _Guard(path)  # garbage now, collected by the next collection
        shared = SharedTower(capacity=1024)
        shared.fill_in_child(convert)
    finally:
        gc.enable()
    shared.join(timeout=60)
    gc.collect()
    assert path.read_text().split() == [str(os.getpid())]


def test_with_workers_reload_reloads_them_all_and_refuses_a_path(
    trained_bundle,
):
    bundle, _ = trained_bundle
    app = create_app(bundle.path, settings=Settings(api_token=TOKEN))
    app.state.reload_refused = RELOAD_REFUSED.format(workers=2, pid=1)
    signalled = []
    app.state.reload_all = lambda: signalled.append(True)
    token = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app) as client:
        answer = client.post("/admin/reload", headers=token)
        assert answer.status_code == 202 and signalled == [True]
        assert answer.json() == {
            "status": "reloading",
            "bundle": bundle.version,
            "path": bundle.path,
        }
        answer = client.post(
            "/admin/reload", headers=token, json={"path": bundle.path}
        )
        assert answer.status_code == 409 and signalled == [True]
        detail = answer.json()["detail"]
        assert "--workers 2" in detail[0]["msg"]
        assert client.post("/admin/reload").status_code == 401  # token first
        assert signalled == [True]


@pytest.mark.slow
def test_two_workers_share_the_port_restart_and_refuse_reload(
    trained_bundle, tmp_path
):
    bundle, _ = trained_bundle
    user = int(bundle.user_ids[0])
    with running_server(
        bundle.path,
        "--workers",
        "2",
        log_path=tmp_path / "server.log",
        env={"RECSYS_API_TOKEN": TOKEN},
    ) as url:
        parent = _server_pid(url)
        workers = _wait_for(
            lambda: len(_children(parent)) == 2 and _children(parent)
        )
        expected = _answers(url, user)
        # A history query: the tower comes from the shared numpy tower,
        # and no worker maps JAX's libraries.
        history = {"features": {"history": [int(bundle.item_ids[0])]}}
        answer = httpx.post(f"{url}/v1/retrieve", json=history, timeout=60)
        assert answer.status_code == 200, answer.text
        assert httpx.get(f"{url}/readyz").json()["query_tower"] == "numpy"
        for pid in workers:
            with open(f"/proc/{pid}/maps") as f:
                assert "jaxlib" not in f.read()
        # Each worker answers alone while the other is stopped: both
        # accept on the one socket.
        for stopped, running in (workers, workers[::-1]):
            os.kill(stopped, signal.SIGSTOP)
            try:
                assert _answers(url, user) == expected
            finally:
                os.kill(stopped, signal.SIGCONT)
            assert running in _children(parent)

        # No swap in one worker reaches the other: a path is refused.
        refused = httpx.post(
            f"{url}/admin/reload",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"path": bundle.path},
            timeout=30,
        )
        assert refused.status_code == 409
        assert "--workers 2" in refused.json()["detail"][0]["msg"]

        # A killed worker is replaced; the other answers meanwhile.
        os.kill(workers[0], signal.SIGKILL)
        assert _answers(url, user) == expected
        replaced = _wait_for(
            lambda: (
                (found := _children(parent)) != workers
                and len(found) == 2
                and found
            )
        )
        assert workers[1] in replaced and workers[0] not in replaced
        os.kill(workers[1], signal.SIGSTOP)
        try:
            assert _answers(url, user) == expected  # the new worker
        finally:
            os.kill(workers[1], signal.SIGCONT)
    # SIGTERM to the parent (by `running_server`) stopped every worker.
    assert _wait_for(
        lambda: not any(os.path.exists(f"/proc/{pid}") for pid in replaced), 30
    )
    assert "restarted as pid" in (tmp_path / "server.log").read_text()


@pytest.mark.slow
def test_workers_rerank_with_one_shared_numpy_ranker(
    trained_bundle, ranker_bundle, tmp_path
):
    bundle, _ = trained_bundle
    user = str(bundle.user_ids[0])
    expected = Reranker(ranker_bundle).retrieve(
        RetrievalService(bundle), [{"user_id": user, "k": 5}]
    )[0]
    with running_server(
        bundle.path,
        "--workers",
        "2",
        "--ranker",
        ranker_bundle.path,
        log_path=tmp_path / "server.log",
    ) as url:
        parent = _server_pid(url)
        workers = _wait_for(
            lambda: len(_children(parent)) == 2 and _children(parent)
        )
        for _ in range(6):  # new connections: both workers answer
            answer = httpx.post(
                f"{url}/v1/retrieve",
                json={"user_id": user, "k": 5, "rerank": True},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
            items = answer.json()["items"]
            assert [i["id"] for i in items] == [str(i) for i in expected[0]]
            np.testing.assert_allclose(
                [i["score"] for i in items], expected[1], rtol=1e-5, atol=1e-6
            )
        assert httpx.get(f"{url}/readyz").json()["ranker_kind"] == "numpy"
        # Neither the supervisor nor a worker loaded Keras for the ranker.
        for pid in [parent, *workers]:
            with open(f"/proc/{pid}/maps") as f:
                assert "jaxlib" not in f.read()


def test_serve_refuses_a_worker_count_below_one(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "recsys.cli", "serve", str(tmp_path)]
        + ["--workers", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "--workers must be a positive integer" in done.stderr


# Each trigger reaches the one supervisor reload: SIGHUP runs every time;
# the others (25 s each on 2 cores) with `pytest -m slow`; without a
# server, `test_with_workers_reload_reloads_them_all_and_refuses_a_path`
# and `test_a_change_the_watch_sees_reloads_every_worker` check that they
# start it.
@pytest.mark.parametrize(
    "trigger",
    [
        "SIGHUP",
        pytest.param("--watch", marks=pytest.mark.slow),
        pytest.param("/admin/reload", marks=pytest.mark.slow),
    ],
)
def test_a_reload_replaces_every_worker_while_they_answer(
    trained_bundle, second_bundle, tmp_path, trigger
):
    first, _ = trained_bundle
    pointer = tmp_path / "current"
    pointer.write_text(first.path)
    watch = ["--watch"] if trigger == "--watch" else []
    with running_server(
        str(pointer),
        "--workers",
        "2",
        *watch,
        log_path=tmp_path / "server.log",
        env={"RECSYS_WATCH_INTERVAL": "0.2", "RECSYS_API_TOKEN": TOKEN},
    ) as url:
        parent = _server_pid(url)
        old = _wait_for(
            lambda: len(_children(parent)) == 2 and _children(parent)
        )
        answers, dropped, stop = [], [], threading.Event()

        def hammer():
            with httpx.Client(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    try:
                        sent = time.monotonic()
                        r = client.post("/v1/retrieve", json={"user_id": 7})
                        answers.append(
                            (sent, r.status_code, r.json()["bundle"])
                        )
                    except httpx.TransportError as error:
                        dropped.append(repr(error))

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        pointer.write_text(second_bundle.path)
        if trigger == "SIGHUP":
            os.kill(parent, signal.SIGHUP)
        elif trigger == "/admin/reload":
            started = httpx.post(
                f"{url}/admin/reload",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            )
            assert started.status_code == 202, started.text
            assert started.json()["bundle"] == first.version
        try:
            new = _wait_for(
                lambda: (
                    (found := _children(parent))
                    and not set(found) & set(old)
                    and len(found) == 2
                    and found
                )
            )
            gone = time.monotonic()  # no old worker is left
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert {status for _, status, _ in answers} == {200}
        versions = [version for _, _, version in answers]
        assert {first.version, second_bundle.version} == set(versions)
        # Both generations answer while the new workers start (the old
        # ones stop once every new one listens); after, only the new.
        after = [version for sent, _, version in answers if sent > gone]
        assert after and set(after) == {second_bundle.version}
        # The old workers closed their connections between requests.
        assert dropped == []
        assert not any(_alive(pid) for pid in old)
        assert _answers(url, 7)["bundle"] == second_bundle.version
        assert set(_children(parent)) == set(new)
        # /metrics counts every worker's answers, the old generation's
        # too: each scrape gave the count of the worker that took it.
        sent = len(answers) + 6

        def counted():
            text = httpx.get(f"{url}/metrics", timeout=30).text
            line = 'recsys_requests_total{route="/v1/retrieve",status="200"}'
            return next(
                float(row.split()[-1])
                for row in text.splitlines()
                if row.startswith(line)
            )

        _wait_for(lambda: counted() == sent, timeout=10)
        assert [counted() for _ in range(4)] == [sent] * 4
        _assert_a_stop_refuses_new_connections(url, parent)
    log = (tmp_path / "server.log").read_text()
    assert "restarted as pid" not in log


def test_a_reload_hands_open_connections_over_without_dropping_one(
    trained_bundle, tmp_path
):
    # The old workers got SIGTERM, and uvicorn closed their idle
    # keep-alive connections and the accepted ones not yet read: the
    # client's next request met EPIPE or a reset.
    bundle, _ = trained_bundle
    request = b"GET /readyz HTTP/1.1\r\nHost: test\r\n\r\n"  # keep-alive (1.1)
    with running_server(
        bundle.path,
        "--workers",
        "2",
        log_path=tmp_path / "server.log",
        env={"RECSYS_HEADER_TIMEOUT": "60"},
    ) as url:
        parent = _server_pid(url)
        old = _wait_for(
            lambda: len(_children(parent)) == 2 and _children(parent)
        )
        port = int(url.rsplit(":", 1)[1])
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        kept.request("GET", "/readyz")
        assert kept.getresponse().read()
        silent = socket.create_connection(("127.0.0.1", port), timeout=30)
        # Accepted by an old worker, no request yet (on busy cores it can
        # wait in the listen queue, and a new worker would answer it).
        _wait_for(lambda: _accepted_by(old, port, silent.getsockname()[1]), 10)
        os.kill(parent, signal.SIGHUP)
        deadline = time.time() + 30
        while True:  # until the old worker retires (`Connection: close`)
            assert time.time() < deadline, "no old worker retired"
            kept.request("GET", "/readyz")
            answer = kept.getresponse()
            assert answer.status == 200 and answer.read()
            if answer.getheader("connection") == "close":
                break
            time.sleep(0.2)
        kept.close()
        with silent:
            while True:  # its worker may take its turn to retire a moment later
                assert time.time() < deadline, "the silent one's worker kept on"
                silent.sendall(request)
                head = silent.recv(65536).split(b"\r\n\r\n")[0].lower()
                assert head.startswith(b"http/1.1 200"), head
                if b"connection: close" in head:
                    break
                time.sleep(0.2)
        # With no connection left, the old workers exit at once.
        _wait_for(lambda: not any(_alive(pid) for pid in old), 5)
        assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200


# `recsys serve` whose conversion of the query tower to numpy (in the
# helper process, with workers) first reads the file $TOWER_MODE: "die"
# aborts the process (as XLA did building a hostile tower), "slow" sleeps
# 5 s (a large tower on busy cores).
TOWER_HOOK = """
import os, resource, sys, time
from recsys.serving.fast_tower import NumpyTower

convert = NumpyTower.from_keras.__func__

def from_keras(cls, tower):
    with open(os.environ["TOWER_MODE"]) as f:
        mode = f.read()
    if mode == "die":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.abort()
    if mode == "slow":
        time.sleep(5)
    return convert(cls, tower)

NumpyTower.from_keras = classmethod(from_keras)
from recsys.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def hooked_workers(trained_bundle, tmp_path):
    """Two workers of `TOWER_HOOK`'s server on a pointer file: its URL,
    pid, pointer, mode file, workers and log."""
    bundle, _ = trained_bundle
    pointer, mode = tmp_path / "current", tmp_path / "mode"
    pointer.write_text(bundle.path)
    mode.write_text("")
    log = tmp_path / "server.log"
    with running_server(
        str(pointer),
        "--workers",
        "2",
        log_path=log,
        env={"TOWER_MODE": str(mode)},
        code=TOWER_HOOK,
    ) as url:
        parent = _server_pid(url)
        workers = _wait_for(
            lambda: len(_children(parent)) == 2 and _children(parent)
        )
        yield url, parent, pointer, mode, workers, log


def _history_query(bundle):
    return {"features": {"history": [int(bundle.item_ids[0])]}, "k": 5}


def test_a_reload_whose_query_tower_fails_or_kills_its_helper_is_refused(
    hooked_workers, trained_bundle, tower_of_other_inputs
):
    url, parent, pointer, mode, workers, log = hooked_workers
    query = _history_query(trained_bundle[0])
    expected = httpx.post(f"{url}/v1/retrieve", json=query, timeout=30)
    assert expected.status_code == 200, expected.text
    # A tower that does not load (as one Keras refuses): the new workers
    # answered every query with `features` 503.
    pointer.write_text(tower_of_other_inputs)
    os.kill(parent, signal.SIGHUP)
    _wait_for(lambda: log.read_text().count("Reload failed") == 1)
    assert "query_tower.keras reads inputs" in log.read_text()
    # Its helper killed by SIGABRT: every query with `features` hung.
    pointer.write_text(trained_bundle[0].path)
    mode.write_text("die")
    os.kill(parent, signal.SIGHUP)
    _wait_for(lambda: log.read_text().count("Reload failed") == 2)
    assert "was killed by SIGABRT" in log.read_text()
    # The old workers answer on, each (new connections).
    for _ in range(6):
        answer = httpx.post(f"{url}/v1/retrieve", json=query, timeout=20)
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected.json()
    assert _children(parent) == workers
    assert "Reloaded" not in log.read_text()


def test_queries_with_features_never_wait_for_a_reloads_tower(
    hooked_workers, trained_bundle, second_bundle
):
    # The new workers answered before the helper had converted the tower:
    # queries with `features` waited for it (4-5 s on 2 busy cores).
    url, parent, pointer, mode, workers, _ = hooked_workers
    query = _history_query(trained_bundle[0])
    mode.write_text("slow")
    pointer.write_text(second_bundle.path)
    answers, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            sent = time.monotonic()
            answer = httpx.post(f"{url}/v1/retrieve", json=query, timeout=30)
            answers.append(
                (time.monotonic() - sent, answer.status_code, answer.text)
            )

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        os.kill(parent, signal.SIGHUP)
        _wait_for(
            lambda: (
                (found := _children(parent))
                and not set(found) & set(workers)
                and len(found) == 2
            )
        )
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert all(status == 200 for _, status, _ in answers), answers[-1]
    assert second_bundle.version in answers[-1][2]
    worst = max(seconds for seconds, _, _ in answers)
    assert worst < 2.0, f"a query waited {worst:.1f} s"
