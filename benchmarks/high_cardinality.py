"""Training examples/s and peak RSS against the size of the user table.

Three systems train the same two-tower model (a user and an item embedding
table, dim 32, in-batch softmax summed over a batch of 2048, logQ
correction with each item's true sampling probability, accidental hits
removed, Adagrad 0.1) on the same random ids, drawn from a Zipf law
(exponent 1) over user tables of 100k, 1M and 10M rows and an item
table of 200k rows:

- `ours`: the package's default trainer. `build_two_tower` with
  `configs/synthetic_two_tower.toml` (user id against item id) and its
  compile options (XLA, 16 steps per call), fitted by `fit_two_tower` on
  numpy arrays for two epochs of `--steps` batches; the second is timed.
  Sparse row updates are on (the default). `ours_dense` is the same with
  `train.sparse_updates=false`, run at the smallest size only.
- `tfrs`: TensorFlow Recommenders 0.7.7 (the `bench` extra, tf-keras), the
  retrieval tutorial's model with integer ids (no `StringLookup`) and
  `tfrs.tasks.Retrieval`, compiled as the tutorial does (no XLA, one step
  per call), fitted on a batched, cached `tf.data` for two epochs; the
  second is timed.
- `keras`: plain Keras 3 on JAX, two `keras.layers.Embedding` and the loss
  above, with the package's compile options. Its step costs O(table
  rows), about 3k examples/s at 10M rows, so after a warm-up call of 16
  steps it times as many as that call says fit in `--seconds` (a multiple
  of 16, at most `--steps`).

Each (system, size) runs in its own subprocess, so its peak RSS
(`ru_maxrss`, read by the process itself) is its own; a child that fails
is recorded as `{"error": <stderr tail>}` and the rest go on. Prints one JSON
object: examples/s and peak RSS per system and size, and the ratios
`"ratio": {"tfrs_at_10M", "flatness_10M_vs_100k", "ours_over_tfrs",
"ours_over_keras"}` (ours over TFRS at 10M; ours at 10M over ours at
100k; per size).

Usage:

```
.venv/bin/python -m pip install -e ".[dev,bench]"   # TFRS, once
.venv/bin/python benchmarks/high_cardinality.py [--sizes 100000 1000000]
    [--systems ours tfrs keras ours_dense] [--steps 320] [--seconds 15]
```
"""

import argparse
import os
import sys
import time

import numpy as np
from _common import child_json_or_error
from _common import command_line
from _common import config_path
from _common import machine
from _common import peak_mb
from _common import print_json
from _common import script_command
from _common import zipf_ids

CONFIG = config_path("synthetic_two_tower.toml")
SYSTEMS = ("ours", "ours_dense", "tfrs", "keras")
USER, ITEM = "user_id", "item_id"
# `recsys.models.two_tower.SAMPLING_PROBABILITY`, spelled out so that the
# TFRS child never imports recsys (and with it Keras 3).
PROBABILITY = "candidate_sampling_probability"
SPARSE = {"ours": "true", "ours_dense": "false"}


def synthetic_inputs(args):
    """`--steps` batches of Zipf user and item ids (the same in every child)."""
    rng = np.random.default_rng(args.seed)
    count = args.steps * args.batch_size
    users, _ = zipf_ids(rng, args.size, count)
    items, probability = zipf_ids(rng, args.items, count)
    return {USER: users, ITEM: items, PROBABILITY: probability}


