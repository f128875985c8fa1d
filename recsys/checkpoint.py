"""Resumable training: checkpoints in a job directory, written atomically.

A preempted job (`kill -9`, a lost spot instance) that is started again
with the same command continues from its last checkpoint instead of from
zero. The job directory holds:

```
job.json              the fingerprint of the config that wrote it
checkpoints/LATEST    the name of the newest complete checkpoint
checkpoints/step-N/   model.weights.h5 (weights and optimizer state), state.json
```

Every checkpoint is written into a temporary directory, renamed into place,
and only then named by `LATEST` (itself replaced atomically), so a kill at
any instant leaves the previous checkpoint intact. Keras'
`BackupAndRestore` overwrites its single file in place, which a kill during
the write corrupts; otherwise this follows it: a restart restores the
weights and the optimizer and resumes at the start of the epoch the
checkpoint was taken in (Keras' `fit` cannot start mid-epoch), so the
steps of that epoch before the checkpoint run twice.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile

import keras

logger = logging.getLogger(__name__)

LATEST = "LATEST"
WEIGHTS = "model.weights.h5"
STATE = "state.json"
JOB = "job.json"
# `train` keys that do not change what a checkpoint holds: a job may resume
# with more epochs, another checkpoint interval or another device layout.
_RESUMABLE_CHANGES = (
    "epochs",
    "checkpoint_every",
    "job_dir",
    "distribution",
    "model_shards",
    "mixed_precision",
)


class CheckpointError(ValueError):
    """A job directory's checkpoint cannot be used."""


def job_directory(config, output):
    """The job directory of a run: `train.job_dir`, else `<output>.job`."""
    job_dir = config["train"].get("job_dir") or ""
    return os.path.abspath(job_dir or os.path.abspath(output) + ".job")


