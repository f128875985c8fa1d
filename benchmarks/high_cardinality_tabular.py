"""Tabular and text training examples/s against the size of their tables.

The companion of `high_cardinality.py` for the other two model kinds:

- `tabular`: the `TabularModel` of `configs/movielens_liked.toml` (DCN, two
  cross layers, hidden 64-32, wide biases, Adagrad 0.1, batch 256) on a
  table with a hashed id column of `--buckets` rows (5M: a device or
  cookie id) beside a 1,000-value site column and a numeric column;
- `text`: the default `TextClassifier` (`mean_pool`, dim 64, Adam 0.001,
  batch 32, 40 tokens) over a vocabulary of `--vocab` rows.

Ids are Zipf-distributed (`_common.zipf_ids`). Each (kind, table
size, sparse or dense) runs in its own subprocess; the first epoch
compiles, the second is timed. Prints one JSON object with examples/s and
peak RSS per run, and per kind `"flatness"` (large table over small, sparse
updates) and `"sparse_over_dense"` at the large table.

Usage:

```
.venv/bin/python benchmarks/high_cardinality_tabular.py
```
"""

import argparse
import os
import sys
import time

import numpy as np
from _common import child_json_or_error
from _common import machine
from _common import peak_mb
from _common import print_json
from _common import script_command
from _common import zipf_ids


def _timed_fit(model, x, y, batch_size):
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {
        "examples_per_second": len(y) / seconds,
        "loss": float(history.history["loss"][-1]),
    }


def child(args):
    import keras

    from recsys.models import TabularModel
    from recsys.models import TextClassifier

    rng = np.random.default_rng(args.seed)
    keras.utils.set_random_seed(args.seed)
    if args.kind == "tabular":
        rows = args.steps * 256
        ids, _ = zipf_ids(rng, args.size, rows)
        x = {
            "device": ids,
            "site": rng.integers(1, 1000, rows),
            "hour": rng.normal(size=rows).astype("float32"),
        }
        y = ((ids % 7 < 3) ^ (x["site"] % 2 == 0)).astype("float32")
        model = TabularModel(
            [
                {
                    "name": "device",
                    "type": "embedding",
                    "input_dim": args.size,
                    "output_dim": 16,
                },
                {
                    "name": "site",
                    "type": "embedding",
                    "input_dim": 1000,
                    "output_dim": 8,
                },
                {"name": "hour", "type": "numeric"},
            ],
            interaction="dcn",
            hidden_units=[64, 32],
        )
        optimizer, batch_size = keras.optimizers.Adagrad(0.1), 256
    else:
        rows = args.steps * 32
        ids, _ = zipf_ids(rng, args.size, rows * 40)
        x = ids.reshape(rows, 40)
        y = (x[:, 0] % 2).astype("float32")
        model = TextClassifier(args.size, 40)
        optimizer, batch_size = keras.optimizers.Adam(0.001), 32
    model.sparse_updates = args.sparse == "true"
    model.compile(optimizer=optimizer, loss=model.default_loss())
    result = _timed_fit(model, x, y, batch_size)
    return {**result, "peak_rss_mb": peak_mb()}


def _run(kind, size, sparse, args):
    command = script_command(
        __file__,
        *("--child", kind, "--size", size, "--sparse", sparse),
        *("--steps", args.steps, "--seed", args.seed),
    )
    print(f"{kind} {size:,} rows, sparse={sparse}", file=sys.stderr)
    return child_json_or_error(
        command, env={**os.environ, "KERAS_BACKEND": "jax"}
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--buckets", type=int, nargs=2, default=[50_000, 5_000_000]
    )
    parser.add_argument(
        "--vocab", type=int, nargs=2, default=[20_000, 2_000_000]
    )
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=("tabular", "text"))
    parser.add_argument("--size", type=int)
    parser.add_argument("--sparse", choices=("true", "false"))
    args = parser.parse_args()
    if args.child:
        args.kind = args.child
        print_json(child(args), indent=None)
        return
    results, ratio = {}, {}
    for kind, (small, large) in (
        ("tabular", args.buckets),
        ("text", args.vocab),
    ):
        runs = {
            f"{size}_{sparse}": _run(kind, size, sparse, args)
            for size, sparse in (
                (small, "true"),
                (large, "true"),
                (large, "false"),
            )
        }
        results[kind] = runs
        speed = {k: v.get("examples_per_second") for k, v in runs.items()}
        if all(speed.values()):
            ratio[kind] = {
                "flatness": speed[f"{large}_true"] / speed[f"{small}_true"],
                "sparse_over_dense": speed[f"{large}_true"]
                / speed[f"{large}_false"],
            }
    print_json({"machine": machine(), "results": results, "ratio": ratio})


if __name__ == "__main__":
    main()