def child_ours(args):
    """The package's default trainer: `build_two_tower` + `fit_two_tower`."""
    import keras
    import pandas as pd

    from recsys.config import load_config
    from recsys.features import CategoricalFeature
    from recsys.features import Preprocessor
    from recsys.training.two_tower import build_two_tower
    from recsys.training.two_tower import fit_two_tower

    config = load_config(
        CONFIG,
        [
            f'model.candidate_features=["{ITEM}"]',
            f"model.embedding_dim={args.dim}",
            f"train.batch_size={args.batch_size}",
            f"train.learning_rate={args.learning_rate}",
            f"train.seed={args.seed}",
            "train.epochs=2",
            f"train.sparse_updates={SPARSE[args.child]}",
        ],
    )
    # Hashed vocabularies give tables of exactly `size` rows from a
    # two-row fit; learning 10M exact ids would put the fit's memory into
    # the peak RSS. The model is the same (one lookup table per tower).
    preprocessor = Preprocessor(
        features=[
            CategoricalFeature(
                USER, vocabulary="hash", num_buckets=args.size - 1
            ),
            CategoricalFeature(
                ITEM, vocabulary="hash", num_buckets=args.items - 1
            ),
        ]
    ).fit(pd.DataFrame({USER: ["a", "b"], ITEM: ["a", "b"]}))
    inputs = synthetic_inputs(args)
    keras.utils.set_random_seed(args.seed)
    model = build_two_tower(preprocessor, config)
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: losses.append(float(logs["loss"]))
    )
    timing = fit_two_tower(model, inputs, config, [record], progress=False)
    return {
        "examples_per_second": timing["examples_per_second"],
        "timed_steps": args.steps,
        "loss": losses[-1],
        "epoch_seconds": timing["epoch_seconds"],
    }


