"""A ranker trained on another table than the retrieval bundle is refused
when the two are paired: `recsys recommend --rerank`, `recsys serve
--ranker` (one process or workers), the app, its reloads and the Python
API. (The rule itself: tests/test_two_stage_pairing.py.)"""

import os
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from recsys.cli import main
from recsys.serving import Settings
from recsys.serving import create_app
from recsys.serving.reranker import Reranker
from recsys.serving.service import RetrievalService
from recsys.two_stage import TwoStageRecommender
from tests.serving.server import free_port
from tests.serving.server import running_server

REFUSED = "was trained on another table than retrieval bundle"
FIX = "Fix: train the ranker on the same table's ids"


@pytest.fixture(scope="module")
def foreign_bundle(tmp_path_factory):
    """A two-tower bundle of another table: MovieLens users 1-40 with every
    user and movie id moved past the real ones (none shared with the
    `ranker_bundle`), one epoch."""
    from recsys import train
    from recsys.config import load_config
    from recsys.data.movielens import load_movielens

    frame = load_movielens()
    frame = frame[frame["userId"] <= 40].reset_index(drop=True)
    frame["userId"] += 1_000_000
    frame["movieId"] += 1_000_000
    config = load_config(
        "configs/movielens_two_tower.toml",
        ["train.epochs=1", "evaluate.baselines=[]"],
    )
    path = tmp_path_factory.mktemp("bundles") / "foreign"
    bundle, _ = train(config, str(path), frame=frame, progress=False)
    return bundle


def _assert_refused(message, retriever, ranker):
    assert "\n" not in message.strip()
    assert f"Ranker {ranker.path} {REFUSED} {retriever.path}: " in message
    assert f"0 of the bundle's {len(retriever.item_ids):,} items" in message
    assert f"0 of the bundle's {len(retriever.user_ids):,} users" in message
    assert FIX in message


def test_the_python_api_refuses_a_ranker_of_another_table(
    trained_bundle, ranker_bundle, foreign_bundle
):
    with pytest.raises(ValueError) as error:
        TwoStageRecommender(foreign_bundle, ranker_bundle)
    _assert_refused(str(error.value), foreign_bundle, ranker_bundle)
    # The ranker of the same table's ids (a slice of its users) ranks.
    bundle, _ = trained_bundle
    ids, _ = TwoStageRecommender(bundle, ranker_bundle).recommend([7], k=3)
    assert ids.shape == (1, 3)


def test_recommend_rerank_refuses_it_in_one_line(
    foreign_bundle, ranker_bundle, capsys
):
    user = str(foreign_bundle.user_ids[0])
    code = main(
        [
            "recommend",
            foreign_bundle.path,
            "--user",
            user,
            "-k",
            "3",
            "--rerank",
            ranker_bundle.path,
        ]
    )
    captured = capsys.readouterr()
    assert code == 1 and not captured.out
    assert captured.err.startswith("recsys recommend: error: Ranker ")
    _assert_refused(captured.err, foreign_bundle, ranker_bundle)


def test_serve_refuses_it_before_binding_the_port(
    foreign_bundle, ranker_bundle, capsys
):
    code = main(["serve", foreign_bundle.path, "--ranker", ranker_bundle.path])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("recsys serve: error: Ranker ")
    _assert_refused(err, foreign_bundle, ranker_bundle)


def test_serve_with_workers_refuses_it_before_binding_the_port(
    foreign_bundle, ranker_bundle
):
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys.cli",
            "serve",
            foreign_bundle.path,
            "--ranker",
            ranker_bundle.path,
            "--workers",
            "2",
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("recsys serve: error: Ranker ")
    _assert_refused(done.stderr, foreign_bundle, ranker_bundle)


def test_the_app_refuses_it_at_creation_or_startup(
    foreign_bundle, ranker_bundle
):
    service = RetrievalService(foreign_bundle, precompute_depth=0)
    with pytest.raises(ValueError, match=REFUSED):
        create_app(
            foreign_bundle.path, service=service, ranker=Reranker(ranker_bundle)
        )
    # A ranker loaded at startup: the app does not start.
    app = create_app(foreign_bundle.path, ranker=ranker_bundle.path)
    with pytest.raises(ValueError, match=REFUSED), TestClient(app):
        pass
    # The reranker's own API, given the service.
    with pytest.raises(ValueError, match=REFUSED):
        Reranker(ranker_bundle).retrieve(
            service, [{"user_id": foreign_bundle.user_ids[0], "k": 3}]
        )


