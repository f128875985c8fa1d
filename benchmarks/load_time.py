"""Time to load a bundle and recommend, and to serve a first answer.

Measures the paths a user waits on, each in a fresh child process (a warm
interpreter would hide the imports):

- `load_recommend`: `import recsys; recsys.load_bundle(P).recommend([1],
  k=10)`. `seconds` is measured inside the child, from before
  `import recsys` to after the answer; `wall_seconds` by this script, from
  starting the child to its exit (interpreter start-up included). The
  child also reports which of TensorFlow, Keras and JAX it imported: none
  is needed to load a two-tower bundle and recommend for known users.
- `serve`: `recsys serve P` on a free loopback port; seconds from starting
  it to the first answered `POST /v1/retrieve` for a known user
  (`first_answer_seconds`), and to the first answered query with
  `features`, which needs the query tower that loads in the background
  (`first_features_answer_seconds`).
- `import_top`: the modules with the largest cumulative import time in one
  more `load_recommend` child run with `python -X importtime`.

Each measurement runs `--runs` times; the JSON gives every run and the
median. With no `--bundle`, the default MovieLens config is trained into
a temporary directory first (a minute or so).

Usage:

```
python benchmarks/load_time.py [--bundle artifacts/demo] [--runs 3]
```
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from _common import child_json
from _common import command_line
from _common import machine
from _common import print_json
from _common import run_child

HEAVY = ("tensorflow", "keras", "jax")
# How long a server may take to answer before the run counts as failed.
SERVE_TIMEOUT = 120
IMPORT_TOP = 15


# The child: nothing but the user's one-liner, timed from before
# `import recsys`; prints one JSON line.
CHILD = f"""
import json, sys, time
started = time.perf_counter()
import recsys
recsys.load_bundle(sys.argv[1]).recommend([1], k=10)
seconds = time.perf_counter() - started
imported = {{name: name in sys.modules for name in {HEAVY!r}}}
print(json.dumps({{"seconds": seconds, "imported": imported}}))
"""


def _child(bundle, *options):
    return [sys.executable, *options, "-c", CHILD, bundle]


def _child_env():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_BACKEND", None)  # recsys's own default (JAX)
    return env


def measure_load(bundle):
    started = time.perf_counter()
    result = child_json(_child(bundle), env=_child_env())
    return {**result, "wall_seconds": time.perf_counter() - started}


def import_top(bundle):
    """The slowest imports (cumulative) of one load-and-recommend child."""
    done = run_child(_child(bundle, "-X", "importtime"), env=_child_env())
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((int(cumulative) / 1e6, depth, name.strip()))
    # The one-liner's imports and what they import directly.
    rows = sorted((r for r in rows if r[1] <= 1), reverse=True)
    return [
        {"module": name, "seconds": round(seconds, 3)}
        for seconds, _, name in rows[:IMPORT_TOP]
    ]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port, body):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/retrieve",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=SERVE_TIMEOUT) as answer:
        return json.loads(answer.read())


def measure_serve(bundle, features):
    """Seconds from `recsys serve` to the first known-user and features
    answers."""
    port = _free_port()
    command = [sys.executable, "-m", "recsys.cli", "serve", bundle]
    command += ["--port", str(port), "--log-level", "warning"]
    started = time.perf_counter()
    server = subprocess.Popen(
        command,
        env=_child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while True:
            try:
                _post(port, {"user_id": 1, "k": 10})
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None:
                    raise RuntimeError(server.stderr.read()[-3000:]) from None
                if time.perf_counter() - started > SERVE_TIMEOUT:
                    raise
                time.sleep(0.02)
        first = time.perf_counter() - started
        _post(port, {"features": features, "k": 10})
        return {
            "first_answer_seconds": first,
            "first_features_answer_seconds": time.perf_counter() - started,
        }
    finally:
        server.terminate()
        server.wait()


def _median(runs, key):
    return statistics.median(run[key] for run in runs)


def train_default(directory):
    """Trains the default MovieLens bundle; returns its path."""
    path = os.path.join(directory, "movielens_two_tower")
    command = [sys.executable, "-m", "recsys.cli", "train"]
    run_child([*command, "--output", path, "--quiet"], env=_child_env())
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="A two-tower bundle directory.")
    parser.add_argument("--runs", type=int, default=3, help="Runs of each.")
    args = parser.parse_args()
    scratch = None
    bundle = args.bundle
    if bundle is None:
        scratch = tempfile.mkdtemp(prefix="recsys-load-time-")
        print("training the default bundle...", file=sys.stderr)
        bundle = train_default(scratch)
    try:
        with open(os.path.join(bundle, "manifest.json")) as f:
            config = json.load(f)["config"]
        # A query with features: the first known user's query features
        # are not known here, so the tower gets an unseen user id.
        features = {name: 0 for name in config["model"]["query_features"]}
        load_runs = [measure_load(bundle) for _ in range(args.runs)]
        serve_runs = [measure_serve(bundle, features) for _ in range(args.runs)]
        result = {
            "command": command_line(),
            "machine": machine(),
            "bundle": bundle,
            "load_recommend": {
                "median_seconds": _median(load_runs, "seconds"),
                "median_wall_seconds": _median(load_runs, "wall_seconds"),
                "tensorflow_imported": any(
                    run["imported"]["tensorflow"] for run in load_runs
                ),
                "runs": load_runs,
            },
            "serve": {
                "median_first_answer_seconds": _median(
                    serve_runs, "first_answer_seconds"
                ),
                "median_first_features_answer_seconds": _median(
                    serve_runs, "first_features_answer_seconds"
                ),
                "runs": serve_runs,
            },
            "import_top": import_top(bundle),
        }
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    print_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
