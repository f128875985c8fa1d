"""TensorFlow Recommenders two-tower retrieval baseline on MovieLens.

Trains the model of the TFRS retrieval tutorial (a user id embedding and a
movie id embedding, in-batch softmax via `tfrs.tasks.Retrieval`, Adagrad) on
the protocol of `PROTOCOL.md` (per-user temporal split, 9,066 candidates, exact
HR@k), with the tuned settings by default: dim 64, batch 1024, Adagrad 0.1,
logQ correction. The tutorial's own settings are
`--dim 32 --batch-size 8192 --epochs 3 --no-logq`.

It prints one JSON object on stdout (everything else goes to stderr): test
HR@k, training throughput over the epochs after the first (the first one
traces), and hr@100 after each epoch for time-to-quality.

TFRS 0.7 needs Keras 2, so this sets `TF_USE_LEGACY_KERAS=1` for its whole
process: run it on its own, never import it.

Usage (from the repository root):

```
.venv/bin/python benchmarks/tfrs_baseline.py --dim 64 --epochs 3
```
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow loads

import argparse  # noqa: E402
import contextlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import machine  # noqa: E402
from _common import print_json  # noqa: E402

from recsys.data import load_movielens  # noqa: E402
from recsys.data import temporal_split  # noqa: E402
from recsys.evaluation.retrieval import evaluate_retrieval  # noqa: E402
from recsys.evaluation.retrieval import metric_names  # noqa: E402

USER, ITEM, TIME = "userId", "movieId", "timestamp"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=64, help="Embedding size.")
    parser.add_argument(
        "--batch-size", type=int, default=1024, help="Training batch size."
    )
    parser.add_argument(
        "--epochs", type=int, default=3, help="Training epochs."
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.1,
        help="Adagrad learning rate.",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="Seed of weights and shuffling."
    )
    parser.add_argument(
        "--no-logq",
        action="store_true",
        help="Turn off the logQ (candidate sampling probability) correction.",
    )
    parser.add_argument(
        "--remove-accidental-hits",
        action="store_true",
        help="Drop in-batch negatives that are the positive movie itself.",
    )
    return parser.parse_args(argv)


def build_model(tf, tfrs, user_vocab, item_vocab, args):
    """The tutorial's two-tower model; train metrics off (`metrics=None`)."""
    logq, remove_hits = not args.no_logq, args.remove_accidental_hits

    def tower(vocab):
        return tf.keras.Sequential(
            [
                tf.keras.layers.StringLookup(vocabulary=vocab, mask_token=None),
                tf.keras.layers.Embedding(len(vocab) + 1, args.dim),
            ]
        )

    class TwoTower(tfrs.Model):
        def __init__(self):
            super().__init__()
            self.user_model = tower(user_vocab)
            self.item_model = tower(item_vocab)
            self.task = tfrs.tasks.Retrieval(
                metrics=None, remove_accidental_hits=remove_hits
            )

        def compute_loss(self, features, training=False):
            return self.task(
                self.user_model(features[USER]),
                self.item_model(features[ITEM]),
                candidate_sampling_probability=(
                    features["probability"] if logq else None
                ),
                candidate_ids=features[ITEM] if remove_hits else None,
                compute_metrics=False,
            )

    return TwoTower()


def main(argv=None):
    args = parse_args(argv)
    # Only the JSON goes to stdout: the caller parses it.
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args)
    print_json(result, indent=None)


def run(args):
    """Trains, times and evaluates; returns the JSON-ready result dict."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    tf.get_logger().setLevel("ERROR")
    tf.keras.utils.set_random_seed(args.seed)

    frame = load_movielens()
    train, test = temporal_split(frame, user=USER, item=ITEM, time=TIME)
    candidates = np.sort(frame[ITEM].unique())
    user_vocab = np.unique(train[USER]).astype(str)
    item_vocab = candidates.astype(str)

    # logQ: the chance that an in-batch negative is this movie.
    counts = train[ITEM].map(train[ITEM].value_counts())
    probability = (counts / len(train)).to_numpy(np.float32)
    features = {
        USER: train[USER].to_numpy().astype(str),
        ITEM: train[ITEM].to_numpy().astype(str),
        "probability": probability,
    }
    # As the tutorial: one seeded shuffle, then batch and cache, so every
    # epoch replays the same batches from memory and the input pipeline is
    # not what gets timed.
    dataset = (
        tf.data.Dataset.from_tensor_slices(features)
        .shuffle(len(train), seed=args.seed, reshuffle_each_iteration=False)
        .batch(args.batch_size)
        .cache()
    )

    model = build_model(tf, tfrs, user_vocab, item_vocab, args)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))

    def evaluate():
        item_embeddings = model.item_model(tf.constant(item_vocab)).numpy()

        def score_fn(user_ids):
            users = tf.constant(np.asarray(user_ids).astype(str))
            return model.user_model(users).numpy() @ item_embeddings.T

        return evaluate_retrieval(
            score_fn,
            candidates=candidates,
            test_users=test[USER].to_numpy(),
            test_items=test[ITEM].to_numpy(),
            train_users=train[USER].to_numpy(),
            train_items=train[ITEM].to_numpy(),
        )

    epoch_seconds, per_epoch, last = [], [], {}

    class TimeThenEvaluate(tf.keras.callbacks.Callback):
        """Times each epoch, then evaluates on test outside the timed span."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.start)
            last.update(evaluate())
            per_epoch.append(
                {
                    "epoch": epoch + 1,
                    "seconds": epoch_seconds[-1],
                    "cumulative_seconds": sum(epoch_seconds),
                    "loss": float(logs["loss"]),
                    "hr@100": last["hr@100"],
                    "hr@100_filtered": last["hr@100_filtered"],
                }
            )
            print(per_epoch[-1], file=sys.stderr)

    model.fit(
        dataset, epochs=args.epochs, verbose=0, callbacks=[TimeThenEvaluate()]
    )

    result = {
        "model": "tfrs",
        "tfrs_version": tfrs.__version__,
        "tensorflow_version": tf.__version__,
        "machine": machine(backend="tensorflow (tf-keras)"),
        "config": {
            "dim": args.dim,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "seed": args.seed,
            "logq": not args.no_logq,
            "remove_accidental_hits": args.remove_accidental_hits,
            "shuffle": "once, seeded, then batch + cache",
        },
        "train_rows": len(train),
        "test": {name: last[name] for name in metric_names()},
    }
    timed = epoch_seconds[1:] or epoch_seconds
    result["examples_per_second"] = len(train) * len(timed) / sum(timed)
    if args.epochs == 1:
        result["examples_per_second_includes_tracing"] = True
    result["seconds"] = sum(epoch_seconds)
    result["epoch_seconds"] = epoch_seconds
    result["per_epoch"] = per_epoch
    return result


if __name__ == "__main__":
    main()