def config_fingerprint(config):
    """SHA-256 of the config sections that define the trained weights."""
    train = {
        key: value
        for key, value in config["train"].items()
        if key not in _RESUMABLE_CHANGES
    }
    keys = {k: config[k] for k in ("data", "features", "model")}
    text = json.dumps({**keys, "train": train}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def discard(job_dir):
    """Deletes a job directory (`recsys train --restart`); absent is fine."""
    if os.path.isdir(job_dir):
        shutil.rmtree(job_dir)
        logger.info("Discarded job directory %s.", job_dir)


def _write_json(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


def _unusable(job_dir, path, reason):
    return CheckpointError(
        f"Checkpoint {path} cannot be used: {reason}. Fix: rerun with "
        f"--restart to discard {job_dir} and train from the start."
    )


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves the training state every `every` steps; restores it at start.

    Args:
        job_dir: str. The job directory (created if missing).
        fingerprint: str. Identifies the config; a job directory written by
            another config is refused rather than resumed.
        every: int. Steps between checkpoints; a checkpoint is also taken
            at the end of every epoch. `0` checkpoints only at epoch ends.

    Attributes:
        resumed_from: dict or None. `{"epoch", "step"}` of the checkpoint
            that `fit` resumed from.

    Example:

    ```python
    checkpoint = TrainingCheckpoint("artifacts/run.job", "abc", every=500)
    model.fit(x, epochs=3, callbacks=[checkpoint])   # kill, rerun: resumes
    checkpoint.finish()   # after the bundle is written
    ```
    """

    def __init__(self, job_dir, fingerprint, every=1000):
        super().__init__()
        if not isinstance(every, int) or every < 0:
            raise ValueError(
                "`every` must be a non-negative integer. "
                f"Received: every={every!r}"
            )
        self.job_dir = job_dir
        self.fingerprint = fingerprint
        self.every = every
        self.directory = os.path.join(job_dir, "checkpoints")
        self.resumed_from = None
        self._epoch = 0
        self._step = 0  # global step of the last callback
        self._epoch_step = 0  # steps done in the current epoch
        self._saved_step = 0
        self._check_job()

    def _check_job(self):
        path = os.path.join(self.job_dir, JOB)
        if not os.path.exists(path):
            os.makedirs(self.directory, exist_ok=True)
            _write_json(path, {"fingerprint": self.fingerprint})
            return
        try:
            with open(path) as f:
                fingerprint = json.load(f)["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise _unusable(
                self.job_dir, path, f"unreadable job file ({error})"
            ) from None
        if fingerprint != self.fingerprint:
            raise CheckpointError(
                f"Job directory {self.job_dir} holds a checkpoint of another "
                "config (its data, features, model or optimizer differ). "
                "Fix: rerun with --restart to discard it, or set "
                "train.job_dir (or --output) to another directory."
            )

    def latest(self):
        """Path of the newest complete checkpoint, or `None`."""
        pointer = os.path.join(self.directory, LATEST)
        if not os.path.exists(pointer):
            return None
        with open(pointer) as f:
            name = f.read().strip()
        path = os.path.join(self.directory, name)
        if not name or not os.path.isdir(path):
            raise _unusable(
                self.job_dir, pointer, f"it names a missing checkpoint {name!r}"
            )
        return path

    # -- restore -------------------------------------------------------------

    def on_train_begin(self, logs=None):
        path = self.latest()
        if path is None:
            return
        try:
            with open(os.path.join(path, STATE)) as f:
                state = json.load(f)
            epoch, step = int(state["epoch"]), int(state["step"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise _unusable(
                self.job_dir, path, f"unreadable {STATE} ({error})"
            ) from None
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(os.path.join(path, WEIGHTS))
        except Exception as error:  # h5py raises OSError, Keras ValueError
            raise _unusable(
                self.job_dir,
                path,
                f"{WEIGHTS} does not load ({type(error).__name__}: {error})",
            ) from None
        # Keras' fit starts at `_initial_epoch` (as BackupAndRestore sets).
        model._initial_epoch = epoch
        self._epoch, self._step, self._saved_step = epoch, step, step
        self.resumed_from = {"epoch": epoch, "step": step}
        logger.warning(
            "Resuming from checkpoint %s (epoch %d, step %d).",
            path,
            epoch + 1,
            step,
        )

    # -- save ----------------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_step = 0

    def on_train_batch_end(self, batch, logs=None):
        # With `steps_per_execution`, `batch` jumps by several steps.
        self._step += batch + 1 - self._epoch_step
        self._epoch_step = batch + 1
        if self.every and self._step - self._saved_step >= self.every:
            self._save(self._epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch + 1)

    def _save(self, epoch):
        """Writes a checkpoint from which `fit` restarts at `epoch`."""
        name = f"step-{self._step:012d}-epoch-{epoch}"
        final = os.path.join(self.directory, name)
        if os.path.exists(final):  # this very state is saved already
            return
        os.makedirs(self.directory, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self.directory)
        self.model.save_weights(os.path.join(tmp, WEIGHTS))
        _write_json(
            os.path.join(tmp, STATE), {"epoch": epoch, "step": self._step}
        )
        os.rename(tmp, final)
        self._point_to(name)
        self._saved_step = self._step
        # Older checkpoints, and leftovers of a save that a kill cut short.
        for other in os.listdir(self.directory):
            if other not in (name, LATEST):
                _remove(os.path.join(self.directory, other))

    def _point_to(self, name):
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.directory, LATEST))

    def finish(self):
        """Deletes the job directory once its result is safely written."""
        discard(self.job_dir)


def training_checkpoint(config, output):
    """The `TrainingCheckpoint` of a run, or `None` (`checkpoint_every=-1`).

    Args:
        config: dict. A validated config (`train.checkpoint_every`,
            `train.job_dir`).
        output: str. The bundle directory the run writes.

    Returns:
        `TrainingCheckpoint` or `None`.
    """
    every = config["train"].get("checkpoint_every", 1000)
    if every < 0:
        return None
    return TrainingCheckpoint(
        job_directory(config, output), config_fingerprint(config), every
    )
