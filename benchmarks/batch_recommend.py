"""Batch recommendations: users per second, through ScaNN and exact search.

Runs `recsys.batch.recommend_all` (what `recsys recommend --all` runs) on a
two-tower bundle, once through its ScaNN index and once with exact search,
and reports users per second for each: the whole job, from the first chunk
to the renamed Parquet file (seen-item exclusion and writing included,
bundle loading excluded). MovieLens has few users (671), so the bundle's
users are repeated `--repeat` times to make a run long enough to time; each
mode runs `--runs` times and the JSON gives every run and the median.

With no `--bundle`, the default MovieLens config is trained into a
temporary directory first (a minute or so).

Usage:

```
python benchmarks/batch_recommend.py [--bundle artifacts/demo] [--k 10]
    [--repeat 20] [--runs 3] [--chunk 4096]
```
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile

import numpy as np
from _common import command_line
from _common import machine
from _common import print_json
from _common import run_child


def train_default(directory: str) -> str:
    """Trains the default MovieLens bundle; returns its path."""
    path = os.path.join(directory, "movielens_two_tower")
    run_child([sys.executable, "-m", "recsys", "train", "-o", path, "-q"])
    return path


def measure(bundle, users, output, *, k, exact, chunk):
    """One `recommend_all` run: its counts and timing."""
    from recsys.batch import recommend_all

    done = recommend_all(
        bundle,
        output,
        k=k,
        users=users,
        exact=exact,
        chunk=chunk,
        progress=False,
    )
    return {
        "seconds": round(done["seconds"], 4),
        "users_per_second": round(done["users_per_second"], 1),
        "rows": done["rows"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="A two-tower bundle directory.")
    parser.add_argument("--k", type=int, default=10, help="Items per user.")
    parser.add_argument(
        "--repeat", type=int, default=20, help="Passes over the users."
    )
    parser.add_argument("--runs", type=int, default=3, help="Runs of each.")
    parser.add_argument(
        "--chunk", type=int, default=4096, help="Users per chunk."
    )
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="recsys-batch-recommend-")
    try:
        path = args.bundle
        if path is None:
            print("training the default bundle...", file=sys.stderr)
            path = train_default(scratch)
        from recsys.bundles.two_tower import Bundle

        bundle = Bundle.load(path)
        users = np.tile(bundle.user_ids, args.repeat)
        output = os.path.join(scratch, "recs.parquet")
        result = {
            "command": command_line(),
            "machine": machine(),
            "bundle": path,
            "index_kind": bundle.metrics["index"]["kind"],
            "users": len(users),
            "distinct_users": len(bundle.user_ids),
            "items": len(bundle.item_ids),
            "k": args.k,
            "chunk": args.chunk,
        }
        for name, exact in (("index", False), ("exact", True)):
            # A warm-up pass: the first search pays one-off costs (pages
            # of the index, the BLAS threads) that a batch job pays once.
            measure(
                bundle,
                users[: args.chunk],
                output,
                k=args.k,
                exact=exact,
                chunk=args.chunk,
            )
            runs = [
                measure(
                    bundle,
                    users,
                    output,
                    k=args.k,
                    exact=exact,
                    chunk=args.chunk,
                )
                for _ in range(args.runs)
            ]
            result[name] = {
                "median_users_per_second": statistics.median(
                    run["users_per_second"] for run in runs
                ),
                "runs": runs,
            }
        result["index_speedup"] = round(
            result["index"]["median_users_per_second"]
            / result["exact"]["median_users_per_second"],
            2,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_json(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
