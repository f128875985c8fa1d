"""TensorFlow Recommenders ranking baseline: MovieLens rating regression.

The model of the TFRS "basic ranking" tutorial (a user id embedding and a
movie id embedding of size 32, concatenated, Dense 256-64-1 ReLU, mean
squared error through `tfrs.tasks.Ranking`, Adagrad 0.1, batch 8192, 3
epochs), trained on PROTOCOL.md's training split and scored on its test split
with the metrics of `configs/movielens_rating.toml` (RMSE, MAE).

It prints one JSON object on stdout. TFRS 0.7 needs Keras 2, so this sets
`TF_USE_LEGACY_KERAS=1` for its whole process: run it on its own (as
`benchmarks/tabular_ranking.py --tfrs` does), never import it.

Usage (needs the `bench` extra):

```
.venv/bin/python benchmarks/tfrs_ranking_baseline.py [--epochs 3] [--seed 0]
```
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow loads

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import machine  # noqa: E402
from _common import print_json  # noqa: E402

from recsys.data import load_movielens  # noqa: E402
from recsys.data import temporal_split  # noqa: E402

USER, ITEM, TIME, LABEL = "userId", "movieId", "timestamp", "rating"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="validation: train on the training split minus its users' "
        "latest fifth and score that fifth (to choose settings).",
    )
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    tf.keras.utils.set_random_seed(args.seed)
    columns = {"user": USER, "item": ITEM, "time": TIME}
    train, test = temporal_split(load_movielens(), **columns)
    if args.split == "validation":
        train, test = temporal_split(train, **columns)
    users = np.unique(train[USER].astype(str))
    movies = np.unique(train[ITEM].astype(str))

    def tower(vocabulary):
        return tf.keras.Sequential(
            [
                tf.keras.layers.StringLookup(vocabulary=vocabulary),
                tf.keras.layers.Embedding(len(vocabulary) + 1, args.dim),
            ]
        )

    class RankingModel(tfrs.models.Model):
        def __init__(self):
            super().__init__()
            self.user_embeddings = tower(users)
            self.movie_embeddings = tower(movies)
            self.ratings = tf.keras.Sequential(
                [
                    tf.keras.layers.Dense(256, activation="relu"),
                    tf.keras.layers.Dense(64, activation="relu"),
                    tf.keras.layers.Dense(1),
                ]
            )
            self.task = tfrs.tasks.Ranking(
                loss=tf.keras.losses.MeanSquaredError(),
                metrics=[tf.keras.metrics.RootMeanSquaredError()],
            )

        def call(self, features):
            return self.ratings(
                tf.concat(
                    [
                        self.user_embeddings(features[USER]),
                        self.movie_embeddings(features[ITEM]),
                    ],
                    axis=1,
                )
            )

        def compute_loss(self, features, training=False):
            labels = features.pop(LABEL)
            return self.task(labels=labels, predictions=self(features))

    def dataset(frame):
        return tf.data.Dataset.from_tensor_slices(
            {
                USER: frame[USER].astype(str).to_numpy(),
                ITEM: frame[ITEM].astype(str).to_numpy(),
                LABEL: frame[LABEL].to_numpy(np.float32),
            }
        )

    model = RankingModel()
    model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
    data = dataset(train).shuffle(len(train), seed=args.seed)
    start = time.perf_counter()
    model.fit(
        data.batch(args.batch_size).cache(), epochs=args.epochs, verbose=0
    )
    seconds = time.perf_counter() - start
    features = {
        USER: test[USER].astype(str).to_numpy(),
        ITEM: test[ITEM].astype(str).to_numpy(),
    }
    predictions = model.predict(features, batch_size=8192, verbose=0)[:, 0]
    errors = predictions - test[LABEL].to_numpy(np.float64)
    print_json(
        {
            "model": "tfrs basic ranking (user + movie embeddings, MLP)",
            "settings": vars(args),
            args.split: {
                "rmse": float(np.sqrt(np.mean(errors**2))),
                "mae": float(np.mean(np.abs(errors))),
                "num_examples": int(len(test)),
            },
            "train_seconds": seconds,
            "machine": machine(backend="tensorflow (tf-keras)"),
        },
        indent=None,
    )


if __name__ == "__main__":
    main()
