"""Tabular training time against the number of categorical columns.

A survey or a one-hot export has hundreds of categorical columns of a few
values each. `TabularModel(stacked=False)` (every model saved before
`recsys.layers.EmbeddingStack`) keeps a table per column: a lookup, a bias
table, a gradient and optimizer slots per column, which XLA compiles
column by column. `stacked=True` (what `recsys train` builds) keeps one
table per vector width. For each number of columns and each layout, a
subprocess builds the model `recsys train` would by default (`"mlp"`
interaction, hidden 64-32, wide biases, Adam 0.001, batch 256; columns of
3-7 values, widths by `Preprocessor.embedding_dim`'s rule) and fits it:
the first epoch (tracing and compiling the step) and the second (steady
state) are timed apart, with the process's peak RSS.

Usage:

```
.venv/bin/python benchmarks/wide_tables.py --columns 30 300 1000
```

Prints one JSON object: per run, seconds of the first and second epochs
and peak RSS; per number of columns, the per-column layout's times over
the stacked one's.
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


def child(args):
    import keras

    from recsys.features.specs import default_embedding_dim
    from recsys.models import TabularModel

    rng = np.random.default_rng(args.seed)
    keras.utils.set_random_seed(args.seed)
    sizes = rng.integers(3, 8, args.columns)
    x = {
        f"c{i}": rng.integers(1, n + 1, args.rows) for i, n in enumerate(sizes)
    }
    y = ((x["c0"] + x["c1"]) % 2).astype("float32")
    inputs = [
        {
            "name": f"c{i}",
            "type": "embedding",
            "input_dim": int(n) + 2,  # missing and unknown values
            "output_dim": default_embedding_dim(int(n) + 2),
        }
        for i, n in enumerate(sizes)
    ]
    model = TabularModel(
        inputs,
        hidden_units=[64, 32],
        stacked=args.layout == "stacked",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.001),
        loss=model.default_loss(),
        jit_compile=True,
    )
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        model.fit(x, y, batch_size=256, epochs=1, verbose=0)
        seconds.append(time.perf_counter() - start)
    return {
        "first_epoch_s": seconds[0],
        "second_epoch_s": seconds[1],
        "examples_per_second": args.rows / seconds[1],
        "peak_rss_mb": peak_mb(),
    }


def _run(columns, layout, args):
    command = script_command(
        __file__,
        *("--child", layout, "--columns", columns),
        *("--rows", args.rows, "--seed", args.seed),
    )
    print(f"{columns} columns, {layout}", file=sys.stderr)
    return child_json_or_error(
        command, env={**os.environ, "KERAS_BACKEND": "jax"}
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--columns", type=int, nargs="+", default=[30, 300])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=("per_column", "stacked"))
    args = parser.parse_args()
    if args.child:
        args.layout = args.child
        print_json(child(args), indent=None)
        return
    results, ratio = {}, {}
    for columns in args.columns:
        runs = {
            layout: _run(columns, layout, args)
            for layout in ("per_column", "stacked")
        }
        results[columns] = runs
        if not any("error" in run for run in runs.values()):
            ratio[columns] = {
                key: runs["per_column"][key] / runs["stacked"][key]
                for key in ("first_epoch_s", "second_epoch_s", "peak_rss_mb")
            }
    print_json(
        {
            "machine": machine(),
            "rows": args.rows,
            "results": results,
            "per_column_over_stacked": ratio,
        }
    )


if __name__ == "__main__":
    main()
