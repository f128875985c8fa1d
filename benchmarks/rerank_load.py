"""Load test of reranked retrieval: the numpy ranker and micro-batching.

Serves a two-tower bundle with a ranker (`recsys serve BUNDLE --ranker
RANKER`, one uvicorn worker, loopback) as two targets, one after the
other, and sends known users (varying) `{"user_id", "k": 10, "rerank":
true}`: 100 candidates each (the default), taken from the top-items
table, reordered by the ranker:

- `after`: the service as it ships: the ranker evaluated by
  `recsys.serving.fast_ranker.NumpyRanker` (inputs looked up by a
  `PairEncoder`), concurrent reranked requests sharing one ranker call
  (`RECSYS_BATCH_WINDOW_MS`, default 1 ms);
- `blas_per_call` (not run by default): `after` with BLAS limited to
  one thread around each ranker call only, not for the server's lifetime
  (`Reranker.serving`): what holding the limit brings;
- `before`: the Keras ranker (`TabularBundle.score_pairs`: a pandas frame
  of the pairs, the preprocessor, Keras `predict`, one call at a time
  behind a lock) and `RECSYS_BATCH_WINDOW_MS=0` (each request alone), as
  before both existed.

Each target gets a closed loop (32 connections back to back; wrk when
installed, else an asyncio client) and an open loop at `--rate` req/s on a
fixed schedule (latency from the scheduled time, so queueing shows), with
the client of `benchmarks/serve_load.py`. `ratio` is after / before of the
closed-loop req/s. `ranker_call_ms` times the ranker alone, in a child
process: one request's 100 candidates, and 32 requests' 3,200 in one call,
by Keras (as served before) and numpy.

Prints one JSON object. Defaults: the bundles of `make demo` and
`recsys train configs/movielens_liked.toml`.

Usage:

```
python benchmarks/rerank_load.py [--bundle artifacts/demo]
    [--ranker artifacts/movielens_liked] [--seconds 10] [--rate 500]
    [--no-open-loop]
```
"""

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import child_json
from _common import machine
from _common import print_json
from _common import script_command
from serve_load import _free_port
from serve_load import closed_loop
from serve_load import open_loop
from serve_load import wait_listening
from serve_load import warmed_up
from serve_load import wrk_closed_loop

TARGETS = ("after", "before", "blas_per_call")
CANDIDATES = 100  # the service's default for k=10


def bodies(user_ids, count, seed=0):
    """`count` reranked request bodies of known users, users varying."""
    rng = np.random.default_rng(seed)
    return [
        json.dumps({"user_id": int(u), "k": 10, "rerank": True}).encode()
        for u in rng.choice(user_ids, count)
    ]


def start_server(target, bundle, ranker, log):
    """`recsys serve BUNDLE --ranker RANKER` as `target` (a child)."""
    port = _free_port()
    env = {**os.environ}
    if target == "before":
        env["RECSYS_BATCH_WINDOW_MS"] = "0"
    command = script_command(
        __file__,
        "--server",
        target,
        port,
        "--bundle",
        bundle,
        "--ranker",
        ranker,
    )
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    return wait_listening(process, port, target, log), port


def serve(target, port, bundle, ranker):
    """Runs `recsys serve`, its ranker as `target` serves it."""
    from recsys.bundles import load_bundle
    from recsys.serving import server
    from recsys.serving.reranker import Reranker

    class Served(Reranker):
        @classmethod
        def load(cls, path, **options):
            return cls(load_bundle(path), fast=target != "before")

        def serving(self):
            if target == "blas_per_call":
                return contextlib.nullcontext()
            return super().serving()

    # `serve` loads the ranker with `Reranker.load`: everything else is
    # the command as it ships.
    server.Reranker = Served  # type: ignore[misc]
    server.serve(bundle, port=port, ranker=ranker, log_level="warning")


def measure(port, args, generator, user_ids):
    """Closed, then open loop, of reranked requests (as serve_load does)."""
    # The load generator's own collections would pause it mid-measure.
    gc.collect()
    gc.disable()
    try:
        sent = bodies(user_ids, 100_000)
        asyncio.run(closed_loop(port, 8, 2, sent))  # warm up
        if generator == "wrk":
            closed = wrk_closed_loop(port, args.connections, args.seconds, sent)
        else:
            closed = asyncio.run(
                closed_loop(port, args.connections, args.seconds, sent)
            )
        result = {"closed_loop": closed}
        if args.open_loop:
            sent = bodies(user_ids, 100_000, seed=1)
            asyncio.run(open_loop(port, args.rate, 1, sent))  # warm up
            result["open_loop"] = asyncio.run(
                open_loop(port, args.rate, args.seconds, sent)
            )
        return result
    finally:
        gc.enable()


