"""Prometheus metrics of one app (its own registry, no global state)."""

import time

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import GCCollector
from prometheus_client import Histogram
from prometheus_client import PlatformCollector
from prometheus_client import ProcessCollector
from prometheus_client import generate_latest

# Up to 10 s: a full batch of 256 queries at k = 1000 takes over 1 s, and
# reranked batches several.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class ServiceMetrics:
    """Request counts by status, a latency histogram and the bundle version,
    beside the process's own (`process_*`: memory, CPU, open files;
    `python_gc_*`, `python_info`), as in prometheus_client's default
    registry."""

    def __init__(self):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
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
        self.bundle = Gauge(
            "recsys_bundle_info",
            "The bundle being served (value 1, version in the label).",
            ["version"],
            registry=self.registry,
        )
        self._children = {}

    def set_bundle(self, version):
        self.bundle.clear()
        self.bundle.labels(version=version).set(1)

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
        return generate_latest(self.registry)
