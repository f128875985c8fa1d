"""Streaming at scale: synthetic 1M, 4M and 10M interactions, one JSON.

For each size, `recsys synth` (500k users, 200k items) runs in one
subprocess and the streamed training of `configs/synthetic_two_tower.toml`
in another, so each peak RSS (`ru_maxrss`, read by the process itself) is
that stage's alone. Reported per size: wall time per stage (synth, scan,
vocab, train, seen, embed, index, evaluate, write), training examples/s,
peak RSS, HR@k on the held-out end of the time span and recall@100 against
the generator's ground truth, each beside the popularity baseline. Then the
ratios the goal is stated in: peak RSS at the largest size over the smallest
(goal: at most 1.3) and seconds per row of each stage (linear time: equal).

`--inputs` adds the measurement behind the input pipeline: one epoch of the
same model over the smallest data set streamed by `InteractionBatches`
against the same rows held in memory as numpy arrays, in one process.
`--tables` adds examples/s of the same model on random ids with the full
user table and with one 10x smaller, which shows what the table costs.

Usage:

```
.venv/bin/python benchmarks/scale.py                       # 1M, 4M, 10M
.venv/bin/python benchmarks/scale.py --sizes 1000000 --inputs
```
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from _common import child_json
from _common import command_line
from _common import config_path
from _common import machine
from _common import peak_mb
from _common import print_json
from _common import script_command

CONFIG = config_path("synthetic_two_tower.toml")


def child_synth(args):
    from recsys.data.synthetic import SyntheticInteractions

    start = time.perf_counter()
    SyntheticInteractions(
        args.users, args.items, args.size, seed=args.seed
    ).write(args.data, progress=False)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_mb()}


def child_train(args):
    import recsys

    config = recsys.load_config(CONFIG, [f"data.path={args.data}", *args.set])
    start = time.perf_counter()
    # A Parquet data.path: recsys.train streams it.
    metrics = recsys.train(config, args.output, progress=False).metrics
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": peak_mb(),
        "stages": metrics["stages"],
        "peak_rss_mb_after": metrics["peak_rss_mb_after"],
        "examples_per_second": metrics["train"]["examples_per_second"],
        "train_rows": metrics["data"]["train_rows"],
        "data": metrics["data"],
        "test": metrics["test"],
        "baseline_popularity": metrics["baseline_popularity"],
        "ground_truth": metrics["ground_truth"],
        "index": metrics["index"],
    }


def child_inputs(args):
    import keras
    import numpy as np

    from recsys.config import load_config
    from recsys.kinds.two_tower_streamed import open_source
    from recsys.kinds.two_tower_streamed import scan_vocabulary
    from recsys.kinds.two_tower_streamed import split_bounds
    from recsys.kinds.two_tower_streamed import training_batches
    from recsys.training.two_tower import build_two_tower
    from recsys.training.two_tower import fit_two_tower

    config = load_config(CONFIG, [f"data.path={args.data}", *args.set])
    source = open_source(config)
    streamed = scan_vocabulary(
        config, source, split_bounds(source, config), progress=False
    )
    batches = training_batches(streamed)
    parts = [batches[i] for i in range(len(batches))]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    del parts
    result = {"rows": int(len(batches) * batches.batch_size)}
    # Two epochs each: the second, after compilation, is the one timed.
    config["train"]["epochs"] = 2
    for name, inputs in (("streamed", batches), ("in_memory", arrays)):
        keras.utils.set_random_seed(0)
        model = build_two_tower(streamed.preprocessor, config)
        timing = fit_two_tower(model, inputs, config, progress=False)
        result[name] = timing["examples_per_second"]
    result["streamed_over_in_memory"] = result["streamed"] / result["in_memory"]
    return result


def child_tables(args):
    """Examples/s of the model at two user-table sizes, random ids."""
    import keras
    import numpy as np
    import pandas as pd

    from recsys.config import load_config
    from recsys.features import CategoricalFeature
    from recsys.features import Preprocessor
    from recsys.names import SAMPLING_PROBABILITY
    from recsys.training.two_tower import build_two_tower

    config = load_config(CONFIG, args.set)
    batch = config["train"]["batch_size"]
    rows = batch * 48
    rng = np.random.default_rng(0)
    result = {"items": args.items, "batch_size": batch}
    for users in (args.users, args.users // 10):
        ids = np.arange(max(users, args.items))
        pre = Preprocessor(
            features=[
                CategoricalFeature("user_id"),
                CategoricalFeature("item_id"),
                CategoricalFeature("category"),
            ]
        ).fit(
            pd.DataFrame(
                {
                    "user_id": ids % users,
                    "item_id": ids % args.items,
                    "category": ids % 10,
                }
            )
        )
        x = {
            "user_id": rng.integers(1, users, rows).astype(np.int32),
            "item_id": rng.integers(1, args.items, rows).astype(np.int32),
            "category": rng.integers(1, 10, rows).astype(np.int32),
            SAMPLING_PROBABILITY: np.full(rows, 1e-5, np.float32),
        }
        keras.utils.set_random_seed(0)
        model = build_two_tower(pre, config)
        model.fit(x, batch_size=batch, epochs=1, verbose=0)  # compiles
        start = time.perf_counter()
        model.fit(x, batch_size=batch, epochs=1, verbose=0)
        result[f"users_{users}"] = rows / (time.perf_counter() - start)
    return result


def _run_child(mode, *extra):
    return child_json(script_command(__file__, "--child", mode, *extra))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1_000_000, 4_000_000, 10_000_000],
    )
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set", action="append", default=[], help="Config override."
    )
    parser.add_argument("--workdir", help="Default: a temporary directory.")
    parser.add_argument(
        "--inputs", action="store_true", help="Also streamed vs in memory."
    )
    parser.add_argument(
        "--tables",
        action="store_true",
        help="Also examples/s with a 10x smaller user table (random ids).",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ.setdefault("KERAS_BACKEND", "jax")
        run = {
            "synth": child_synth,
            "train": child_train,
            "inputs": child_inputs,
            "tables": child_tables,
        }[args.child]
        print_json(run(args), indent=None)
        return

    workdir = args.workdir or tempfile.mkdtemp(prefix="recsys-scale-")
    common = ["--users", str(args.users), "--items", str(args.items)]
    common += ["--seed", str(args.seed)]
    for assignment in args.set:
        common += ["--set", assignment]
    results = []
    try:
        for size in args.sizes:
            data = os.path.join(workdir, f"synth_{size}")
            shutil.rmtree(data, ignore_errors=True)
            synth = _run_child(
                "synth", "--size", str(size), "--data", data, *common
            )
            train = _run_child(
                "train",
                "--data",
                data,
                "--output",
                os.path.join(workdir, f"bundle_{size}"),
                *common,
            )
            results.append(
                {"interactions": size, "synth": synth, "train": train}
            )
            print(json.dumps(results[-1]), file=sys.stderr)
        inputs = tables = None
        if args.inputs:
            data = os.path.join(workdir, f"synth_{args.sizes[0]}")
            inputs = _run_child("inputs", "--data", data, *common)
        if args.tables:
            tables = _run_child("tables", *common)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    first, last = results[0], results[-1]
    stages = list(first["train"]["stages"])
    per_row = {
        stage: [
            r["train"]["stages"][stage] / r["interactions"] * 1e6
            for r in results
        ]
        for stage in stages
    }
    per_row["synth"] = [
        r["synth"]["seconds"] / r["interactions"] * 1e6 for r in results
    ]
    print_json(
        {
            "command": command_line(),
            "machine": machine(),
            "users": args.users,
            "items": args.items,
            "sizes": results,
            "peak_rss_ratio_largest_over_smallest": (
                last["train"]["peak_rss_mb"] / first["train"]["peak_rss_mb"]
            ),
            "seconds_per_million_rows": per_row,
            "inputs": inputs,
            "tables": tables,
        }
    )


if __name__ == "__main__":
    main()
