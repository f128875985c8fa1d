"""Training examples/s of the default model under JAX and TensorFlow.

Trains configs/movielens_two_tower.toml (79,748 examples per epoch) as
`recsys train` does (`recsys.train(config, write=False)`) on whatever device
each backend finds (a GPU when one is visible, else the CPU) and reports
the fit's examples/s over the epochs after the first (which traces and
compiles). Each backend runs in its own subprocess (the Keras backend is
fixed per process); the runs alternate, JAX then TensorFlow, `--repeats`
times, so both see the same machine load. `--precisions` adds mixed
precision runs (`train.mixed_precision`: `off`, `float16`, `bfloat16`).

Prints one JSON object: `{"runs": [...], "median": {backend/precision:
examples/s}, "ratio_tensorflow_to_jax"}`, each run naming its device.

Usage:

```
python benchmarks/train_throughput.py [--repeats 2] [--epochs 3]
    [--precisions off,bfloat16] [--backends jax,tensorflow]
    [--set KEY=VALUE ...]
```
"""

import argparse
import os
import statistics
import sys

from _common import child_json
from _common import config_path
from _common import machine
from _common import print_json
from _common import script_command

DEFAULT_CONFIG = config_path("movielens_two_tower.toml")


def _device():
    """The device Keras trains on, in words."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}:{device.device_kind}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"gpu:{gpus[0].name}" if gpus else "cpu"


def worker(args):
    """One backend's run (in a subprocess): prints a JSON line."""
    import recsys

    config = recsys.load_config(
        DEFAULT_CONFIG,
        [
            *args.set,
            f"train.epochs={args.epochs}",
            f'train.mixed_precision="{args.precision}"',
        ],
    )
    # What `recsys train` runs, in memory; only the fit's timing is kept.
    timing = recsys.train(config, progress=False, write=False).metrics["train"]
    result = {
        "backend": timing["backend"],
        "precision": args.precision,
        "device": _device(),
        "examples_per_second": timing["examples_per_second"],
        "epoch_seconds": timing["epoch_seconds"],
        "train_rows": timing["train_rows"],
    }
    print_json(result, indent=None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backends", default="jax,tensorflow")
    parser.add_argument("--precisions", default="off")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="off", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    runs = []
    for _ in range(args.repeats):
        for precision in args.precisions.split(","):
            for backend in args.backends.split(","):
                command = script_command(
                    __file__,
                    "--worker",
                    f"--epochs={args.epochs}",
                    f"--precision={precision}",
                )
                for override in args.set:
                    command += ["--set", override]
                env = {**os.environ, "KERAS_BACKEND": backend}
                runs.append(child_json(command, env=env))
                print(runs[-1], file=sys.stderr)
    median = {}
    for run in runs:
        key = f"{run['backend']}/{run['precision']}"
        median.setdefault(key, []).append(run["examples_per_second"])
    median = {key: statistics.median(v) for key, v in median.items()}
    ratio = None
    if "jax/off" in median and "tensorflow/off" in median:
        ratio = median["tensorflow/off"] / median["jax/off"]
    print_json(
        {
            "config": DEFAULT_CONFIG,
            "overrides": args.set,
            "epochs": args.epochs,
            "machine": machine(backend=args.backends),
            "runs": runs,
            "median": median,
            "ratio_tensorflow_to_jax": ratio,
        }
    )


if __name__ == "__main__":
    main()