def child_tfrs(args):
    """The TFRS retrieval tutorial's model on integer ids (tf-keras)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow loads
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(args.seed)

    class TwoTower(tfrs.Model):
        def __init__(self):
            super().__init__()
            self.user_model = tf.keras.layers.Embedding(args.size, args.dim)
            self.item_model = tf.keras.layers.Embedding(args.items, args.dim)
            self.task = tfrs.tasks.Retrieval(
                metrics=None, remove_accidental_hits=True
            )

        def compute_loss(self, features, training=False):
            return self.task(
                self.user_model(features[USER]),
                self.item_model(features[ITEM]),
                candidate_sampling_probability=features[PROBABILITY],
                candidate_ids=features[ITEM],
                compute_metrics=False,
            )

    # As benchmarks/tfrs_baseline.py: batch and cache, so the second epoch
    # replays batches from memory and the input pipeline is not timed.
    dataset = (
        tf.data.Dataset.from_tensor_slices(synthetic_inputs(args))
        .batch(args.batch_size)
        .cache()
    )
    model = TwoTower()
    model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
    seconds = []
    timer = tf.keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seconds.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: seconds.append(
            time.perf_counter() - seconds.pop()
        ),
    )
    history = model.fit(dataset, epochs=2, verbose=0, callbacks=[timer])
    return {
        "examples_per_second": args.steps * args.batch_size / seconds[-1],
        "timed_steps": args.steps,
        "loss": float(history.history["loss"][-1]),
        "epoch_seconds": seconds,
        "tfrs_version": tfrs.__version__,
        "tensorflow_version": tf.__version__,
    }


def child_keras(args):
    """Plain Keras 3: two `Embedding` layers and the loss, XLA on JAX."""
    import keras
    from keras import ops

    class PlainTwoTower(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.user_embedding = keras.layers.Embedding(args.size, args.dim)
            self.item_embedding = keras.layers.Embedding(args.items, args.dim)

        def call(self, x):
            return self.user_embedding(x[USER]), self.item_embedding(x[ITEM])

        def compute_loss(
            self, x=None, y=None, y_pred=None, sample_weight=None, training=True
        ):
            users, items = y_pred
            log_q = ops.log(x[PROBABILITY])
            logits = ops.matmul(users, ops.transpose(items)) - log_q[None, :]
            positives = ops.sum(users * items, axis=-1) - log_q
            ids, rows = x[ITEM], ops.arange(ops.shape(users)[0])
            hits = ops.logical_and(
                ops.equal(ids[:, None], ids[None, :]),
                ops.not_equal(rows[:, None], rows[None, :]),
            )
            logits = ops.where(hits, -1e9, logits)
            return ops.sum(ops.logsumexp(logits, axis=-1) - positives)

    inputs = synthetic_inputs(args)

    def fit(first, steps):
        rows = slice(first * args.batch_size, (first + steps) * args.batch_size)
        start = time.perf_counter()
        history = model.fit(
            {k: v[rows] for k, v in inputs.items()},
            batch_size=args.batch_size,
            verbose=0,
        )
        return time.perf_counter() - start, history.history["loss"][-1]

    keras.utils.set_random_seed(args.seed)
    model = PlainTwoTower()
    # The package's compile options, so that the table update is the one
    # difference (1 step per call would make plain Keras 40% slower at 100k).
    model.compile(
        optimizer=keras.optimizers.Adagrad(args.learning_rate),
        jit_compile=True,
        steps_per_execution=16,
    )
    warm_up, _ = fit(0, 16)  # traces and compiles, then times the rest
    steps = int(np.clip(args.seconds * 16 / warm_up, 16, args.steps))
    steps = steps // 16 * 16
    seconds, loss = fit(0, steps)
    return {
        "examples_per_second": steps * args.batch_size / seconds,
        "timed_steps": steps,
        "loss": float(loss),
    }


def _run_child(system, size, args):
    """One (system, size) run; `{"error": <stderr tail>}` if it failed."""
    options = ["--child", system, "--size", size]
    for name in ("items", "dim", "batch_size", "learning_rate", "steps"):
        options += [f"--{name.replace('_', '-')}", getattr(args, name)]
    options += ["--seconds", args.seconds, "--seed", args.seed]
    return child_json_or_error(script_command(__file__, *options))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000]
    )
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument(
        "--steps", type=int, default=320, help="Timed batches (keras: at most)."
    )
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="Timed span of `keras`."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Whole compiled calls of 16 steps (the package's steps_per_execution).
    args.steps = -(-args.steps // 16) * 16
    if args.child:
        if args.child != "tfrs":
            os.environ["KERAS_BACKEND"] = "jax"
        run = {"tfrs": child_tfrs, "keras": child_keras}.get(
            args.child, child_ours
        )
        result = run(args)
        result["peak_rss_mb"] = peak_mb()
        print_json(result, indent=None)
        return

    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown --systems {unknown}; choose from {SYSTEMS}")
    sizes = sorted(args.sizes)
    results = {system: {} for system in args.systems}
    for size in sizes:
        for system in args.systems:
            if system == "ours_dense" and size != sizes[0]:
                continue
            results[system][str(size)] = _run_child(system, size, args)
            print(system, size, results[system][str(size)], file=sys.stderr)

    def ratio(top, bottom, size, size_bottom=None):
        a = results.get(top, {}).get(str(size), {})
        b = results.get(bottom, {}).get(str(size_bottom or size), {})
        if "examples_per_second" in a and "examples_per_second" in b:
            return a["examples_per_second"] / b["examples_per_second"]
        return None

    setting = {k: v for k, v in vars(args).items() if v is not None}
    setting["ids"] = "zipf (exponent 1), the same in every child"
    setting["loss"] = "in-batch softmax summed, logQ, accidental hits removed"
    output = {
        "command": command_line(),
        "machine": machine(),
        "setting": setting,
        "results": results,
        "ratio": {
            "tfrs_at_10M": ratio("ours", "tfrs", 10_000_000),
            "flatness_10M_vs_100k": ratio("ours", "ours", 10**7, 10**5),
            "ours_over_tfrs": {s: ratio("ours", "tfrs", s) for s in sizes},
            "ours_over_keras": {s: ratio("ours", "keras", s) for s in sizes},
            "ours_over_ours_dense": ratio("ours", "ours_dense", sizes[0]),
        },
    }
    print_json(output)


if __name__ == "__main__":
    main()
