"""Our default two-tower model against a TFRS two-tower, in one run.

Both train on the PROTOCOL.md split with the same embedding dimension, batch
size and number of epochs (those of our default config unless overridden),
and both are scored exactly over all 9,066 candidates. TFRS runs in its own
subprocess (`benchmarks/tfrs_baseline.py`, `TF_USE_LEGACY_KERAS=1`); the runs
alternate, ours then TFRS, for `--repeats` seeds so that both see the same
machine load. Examples/s are counted over the epochs after the first (which
traces and compiles), without train metrics. Time to quality is the training
time (evaluation excluded) until filtered HR@100 first reaches 0.20.

Prints one JSON object:
`{"config", "ours", "tfrs", "ratio"}`, the ratio holding
`"examples_per_second"` and `"hr@100_filtered"` (ours / TFRS).

Usage (needs the `bench` extra: `pip install -e ".[bench]"`):

```
python benchmarks/two_tower_vs_tfrs.py [--repeats 3] [--dim D]
    [--batch-size B] [--epochs E] [--set KEY=VALUE ...]
```
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras loads

import keras  # noqa: E402
from _common import child_json  # noqa: E402
from _common import config_path  # noqa: E402
from _common import machine  # noqa: E402
from _common import print_json  # noqa: E402
from _common import script_command  # noqa: E402
from _common import sibling  # noqa: E402

from recsys.config import load_config  # noqa: E402
from recsys.evaluation.retrieval import metric_names  # noqa: E402
from recsys.kinds import get_kind  # noqa: E402
from recsys.kinds.two_tower import embed_catalog_and_users  # noqa: E402
from recsys.kinds.two_tower import evaluate_bundle  # noqa: E402
from recsys.kinds.two_tower import in_memory_bundle  # noqa: E402
from recsys.training.two_tower import build_two_tower  # noqa: E402
from recsys.training.two_tower import fit_two_tower  # noqa: E402

QUALITY_BAR = 0.20
DEFAULT_CONFIG = config_path("movielens_two_tower.toml")


class EpochEvaluation(keras.callbacks.Callback):
    """The pipeline's evaluation after every epoch (not timed).

    `fit_two_tower`'s epoch timer runs before this callback, so the
    evaluation is outside the timed span. After the last epoch it is the
    trained model's evaluation.
    """

    def __init__(self, prepared):
        super().__init__()
        self.prepared = prepared
        self.metrics = []

    def on_epoch_end(self, epoch, logs=None):
        prepared = self.prepared
        arrays = embed_catalog_and_users(self.model, prepared)
        metrics = evaluate_bundle(
            in_memory_bundle(prepared, arrays),
            prepared.frame,
            prepared.config,
            prepared.train,
            prepared.test,
        )
        self.metrics.append(metrics["test"])


def time_to_quality(epoch_seconds, values):
    """Training seconds until `values` (one per epoch) reach the bar."""
    elapsed = 0.0
    for seconds, value in zip(epoch_seconds, values, strict=True):
        elapsed += seconds
        if value >= QUALITY_BAR:
            return elapsed
    return None


def run_ours(config, seed):
    """The pipeline's steps, with an evaluation after every epoch.

    `recsys train`'s prepare step (seeded), then its model and fit with
    the `EpochEvaluation` callback in between.
    """
    config = {**config, "train": {**config["train"], "seed": seed}}
    prepared = get_kind("two_tower").prepare(config)
    model = build_two_tower(prepared.preprocessor, config)
    evaluation = EpochEvaluation(prepared)
    timing = fit_two_tower(
        model, prepared.inputs, config, callbacks=[evaluation], progress=False
    )
    values = [m["hr@100_filtered"] for m in evaluation.metrics]
    return {
        "test": {k: evaluation.metrics[-1][k] for k in metric_names()},
        "examples_per_second": timing["examples_per_second"],
        "seconds": timing["seconds"],
        "epoch_seconds": timing["epoch_seconds"],
        "hr@100_filtered_per_epoch": values,
        "seconds_to_hr@100_filtered_0.20": time_to_quality(
            timing["epoch_seconds"], values
        ),
    }


def run_tfrs(dim, batch_size, epochs, seed, learning_rate):
    command = script_command(
        sibling("tfrs_baseline.py"),
        f"--dim={dim}",
        f"--batch-size={batch_size}",
        f"--epochs={epochs}",
        f"--seed={seed}",
        f"--learning-rate={learning_rate}",
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = child_json(command, env=env)
    per_epoch = result["per_epoch"]
    values = [e["hr@100_filtered"] for e in per_epoch]
    result["hr@100_filtered_per_epoch"] = values
    result["seconds_to_hr@100_filtered_0.20"] = time_to_quality(
        [e["seconds"] for e in per_epoch], values
    )
    return result


def summarize(runs):
    """Mean metrics and median throughput over repeated runs."""

    def mean_or_none(values):
        values = [v for v in values if v is not None]
        return statistics.mean(values) if values else None

    return {
        "test": {
            k: statistics.mean(r["test"][k] for r in runs)
            for k in metric_names()
        },
        "examples_per_second": statistics.median(
            r["examples_per_second"] for r in runs
        ),
        "examples_per_second_runs": [r["examples_per_second"] for r in runs],
        "seconds_to_hr@100_filtered_0.20": mean_or_none(
            [r["seconds_to_hr@100_filtered_0.20"] for r in runs]
        ),
        "hr@100_filtered_per_epoch": [
            r["hr@100_filtered_per_epoch"] for r in runs
        ],
        "seeds": list(range(len(runs))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="Our config.")
    parser.add_argument("--dim", type=int, help="Embedding size (both models).")
    parser.add_argument("--batch-size", type=int, help="Batch size (both).")
    parser.add_argument("--epochs", type=int, help="Epochs (both).")
    parser.add_argument(
        "--repeats", type=int, default=3, help="Seeds per model."
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a key of our config (e.g. model.history_length=0).",
    )
    args = parser.parse_args(argv)
    overrides = [
        f"{key}={value}"
        for key, value in (
            ("model.embedding_dim", args.dim),
            ("train.batch_size", args.batch_size),
            ("train.epochs", args.epochs),
        )
        if value is not None
    ]
    config = load_config(args.config, overrides + args.set)
    dim = config["model"]["embedding_dim"]
    batch_size = config["train"]["batch_size"]
    epochs = config["train"]["epochs"]
    started = time.time()
    ours, tfrs = [], []
    for seed in range(args.repeats):
        ours.append(run_ours(config, seed))
        print(
            f"ours seed {seed}: {ours[-1]['examples_per_second']:,.0f} ex/s",
            file=sys.stderr,
        )
        tfrs.append(run_tfrs(dim, batch_size, epochs, seed, 0.1))
        print(
            f"tfrs seed {seed}: {tfrs[-1]['examples_per_second']:,.0f} ex/s",
            file=sys.stderr,
        )
    ours_summary, tfrs_summary = summarize(ours), summarize(tfrs)
    result = {
        "config": {
            "embedding_dim": dim,
            "batch_size": batch_size,
            "epochs": epochs,
            "repeats": args.repeats,
            "ours_backend": keras.backend.backend(),
            "ours_model": config["model"],
            "tfrs_model": "user id + movie id embeddings, Adagrad 0.1, logQ",
            "tfrs_version": tfrs[0].get("tfrs_version"),
        },
        "ours": ours_summary,
        "tfrs": tfrs_summary,
        "ratio": {
            "examples_per_second": ours_summary["examples_per_second"]
            / tfrs_summary["examples_per_second"],
            "hr@100_filtered": ours_summary["test"]["hr@100_filtered"]
            / tfrs_summary["test"]["hr@100_filtered"],
        },
        "wall_seconds": time.time() - started,
        "machine": machine(),
    }
    print_json(result)


if __name__ == "__main__":
    main()
