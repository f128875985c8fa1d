"""Trains one data-parallel two-tower in this process, alone or with others.

Run as a script (`python tests/training/multi_process_run.py CSV OUTPUT_DIR`) by
`tests/training/test_multi_process.py`, once alone and once per process of a
`jax.distributed` job (the `KERAS_DISTRIBUTION_*` variables set, one CPU
device each): JAX's distributed runtime must start before JAX computes
anything, hence separate processes. Prints one JSON object: the process,
the device counts, the training loss per epoch, the test metrics, and a
digest of every trainable weight (to compare the processes' copies).
"""

import hashlib
import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(
    0,
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ),
)

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import recsys.kinds.two_tower as pipeline  # noqa: E402
from recsys.config import load_config  # noqa: E402


class _Losses(keras.callbacks.Callback):
    """Records the loss per epoch and, at the end, the model's weights."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(float(logs["loss"]))

    def on_train_end(self, logs=None):
        digest = hashlib.sha256()
        self.weights = {}
        for variable in self.model.trainable_variables:
            # Replicated: this process's own copy, read without collectives.
            value = np.asarray(variable.value.addressable_data(0))
            digest.update(variable.path.encode() + value.tobytes())
            self.weights[variable.path] = float(np.abs(value).sum())
        self.digest = digest.hexdigest()


def main(csv, output):
    probe = _Losses()
    fit = pipeline.fit_two_tower

    def fit_with_probe(model, inputs, config, callbacks=(), **kwargs):
        return fit(model, inputs, config, [*callbacks, probe], **kwargs)

    pipeline.fit_two_tower = fit_with_probe
    config = load_config(
        "configs/movielens_two_tower.toml",
        [
            f'data.source="{csv}"',
            "train.epochs=3",
            "train.batch_size=256",
            'train.distribution="data"',
            "train.checkpoint_every=-1",
            'index.kind="brute_force"',
            "evaluate.baselines=['popularity']",
        ],
    )
    bundle, metrics = pipeline.TwoTowerKind().train(
        config, output, progress=False
    )
    result = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "losses": probe.losses,
        "test": metrics["test"],
        "rows": metrics["train"]["train_rows"],
        "digest": probe.digest,
        "weights": probe.weights,
        "bundle": bundle.path,
        "item_embeddings": hashlib.sha256(
            np.asarray(bundle.item_embeddings).tobytes()
        ).hexdigest(),
    }
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
