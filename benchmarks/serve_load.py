"""Load test of the retrieval service against the framework floor.

Builds a bundle with a synthetic catalog (default 1,000,000 items x 64 dims,
100,000 users, clustered vectors; the query tower pools a history of 10
items besides the user id), serves it with `recsys serve` (one uvicorn
worker, loopback) as several targets: (a) `scann`, the service as it ships
(known users' top items searched at load with the ScaNN index, the query
tower evaluated with numpy, concurrent tower and index work micro-batched),
(a'') `scann_before`, the same with the numpy tower and micro-batching off
(`RECSYS_FAST_TOWER=0 RECSYS_BATCH_WINDOW_MS=0`: a Keras call and an index
search per request, as before they existed), (a') `scann_per_request`, the
table off (`RECSYS_PRECOMPUTE_DEPTH=0`: every request searches ScaNN), and
(b) `exact`, brute-force search per request (`RECSYS_EXACT=1`); and it
serves (c) a FastAPI endpoint that only validates `{"user_id", "k"}` with
pydantic: the framework floor, measured in the same run (known-user shape
only). Each request shape (`--shapes`):

- `known`: a known user, k=10, users varying (the precomputed table);
- `deep`: a known user, k=150 (above the table's depth of 100) with 3
  excluded items: an index search per request;
- `features`: an anonymous query with a history of 3 items, histories
  varying: the query tower, then an index search;
- `mix`: 70% `known`, 20% `features`, 10% `deep`, interleaved;
- `reranked`: a known user, k=10, `"rerank": true`: the 100 candidates of
  the top-items table scored by a ranker (`recsys serve --ranker`; a
  binary DCN over the synthetic users and items trained for one epoch by
  `synthetic_ranker`, or `--ranker DIR`); the `scann` target only, whose
  server then holds the ranker for every shape;

gets two loads, each bounded in time:

- closed loop: 32 connections sending back to back (wrk when installed, the
  script's own asyncio client otherwise);
- open loop: 1,000 requests/s (`reranked`: 500) on a fixed schedule
  (asyncio client; latency is counted from the scheduled time, so queueing
  shows).

`ratio` holds each shape's closed-loop req/s of `scann` over `scann_before`
(what the fast paths bring), each target's over its own `known` shape, and
`known` over the floor. `first_answer_seconds` is the time from starting
`recsys serve` to its first answered request, `warm_seconds` until `/readyz`
reports the top-items table and the query tower ready (the loads run after).
`--reload WORKERS` measures known users' latency (open loop) before,
during and after a reload of the same bundle (`/admin/reload` with one
worker, SIGHUP with more).

The load generator shares the machine's cores with the server; the JSON says
which one ran. Prints one JSON object.

Usage:

```
python benchmarks/serve_load.py [--items 1000000] [--users 100000]
    [--seconds 10] [--targets scann scann_before floor]
    [--shapes known deep features mix reranked] [--no-open-loop]
    [--ranker DIR] [--workers | --startup N | --reload WORKERS]
```
"""

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import machine
from _common import print_json
from _common import script_command

SHAPES = ("known", "deep", "features", "mix", "reranked")
TARGETS = ("scann", "scann_before", "scann_per_request", "exact", "floor")
HISTORY_LENGTH = 10
ITEM_BUCKETS = 100_000  # the history table's rows (hashed item ids)

