"""`ServiceMetrics`, alone and shared by forked workers."""

import os
import time

from recsys.serving.metrics import MULTIPROCESS_FOLDER
from recsys.serving.metrics import ServiceMetrics
from recsys.serving.metrics import shared_by_workers

COUNT = 'recsys_requests_total{route="/v1/retrieve",status="200"}'


def _count(metrics):
    for line in metrics.render().decode().splitlines():
        if line.startswith(COUNT):
            return float(line.split()[-1])
    return None


def test_shared_metrics_sum_every_generation_and_leave_nothing(monkeypatch):
    monkeypatch.delenv(MULTIPROCESS_FOLDER, raising=False)
    with shared_by_workers() as folder:
        first = ServiceMetrics()
        first.set_bundle("v1")
        first.observe("/v1/retrieve", 200, time.perf_counter())
        # A reload's generation: its counts add to the first's.
        second = ServiceMetrics()
        second.set_bundle("v2")
        second.observe("/v1/retrieve", 200, time.perf_counter())
        assert os.listdir(folder)  # the counts are in files
        text = second.render().decode()
        assert _count(second) == 2.0
        # Its own version only, and no one worker's process metrics.
        assert 'recsys_bundle_info{version="v2"} 1.0' in text
        assert 'version="v1"' not in text
        assert "process_resident_memory" not in text
    assert not os.path.exists(folder)
    assert MULTIPROCESS_FOLDER not in os.environ
    alone = ServiceMetrics()  # as before: its own counts
    alone.observe("/v1/retrieve", 200, time.perf_counter())
    assert _count(alone) == 1.0
    assert "process_resident_memory_bytes" in alone.render().decode()


def test_a_folder_the_user_set_is_used_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(MULTIPROCESS_FOLDER, str(tmp_path))
    with shared_by_workers() as folder:
        ServiceMetrics().observe("/v1/retrieve", 200, time.perf_counter())
    assert folder == str(tmp_path) and os.listdir(tmp_path)
    assert os.environ[MULTIPROCESS_FOLDER] == str(tmp_path)