def ranker_call_ms(ranker, repeats=30):
    """Milliseconds per ranker call, Keras (padded, locked) and numpy."""
    from recsys.bundles import load_bundle
    from recsys.serving.one_blas_thread import ONE_BLAS_THREAD
    from recsys.serving.reranker import _ServedRanker

    bundle = load_bundle(ranker)
    users = bundle.users[bundle.user_column].to_numpy()
    items = bundle.items[bundle.item_column].to_numpy()
    rng = np.random.default_rng(0)
    out = {}
    keras = _ServedRanker(bundle, fast=False)
    fast = _ServedRanker(bundle, fast=True)
    if fast.kind != "numpy":
        raise RuntimeError(f"{ranker}: the numpy ranker refused this model")
    for requests in (1, 32):
        user_ids = np.repeat(rng.choice(users, requests), CANDIDATES)
        item_ids = rng.choice(items, requests * CANDIDATES)
        user_ids = user_ids.astype(object)
        for name, scorer in (("keras", keras), ("numpy", fast)):
            scorer.score_pairs(user_ids, item_ids)  # compiles, warms
            # As a server holds it (`Reranker.serving`): one BLAS thread.
            held = (
                ONE_BLAS_THREAD if scorer is fast else contextlib.nullcontext()
            )
            with held:
                started = time.perf_counter()
                for _ in range(repeats):
                    scorer.score_pairs(user_ids, item_ids)
                seconds = (time.perf_counter() - started) / repeats
            out[f"{name}_{requests}x{CANDIDATES}"] = seconds * 1e3
        np.testing.assert_allclose(
            fast.score_pairs(user_ids, item_ids),
            keras.score_pairs(user_ids, item_ids),
            rtol=1e-4,
            atol=1e-5,
        )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default="artifacts/demo")
    parser.add_argument("--ranker", default="artifacts/movielens_liked")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rate", type=int, default=500, help="Open loop req/s."
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=["after", "before"],
        choices=TARGETS,
    )
    parser.add_argument(
        "--no-open-loop",
        dest="open_loop",
        action="store_false",
        help="Closed loop only.",
    )
    parser.add_argument("--server", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--micro", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.server:
        target, port = args.server
        serve(target, int(port), args.bundle, args.ranker)
        return
    if args.micro:
        print(json.dumps(ranker_call_ms(args.ranker)))
        return
    user_ids = np.load(
        os.path.join(args.bundle, "user_ids.npy"), allow_pickle=False
    )
    generator = "wrk" if shutil.which("wrk") else "asyncio"
    workdir = tempfile.mkdtemp(prefix="rerank-load-")
    results = {}
    for target in args.targets:
        with open(os.path.join(workdir, f"{target}.log"), "w") as log:
            started = time.time()
            process, port = start_server(target, args.bundle, args.ranker, log)
            try:
                results[target] = {"warm_seconds": warmed_up(port, started)}
                results[target]["reranked"] = measure(
                    port, args, generator, user_ids
                )
            finally:
                process.terminate()
                process.wait(timeout=60)
        print(f"{target}: {json.dumps(results[target])}", file=sys.stderr)
    rates = {
        t: results[t]["reranked"]["closed_loop"]["throughput"] for t in results
    }
    results["ratio"] = {
        f"closed_loop_after_over_{t}": rates["after"] / rates[t]
        for t in rates
        if t != "after" and "after" in rates
    }
    results["ranker_call_ms"] = child_json(
        script_command(__file__, "--micro", "--ranker", args.ranker)
    )
    results["setup"] = {
        "bundle": args.bundle,
        "ranker": args.ranker,
        "request": {"k": 10, "rerank": True, "candidates": CANDIDATES},
        "users": int(len(user_ids)),
        "seconds": args.seconds,
        "closed_loop_connections": args.connections,
        "open_loop_rate": args.rate,
        "closed_loop_generator": generator,
        "server": "recsys serve --ranker: one uvicorn worker, 127.0.0.1",
    }
    results["machine"] = machine()
    print_json(results)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