# The request bodies are written to a file, one a line, and wrk sends them
# in random order.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- Each request formatted once, here: formatting per request cost the
-- load generator CPU time that the server, on the same cores, then lacked.
local requests = {}
for line in io.lines("%(path)s") do
  requests[#requests + 1] = wrk.format(nil, nil, nil, line)
end
math.randomseed(42)
request = function()
  return requests[math.random(#requests)]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


# -- the synthetic bundle --------------------------------------------------


def synthetic_bundle(path, items, users, dim, seed=0):
    """Writes a servable bundle with clustered random vectors; returns path."""
    import pandas as pd

    from recsys.bundles.two_tower import write_bundle
    from recsys.config import load_config
    from recsys.features import CategoricalFeature
    from recsys.features import Preprocessor
    from recsys.index import build_index
    from recsys.models import Tower

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(2_000, dim)).astype(np.float32)

    def vectors(n):
        out = np.empty((n, dim), np.float32)
        for start in range(0, n, 100_000):  # bounded temporaries
            m = min(100_000, n - start)
            x = centers[rng.integers(0, len(centers), m)]
            x = x + 0.5 * rng.normal(size=(m, dim)).astype(np.float32)
            out[start : start + m] = x / np.linalg.norm(
                x, axis=1, keepdims=True
            )
        return out

    config = load_config(
        None,
        [
            "data.user='user_id'",
            "data.item='item_id'",
            "features.user_id.kind='categorical'",
            "features.user_id.vocabulary='hash'",
            "features.user_id.num_buckets=1024",
            "features.item_id.kind='categorical'",
            "features.item_id.vocabulary='hash'",
            f"features.item_id.num_buckets={ITEM_BUCKETS}",
            "model.query_features=['user_id']",
            "model.candidate_features=['item_id']",
            f"model.history_length={HISTORY_LENGTH}",
            f"model.embedding_dim={dim}",
            "model.combine='sum'",
        ],
    )
    specs = [
        CategoricalFeature("user_id", vocabulary="hash", num_buckets=1024),
        CategoricalFeature(
            "item_id", vocabulary="hash", num_buckets=ITEM_BUCKETS
        ),
    ]
    preprocessor = Preprocessor(features=specs).fit(
        {"user_id": [0], "item_id": [0]}
    )
    # The default config's query tower: a user id table plus the mean of
    # the history's item vectors, summed.
    tower = Tower(
        [
            {
                "name": "user_id",
                "type": "embedding",
                "input_dim": 1025,
                "output_dim": dim,
            },
            {
                "name": "history",
                "type": "embedding",
                "input_dim": ITEM_BUCKETS + 1,
                "output_dim": dim,
            },
        ],
        dim,
        normalize=False,
        combine="sum",
    )
    seen_per_user = 10
    popularity = rng.zipf(1.3, items).astype(np.float64)
    arrays = {
        "item_ids": np.arange(items, dtype=np.int64),
        "item_embeddings": vectors(items),
        "item_popularity": (popularity / popularity.sum()).astype(np.float32),
        "user_ids": np.arange(users, dtype=np.int64),
        "user_embeddings": vectors(users),
        "seen_indptr": np.arange(0, users * seen_per_user + 1, seen_per_user),
        "seen_items": rng.integers(0, items, users * seen_per_user),
    }
    index = build_index(arrays["item_embeddings"], kind="scann")
    write_bundle(
        path,
        config=config,
        metrics={"synthetic": True},
        preprocessor=preprocessor,
        query_tower=tower,
        items=pd.DataFrame({"item_id": arrays["item_ids"]}),
        arrays=arrays,
        index=index,
    )
    return index.options


def ratios(results, shapes):
    """Closed-loop req/s ratios measured in this run."""

    def rate(kind, shape):
        found = results.get(kind, {}).get(shape)
        return found["closed_loop"]["throughput"] if found else None

    out = {}
    for shape in shapes:
        after, before = rate("scann", shape), rate("scann_before", shape)
        if after and before:
            out[f"{shape}_scann_over_scann_before"] = after / before
        for kind in results:
            known = rate(kind, "known")
            if shape != "known" and known and rate(kind, shape):
                out[f"{shape}_over_known_{kind}"] = rate(kind, shape) / known
    floor = rate("floor", "known")
    for kind in results:
        if kind != "floor" and floor and rate(kind, "known"):
            out[f"known_{kind}_over_floor"] = rate(kind, "known") / floor
        if kind != "floor" and floor and rate(kind, "mix"):
            out[f"mix_{kind}_over_floor"] = rate(kind, "mix") / floor
    return out


# -- servers ---------------------------------------------------------------


def floor_app():
    """A FastAPI endpoint that validates the request and does nothing else."""
    from fastapi import FastAPI
    from pydantic import BaseModel

    class Query(BaseModel):
        user_id: str | int
        k: int = 10

    app = FastAPI()

    @app.post("/v1/retrieve")
    async def retrieve(query: Query):
        return {"items": [], "bundle": "floor"}

    return app


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_ranker(path, items, users, extra_rows=200_000, seed=0):
    """Trains a ranker of the synthetic catalog's (user, item) pairs.

    A binary tabular bundle (`recsys train`, one epoch, DCN over hashed
    user and item ids) on pairs holding every item once plus `extra_rows`
    random ones, liked when a hidden user x item rule says so: like a
    ranker trained on the catalog's own interactions, it knows the
    candidates it scores. Returns `path`.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = items + extra_rows
    user = rng.integers(0, users, rows)
    item = np.concatenate(
        [np.arange(items), rng.integers(0, items, extra_rows)]
    )
    liked = ((user % 7) == (item % 7)) | (rng.random(rows) < 0.1)
    os.makedirs(path + "-data", exist_ok=True)
    table = os.path.join(path + "-data", "pairs.csv")
    pd.DataFrame(
        {
            "user_id": user,
            "item_id": item,
            "ts": np.arange(rows),
            "liked": liked,
        }
    ).to_csv(table, index=False)
    config = os.path.join(path + "-data", "ranker.toml")
    with open(config, "w") as f:
        f.write(
            f"""[data]
source = "{table}"
user = "user_id"
item = "item_id"
time = "ts"
split = "random"
label = "liked"
[features.user_id]
kind = "categorical"
vocabulary = "hash"
num_buckets = 4096
[features.item_id]
kind = "categorical"
vocabulary = "hash"
num_buckets = {ITEM_BUCKETS}
[model]
kind = "tabular"
task = "binary"
interaction = "dcn"
[train]
epochs = 1
refit = false
[evaluate]
baselines = []
"""
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys.cli",
            "train",
            config,
            "--output",
            path,
            "--quiet",
        ],
        check=True,
        # The JSON on stdout is this script's only output.
        stdout=sys.stderr,
    )
    return path


def start_server(kind, bundle, log, workers=1, ranker=None, env=None):
    port = _free_port()
    env = {**os.environ, **(env or {})}
    if kind == "floor":
        command = script_command(__file__, "--floor-server", port)
    else:
        command = [
            sys.executable,
            "-m",
            "recsys.cli",
            "serve",
            bundle,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--workers",
            str(workers),
            *(["--ranker", ranker] if ranker else []),
        ]
        env["RECSYS_EXACT"] = "1" if kind == "exact" else "0"
        if kind == "scann_per_request":
            env["RECSYS_PRECOMPUTE_DEPTH"] = "0"
        if kind == "scann_before":
            env["RECSYS_FAST_TOWER"] = "0"
            env["RECSYS_BATCH_WINDOW_MS"] = "0"
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    return wait_listening(process, port, kind, log), port


def wait_listening(process, port, name, log, timeout=600):
    """`process` once it accepts connections on `port` (killed if never)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} server exited; see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{name} server did not start")


# -- load generators -------------------------------------------------------


async def _post(reader, writer, body):
    writer.write(
        b"POST /v1/retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    await writer.drain()
    line = await reader.readline()
    if not line:  # the server closed the connection
        raise ConnectionResetError("connection closed")
    status = int(line.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


def _bodies(shape, users, items, count, seed=0):
    """`count` request bodies of one shape (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if shape == "mix":
        kinds = rng.choice(
            ["known", "features", "deep"], size=count, p=[0.7, 0.2, 0.1]
        )
    else:
        kinds = [shape] * count
    bodies = []
    for kind, user in zip(kinds, rng.integers(0, users, count), strict=True):
        picked = rng.integers(0, items, 3).tolist()
        if kind == "known":
            body = {"user_id": int(user), "k": 10}
        elif kind == "deep":
            body = {"user_id": int(user), "k": 150, "exclude": picked}
        elif kind == "reranked":
            body = {"user_id": int(user), "k": 10, "rerank": True}
        else:
            body = {"features": {"history": picked}, "k": 10}
        bodies.append(json.dumps(body).encode())
    return bodies


def _summary(latencies, errors, seconds, offered=None):
    latencies = np.asarray(latencies) * 1e3
    result = {
        "requests": int(len(latencies)),
        "errors": int(errors),
        "throughput": len(latencies) / seconds,
        "p50_ms": float(np.percentile(latencies, 50))
        if len(latencies)
        else None,
        "p95_ms": float(np.percentile(latencies, 95))
        if len(latencies)
        else None,
        "p99_ms": float(np.percentile(latencies, 99))
        if len(latencies)
        else None,
    }
    if offered is not None:
        result["offered_per_second"] = offered
    return result


async def closed_loop(port, connections, seconds, bodies):
    latencies, errors = [], 0
    end = time.perf_counter() + seconds

    async def worker(w):
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = w
        while time.perf_counter() < end:
            start = time.perf_counter()
            try:
                ok = await _post(reader, writer, bodies[i % len(bodies)]) == 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port
                )
            latencies.append(time.perf_counter() - start)
            errors += not ok
            i += connections
        writer.close()

    await asyncio.gather(*(worker(w) for w in range(connections)))
    return _summary(latencies, errors, seconds)


async def open_loop(
    port, rate, seconds, bodies, max_connections=256, record=None
):
    """Requests on a fixed schedule; latency from the scheduled time.

    `record`: a list that gets `(scheduled, latency)` of each request.
    """
    count = int(rate * seconds)
    idle, opened = [], 0
    latencies, errors = [], 0
    # Why requests failed: HTTP status (as text) or the exception's name.
    causes = {}
    start = time.perf_counter() + 0.1

    async def one(i, scheduled):
        nonlocal opened, errors
        while not idle and opened >= max_connections:
            await asyncio.sleep(0.0005)
        reused = bool(idle)
        try:
            if reused:
                reader, writer = idle.pop()
                try:
                    status = await _post(
                        reader, writer, bodies[i % len(bodies)]
                    )
                except (OSError, asyncio.IncompleteReadError):
                    # The server closed this idle keep-alive connection
                    # (uvicorn: after 5 s): retry once on a new one, as
                    # HTTP clients do with stale pooled connections.
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", port
                    )
                    status = await _post(
                        reader, writer, bodies[i % len(bodies)]
                    )
            else:
                opened += 1
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port
                )
                status = await _post(reader, writer, bodies[i % len(bodies)])
            idle.append((reader, writer))
            cause = None if status == 200 else str(status)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            cause = type(error).__name__
            opened -= 1
        latencies.append(time.perf_counter() - scheduled)
        if record is not None:
            record.append((scheduled, latencies[-1]))
        if cause is not None:
            errors += 1
            causes[cause] = causes.get(cause, 0) + 1

    tasks = []
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    # Bounded in time: whatever has not answered 5 s after the last
    # scheduled request counts as a timeout (an error).
    _, pending = await asyncio.wait(
        tasks, timeout=max(0.0, start + seconds + 5 - time.perf_counter())
    )
    for task in pending:
        task.cancel()
    summary = _summary(
        latencies,
        errors + len(pending),
        time.perf_counter() - start,
        offered=rate,
    )
    summary["timeouts"] = len(pending)
    summary["error_causes"] = causes
    return summary


def wrk_closed_loop(port, connections, seconds, bodies):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(b"\n".join(bodies) + b"\n")
    lines = f.name
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % {"path": lines})
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            f.name,
            f"http://127.0.0.1:{port}/v1/retrieve",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(f.name)
    os.unlink(lines)
    fields = re.search(r"RESULT ([\d ]+)", done.stdout).group(1).split()
    requests, micros, socket_errors, status_errors, p50, p95, p99 = map(
        int, fields
    )
    return {
        "requests": requests,
        "errors": socket_errors + status_errors,
        "throughput": requests / (micros / 1e6),
        "p50_ms": p50 / 1e3,
        "p95_ms": p95 / 1e3,
        "p99_ms": p99 / 1e3,
    }


def measure(kind, port, args, generator, shape):
    # The load generator's own garbage collection (this process imported
    # Keras, JAX and ScaNN to build the bundle: a large heap) paused it for
    # ~170 ms, once per open loop, showing as p99 latency of whichever
    # server it was measuring: collect now, then not while measuring.
    gc.collect()
    gc.disable()
    try:
        return _measure(port, args, generator, shape)
    finally:
        gc.enable()


def _measure(port, args, generator, shape):
    bodies = _bodies(shape, args.users, args.items, 200_000)
    asyncio.run(closed_loop(port, 8, 2, bodies))  # warm up
    if generator == "wrk":
        closed = wrk_closed_loop(port, args.connections, args.seconds, bodies)
    else:
        closed = asyncio.run(
            closed_loop(port, args.connections, args.seconds, bodies)
        )
    result = {"closed_loop": closed}
    if args.open_loop:
        bodies = _bodies(shape, args.users, args.items, 200_000, seed=1)
        # The goal for reranked queries is at 500 req/s.
        rate = args.rerank_rate if shape == "reranked" else args.rate
        asyncio.run(open_loop(port, rate, 1, bodies))  # warm up
        result["open_loop"] = asyncio.run(
            open_loop(port, rate, args.seconds, bodies)
        )
    return result


def first_answer(port, started, timeout=600):
    """Seconds from `started` to the first 200 of a known-user request."""
    body = _bodies("known", 1, 1, 1)[0]
    deadline = time.time() + timeout

    async def attempt():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await _post(reader, writer, body)
        finally:
            writer.close()

    while time.time() < deadline:
        try:
            if asyncio.run(attempt()) == 200:
                return time.time() - started
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError("the server never answered")


def warmed_up(port, started, timeout=900):
    """Seconds from `started` until `/readyz` reports everything built.

    The server answers before known users' top items and the query tower
    are ready (through the index, or by waiting for the tower); the loads
    are measured after, in the steady state.
    """
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as r:
            ready = json.loads(r.read())
        if ready.get("top_items", "ready") != "building" and ready.get(
            "query_tower", "numpy"
        ) not in ("loading",):
            return time.time() - started
        time.sleep(0.2)
    raise RuntimeError("the server never finished warming up")


# -- workers and startup ---------------------------------------------------


def process_memory(pid):
    """RSS, PSS and USS (private pages) of a process in MiB (smaps_rollup)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[name] = int(value.split()[0]) / 1024
    return {
        "rss_mib": round(fields["Rss"], 1),
        "pss_mib": round(fields["Pss"], 1),
        "uss_mib": round(fields["Private_Clean"] + fields["Private_Dirty"], 1),
    }


def cpu_seconds(pid):
    """User plus system CPU seconds a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid):
    """The live child processes of `pid` (a server's workers)."""
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


def _count(path, text):
    with open(path) as f:
        return f.read().count(text)


def _role(workers, i):
    if i == 0:
        return "server" if workers == 1 else "supervisor"
    return f"worker {i - 1}"


def workers_comparison(bundle, args, generator, workdir, ranker=None):
    """The 70/20/10 mix (or the `--shapes` named) served by 1, then 2
    workers (`--workers`).

    Each server answers its first request, warms up (the top-items table
    and query tower built in every worker), then takes each shape's loads;
    after it, each process's memory is read from `/proc/PID/smaps_rollup`
    (USS: the pages only it holds; PSS: its share of the rest) and its CPU
    seconds during the load.
    """
    results = {}
    shapes = args.shapes
    for workers in (1, 2):
        name = f"workers_{workers}"
        with open(os.path.join(workdir, f"{name}.log"), "w") as log:
            started = time.time()
            process, port = start_server("scann", bundle, log, workers, ranker)
            try:
                result = {"first_answer_seconds": first_answer(port, started)}
                # `/readyz` answers from one worker: every worker's table
                # must be built (each logs it) before the load.
                result["warm_seconds"] = warmed_up(port, started)
                deadline = time.time() + 900
                while _count(log.name, "Precomputed the top") < workers:
                    if time.time() > deadline:
                        raise RuntimeError("the workers never warmed up")
                    time.sleep(1)
                result["all_workers_warm_seconds"] = time.time() - started
                pids = [process.pid, *child_pids(process.pid)]
                before = {pid: cpu_seconds(pid) for pid in pids}
                for shape in shapes:
                    result[shape] = measure(
                        "scann", port, args, generator, shape
                    )
                result["processes"] = [
                    {
                        "role": _role(workers, i),
                        "pid": pid,
                        "cpu_seconds_during_load": round(
                            cpu_seconds(pid) - before[pid], 1
                        ),
                        **process_memory(pid),
                    }
                    for i, pid in enumerate(pids)
                ]
            finally:
                process.terminate()
                process.wait(timeout=60)
        results[name] = result
        print(f"{name}: {json.dumps(result)}", file=sys.stderr)
    one, two = results["workers_1"], results["workers_2"]
    single_rss = one["processes"][0]["rss_mib"]
    workers = [p for p in two["processes"] if p["role"].startswith("worker")]
    results["ratio"] = {
        **{
            f"{shape}_2_workers_over_1": two[shape]["closed_loop"]["throughput"]
            / one[shape]["closed_loop"]["throughput"]
            for shape in shapes
        },
        # The goal: a second worker costs at most 25% of one server.
        "worker_uss_over_single_rss": max(p["uss_mib"] for p in workers)
        / single_rss,
        "worker_pss_over_single_rss": max(p["pss_mib"] for p in workers)
        / single_rss,
        "total_pss_2_workers_over_single_rss": sum(
            p["pss_mib"] for p in two["processes"]
        )
        / single_rss,
    }
    return results


def startup_times(bundle, repeats, workdir, workers=1):
    """Seconds from `recsys serve` to its first answer, `repeats` times."""
    times = []
    for i in range(repeats):
        with open(os.path.join(workdir, f"startup_{i}.log"), "w") as log:
            started = time.time()
            process, port = start_server("scann", bundle, log, workers)
            try:
                times.append(first_answer(port, started))
            finally:
                process.terminate()
                process.wait(timeout=60)
    return {
        "first_answer_seconds": times,
        "median": float(np.median(times)),
        "workers": workers,
    }


def reload_under_load(
    bundle, workdir, users, items, rate=1000, seconds=30, at=5.0, workers=1
):
    """Latency of known users' requests before and during a reload.

    An open loop of `rate` req/s for `seconds`; `at` seconds in, the same
    bundle is reloaded: with one worker by `/admin/reload` (loaded beside
    the served one, then swapped), with several by SIGHUP to the server
    (new workers, then the old ones stopped; the reload ends when no old
    worker is left). Latencies by the request's scheduled time: before the
    reload, during it, after.
    """
    import threading
    import urllib.request

    with open(os.path.join(workdir, "reload.log"), "w") as log:
        started = time.time()
        process, port = start_server(
            "scann",
            bundle,
            log,
            workers,
            env={"RECSYS_API_TOKEN": "benchmark"},
        )
        try:
            warmed_up(port, started)
            marks = {}

            def reload():
                time.sleep(at)
                if workers > 1:
                    old = set(child_pids(process.pid))
                    marks["start"] = time.perf_counter()
                    os.kill(process.pid, signal.SIGHUP)
                    while old & set(child_pids(process.pid)) or (
                        len(child_pids(process.pid)) < workers
                    ):
                        time.sleep(0.02)
                    marks["status"] = "SIGHUP"
                    marks["end"] = time.perf_counter()
                    return
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/admin/reload",
                    data=b"{}",
                    headers={
                        "Authorization": "Bearer benchmark",
                        "Content-Type": "application/json",
                    },
                )
                marks["start"] = time.perf_counter()
                with urllib.request.urlopen(request, timeout=600) as answer:
                    marks["status"] = answer.status
                marks["end"] = time.perf_counter()

            thread = threading.Thread(target=reload, daemon=True)
            thread.start()
            record = []
            bodies = _bodies("known", users, items, 200_000, seed=2)
            gc.collect()  # the client's own collections: not while timing
            gc.disable()
            try:
                summary = asyncio.run(
                    open_loop(port, rate, seconds, bodies, record=record)
                )
            finally:
                gc.enable()
            thread.join(timeout=600)
        finally:
            process.terminate()
            process.wait(timeout=60)
    record = np.asarray(record)
    phases = {
        "before": record[:, 0] < marks["start"],
        "during": (record[:, 0] >= marks["start"])
        & (record[:, 0] <= marks["end"]),
        "after": record[:, 0] > marks["end"],
    }
    result = {
        "reload_status": marks.get("status"),
        "reload_seconds": marks["end"] - marks["start"],
        "open_loop": summary,
    }
    for name, chosen in phases.items():
        ms = record[chosen, 1] * 1e3
        result[name] = {
            "requests": int(len(ms)),
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
            "max_ms": float(ms.max()) if len(ms) else None,
        }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument(
        "--seconds", type=int, default=10, help="Per load shape."
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rate", type=int, default=1000, help="Open loop req/s."
    )
    parser.add_argument(
        "--rerank-rate",
        type=int,
        default=500,
        help="Open loop req/s of the `reranked` shape.",
    )
    parser.add_argument("--bundle", help="Reuse this synthetic bundle.")
    parser.add_argument(
        "--ranker",
        help="Reuse this synthetic ranker (shape `reranked`; built when "
        "not given).",
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=["scann", "scann_before", "floor"],
        choices=TARGETS,
    )
    parser.add_argument(
        "--shapes", nargs="+", default=list(SHAPES), choices=SHAPES
    )
    parser.add_argument(
        "--no-open-loop",
        dest="open_loop",
        action="store_false",
        help="Closed loop only.",
    )
    parser.add_argument(
        "--workers",
        action="store_true",
        help="Only compare 1 and 2 workers (`recsys serve --workers`) on "
        "the mix (or the --shapes named): req/s ratio and each process's "
        "RSS/PSS/USS.",
    )
    parser.add_argument(
        "--startup",
        type=int,
        metavar="N",
        help="Only time `recsys serve` to its first answer, N times.",
    )
    parser.add_argument(
        "--reload",
        type=int,
        metavar="WORKERS",
        help="Only measure known users' latency (open loop, --rate) while "
        "a server of WORKERS workers reloads its bundle (/admin/reload with "
        "1, SIGHUP with more).",
    )
    parser.add_argument("--floor-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_server:
        import uvicorn

        uvicorn.run(
            floor_app(),
            host="127.0.0.1",
            port=args.floor_server,
            log_level="warning",
        )
        return
    workdir = tempfile.mkdtemp(prefix="serve-load-")
    bundle = args.bundle or os.path.join(workdir, "bundle")
    started = time.time()
    options = None
    if not args.bundle:
        options = synthetic_bundle(bundle, args.items, args.users, args.dim)
    build_seconds = time.time() - started
    if args.workers and args.shapes == list(SHAPES):
        args.shapes = ["mix"]  # the workers' comparison, unless others named
    # The ranker loads only where reranked queries are measured.
    ranker = args.ranker if "reranked" in args.shapes else None
    if "reranked" in args.shapes and not ranker:
        ranker = synthetic_ranker(
            os.path.join(workdir, "ranker"), args.items, args.users
        )
    generator = "wrk" if shutil.which("wrk") else "asyncio"
    if args.workers or args.startup or args.reload:
        if args.reload:
            results = {
                "reload": reload_under_load(
                    bundle,
                    workdir,
                    args.users,
                    args.items,
                    args.rate,
                    workers=args.reload,
                )
            }
        elif args.startup:
            results = {"startup": startup_times(bundle, args.startup, workdir)}
        else:
            results = workers_comparison(
                bundle, args, generator, workdir, ranker
            )
        results["setup"] = {
            "items": args.items,
            "users": args.users,
            "seconds_per_shape": args.seconds,
            "closed_loop_connections": args.connections,
            "closed_loop_generator": generator,
            "open_loop": args.open_loop,
            "load_average_at_end": os.getloadavg(),
        }
        results["machine"] = machine()
        print_json(results)
        if not args.bundle:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    results = {}
    for kind in args.targets:
        with open(os.path.join(workdir, f"{kind}.log"), "w") as log:
            started = time.time()
            process, port = start_server(
                kind, bundle, log, ranker=None if kind == "floor" else ranker
            )
            startup = time.time() - started
            try:
                results[kind] = {"startup_seconds": startup}
                if kind != "floor":
                    results[kind]["first_answer_seconds"] = first_answer(
                        port, started
                    )
                    results[kind]["warm_seconds"] = warmed_up(port, started)
                shapes = ["known"] if kind == "floor" else args.shapes
                if kind != "scann":  # the ranker serves with `scann` only
                    shapes = [x for x in shapes if x != "reranked"]
                for shape in shapes:
                    results[kind][shape] = measure(
                        kind, port, args, generator, shape
                    )
            finally:
                process.terminate()
                process.wait(timeout=60)
        print(f"{kind}: {json.dumps(results[kind])}", file=sys.stderr)
    results["ratio"] = ratios(results, args.shapes)
    results["setup"] = {
        "items": args.items,
        "users": args.users,
        "dim": args.dim,
        "seconds_per_shape": args.seconds,
        "shapes": args.shapes,
        "closed_loop_connections": args.connections,
        "open_loop_rate": args.rate,
        "open_loop_rate_reranked": args.rerank_rate,
        "closed_loop_generator": generator,
        "open_loop_generator": "asyncio (raw HTTP/1.1, keep-alive)",
        "server": "recsys serve: one uvicorn worker, 127.0.0.1",
        "scann_options": options,
        "bundle_build_seconds": build_seconds,
    }
    results["machine"] = machine()
    print_json(results)
    if not args.bundle:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
