"""Prometheus metrics of one app (its own registry), or of every worker of
`recsys serve --workers N` together (`shared_by_workers`)."""

import contextlib
import os
import shutil
import tempfile
import time

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import GCCollector
from prometheus_client import Histogram
from prometheus_client import PlatformCollector
from prometheus_client import ProcessCollector
from prometheus_client import generate_latest
from prometheus_client import values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# Up to 10 s: a full batch of 256 queries at k = 1000 takes over 1 s, and
# reranked batches several.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# prometheus_client's multiprocess mode: the folder of every process's
# metric files.
MULTIPROCESS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def shared_by_workers():
    """Within it, the `ServiceMetrics` made here and used in forked workers
    count in files of one folder, and each worker's `/metrics` answers the
    sum over every worker, those a reload or a crash ended too: each had
    its own counts, and a scrape saw whichever worker took it (counts
    that fell back and forth, resets to Prometheus).

    The folder is `PROMETHEUS_MULTIPROC_DIR` where set (kept, as it is),
    else one made here and removed on exit.

    Yields:
        str. The folder.
    """
    folder = os.environ.get(MULTIPROCESS_FOLDER)
    made = not folder
    if made:
        folder = tempfile.mkdtemp(prefix="recsys-metrics-")
        os.environ[MULTIPROCESS_FOLDER] = folder
    # prometheus_client picks its value class once, at import, from that
    # environment variable; this process imported it long before.
    previous = values.ValueClass
    values.ValueClass = values.MultiProcessValue()
    try:
        yield folder
    finally:
        values.ValueClass = previous
        if made:
            del os.environ[MULTIPROCESS_FOLDER]
            shutil.rmtree(folder, ignore_errors=True)


class _BundleInfo(Collector):
    """`recsys_bundle_info`: the version this process serves (its own
    even among workers: during a reload two generations answer)."""

    def __init__(self):
        self.version = None

    def collect(self):
        family = GaugeMetricFamily(
            "recsys_bundle_info",
            "The bundle being served (value 1, version in the label).",
            labels=["version"],
        )
        if self.version is not None:
            family.add_metric([self.version], 1)
        yield family


class ServiceMetrics:
    """Request counts by status, a latency histogram and the bundle version,
    beside the process's own (`process_*`: memory, CPU, open files;
    `python_gc_*`, `python_info`), as in prometheus_client's default
    registry. Made within `shared_by_workers`, the counts and latencies
    are every worker's, and the process's own are left out (one random
    worker's would pass for the server's)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self._bundle = _BundleInfo()
        self.registry.register(self._bundle)
        if values.ValueClass is values.MutexValue:
            self.scraped = self.registry
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        else:
            self.scraped = CollectorRegistry()
            MultiProcessCollector(
                self.scraped, path=os.environ[MULTIPROCESS_FOLDER]
            )
            self.scraped.register(self._bundle)
        self.requests = Counter(
            "recsys_requests",
            "HTTP requests by route and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "recsys_request_latency_seconds",
            "Request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._children = {}

    def set_bundle(self, version):
        self._bundle.version = version

    def observe(self, route, status, started):
        key = (route, status)
        children = self._children.get(key)
        if children is None:
            # `labels()` takes a lock and builds a key on every call; the
            # children are fixed once created, so look them up once.
            children = self._children[key] = (
                self.requests.labels(route=route, status=str(status)),
                self.latency.labels(route=route),
            )
        children[0].inc()
        children[1].observe(time.perf_counter() - started)

    def render(self):
        return generate_latest(self.scraped)