def test_a_reload_to_a_bundle_of_other_ids_is_refused_and_serving_goes_on(
    trained_bundle, ranker_bundle, foreign_bundle, bundle_root
):
    bundle, _ = trained_bundle
    settings = Settings(api_token="s3cret", bundle_root=str(bundle_root))
    app = create_app(
        bundle.path,
        settings=settings,
        service=RetrievalService(bundle, precompute_depth=0),
        ranker=Reranker(ranker_bundle),
    )
    query = {"user_id": 7, "k": 3, "rerank": True}
    with TestClient(app, headers={"Authorization": "Bearer s3cret"}) as client:
        before = client.post("/v1/retrieve", json=query)
        assert before.status_code == 200, before.text
        refused = client.post(
            "/admin/reload", json={"path": foreign_bundle.path}
        )
        assert refused.status_code == 422, refused.text
        message = refused.json()["detail"][0]["msg"]
        assert f"refused, still serving {bundle.version}: " in message
        _assert_refused(message, foreign_bundle, ranker_bundle)
        # The old pair serves on, and reloads again.
        after = client.post("/v1/retrieve", json=query)
        assert after.status_code == 200 and after.json() == before.json()
        again = client.post("/admin/reload")
        assert again.status_code == 200, again.text
        assert client.post("/v1/retrieve", json=query).json()["reranked"]


def test_workers_refuse_a_reload_to_other_ids_and_serve_on(
    trained_bundle, ranker_bundle, foreign_bundle, tmp_path
):
    bundle, _ = trained_bundle
    pointer = tmp_path / "current"
    pointer.write_text(bundle.path)
    log = tmp_path / "server.log"
    query = {"user_id": 7, "k": 3, "rerank": True}
    with running_server(
        str(pointer),
        "--ranker",
        ranker_bundle.path,
        "--workers",
        "2",
        log_path=log,
        env={"RECSYS_EXACT": "1", "RECSYS_API_TOKEN": "s3cret"},
    ) as url:
        before = httpx.post(f"{url}/v1/retrieve", json=query, timeout=60)
        assert before.status_code == 200, before.text
        pointer.write_text(foreign_bundle.path)
        # Without a path: the supervisor reloads every worker (a SIGHUP).
        started = httpx.post(
            f"{url}/admin/reload",
            headers={"Authorization": "Bearer s3cret"},
            timeout=60,
        )
        assert started.status_code == 202, started.text
        deadline = time.time() + 120
        while REFUSED not in log.read_text() and time.time() < deadline:
            time.sleep(0.2)
        assert REFUSED in log.read_text()
        assert "Reload failed; the workers serve on unchanged" in (
            log.read_text()
        )
        after = httpx.post(f"{url}/v1/retrieve", json=query, timeout=60)
        assert after.status_code == 200 and after.json() == before.json()


def test_every_thread_of_a_workers_supervisor_blocks_its_signals(
    trained_bundle, ranker_bundle, tmp_path
):
    """Loading the ranker started a thread before the supervisor blocked
    its signals: a worker's ready signal or a SIGHUP given to that thread
    while the supervisor was busy ended the server (default action)."""
    import signal

    from recsys.serving.workers import READY_SIGNAL
    from tests.serving.test_workers import _server_pid

    bundle, _ = trained_bundle
    with running_server(
        bundle.path,
        "--ranker",
        ranker_bundle.path,
        "--workers",
        "2",
        log_path=tmp_path / "server.log",
        env={"RECSYS_EXACT": "1"},
    ) as url:
        pid = _server_pid(url)
        wanted = (1 << (signal.SIGHUP - 1)) | (1 << (READY_SIGNAL - 1))
        for task in os.listdir(f"/proc/{pid}/task"):
            if int(task) == pid:  # waits in sigwaitinfo: unblocked there
                continue
            with open(f"/proc/{pid}/task/{task}/status") as f:
                line = next(x for x in f if x.startswith("SigBlk:"))
            blocked = int(line.split()[1], 16)
            assert blocked & wanted == wanted, (task, line)
