"""Trains one config under each `train.distribution` on 4 virtual CPUs.

Run as a script (`python tests/training/multi_device_run.py CSV OUTPUT_DIR`) by
`tests/training/test_distribution.py`: the XLA flag that splits the CPU into 4
devices must be set before JAX initializes, hence a separate process.
Prints one JSON object: per distribution, the test metrics, the training
loss of the first and last epoch and the layout of the movie id table.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(
    0,
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ),
)

import jax  # noqa: E402
import keras  # noqa: E402

from recsys import train  # noqa: E402
from recsys.config import load_config  # noqa: E402


class _Layout(keras.callbacks.Callback):
    """Records the loss per epoch and how the movie table is laid out."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(float(logs["loss"]))
        table = next(
            v
            for v in self.model.variables
            if v.path == "candidate_tower/movieId_embedding/embeddings"
        )
        sharding = table.value.sharding
        self.layout = {
            "spec": [str(axis) for axis in getattr(sharding, "spec", [])],
            "shard_shapes": sorted(
                {tuple(s.data.shape) for s in table.value.addressable_shards}
            ),
        }


def _probed(fit, probe):
    """The pipeline's own `fit_two_tower`, with `probe` among its callbacks."""

    def fit_with_probe(model, inputs, config, callbacks=(), **kwargs):
        return fit(model, inputs, config, [*callbacks, probe], **kwargs)

    return fit_with_probe


def main(csv, output):
    import recsys.kinds.two_tower as pipeline

    results = {"devices": len(jax.devices())}
    fit = pipeline.fit_two_tower
    for mode in ("none", "data", "model"):
        layout = _Layout()

        pipeline.fit_two_tower = _probed(fit, layout)
        config = load_config(
            "configs/movielens_two_tower.toml",
            [
                f'data.source="{csv}"',
                "train.epochs=2",
                f'train.distribution="{mode}"',
                "train.model_shards=2",
                'index.kind="brute_force"',
                "evaluate.baselines=['popularity']",
            ],
        )
        _, metrics = train(config, os.path.join(output, mode), progress=False)
        results[mode] = {
            "test": metrics["test"],
            "losses": layout.losses,
            "layout": layout.layout,
            "rows": metrics["train"]["train_rows"],
        }
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
