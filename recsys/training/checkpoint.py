"""Resumable training: checkpoints in a job directory, written atomically.

A preempted job (`kill -9`, a lost spot instance) that is started again
with the same command continues from its last checkpoint instead of from
zero. The job directory holds:

```
.recsys-owner         the marker: recsys created (or adopted) this directory
job.json              the fingerprint of the config that wrote it
checkpoints/LATEST    the name of the newest complete checkpoint
checkpoints/step-N/   model.weights.h5 (weights and optimizer state), state.json
```

Every checkpoint is written into a temporary directory, flushed to disk,
renamed into place, and only then named by `LATEST` (itself replaced
atomically), so a kill at any instant leaves the previous checkpoint
intact. Keras' `BackupAndRestore` overwrites its single file in place,
which a kill during the write corrupts; otherwise this follows it: a
restart restores the weights and the optimizer and resumes at the start
of the epoch the checkpoint was taken in (Keras' `fit` cannot start
mid-epoch), so the steps of that epoch before the checkpoint run twice.
The caller passes that epoch to `fit` (`initial_epoch=
checkpoint.initial_epoch`, or `resume_epoch(callbacks)`): a callback has no
public way to move `fit`'s start.

The job directory is recsys's own: it is created with a marker file
(`storage.owned_dirs`), and a directory without one (a user's folder given
as `train.job_dir`, an unrelated `<output>.job`) is refused, never written
into or deleted. Cleaning up removes only the names listed above.
"""

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

import keras

from recsys.storage.atomic_write import check_output
from recsys.storage.atomic_write import check_output_path
from recsys.storage.atomic_write import fsync_directory
from recsys.storage.atomic_write import fsync_tree
from recsys.storage.atomic_write import recover_interrupted_write
from recsys.storage.atomic_write import write_text_atomically
from recsys.storage.output_lock import output_lock
from recsys.storage.owned_dirs import MARKER
from recsys.storage.owned_dirs import read_marker
from recsys.storage.owned_dirs import write_marker

logger = logging.getLogger(__name__)

LATEST = "LATEST"
WEIGHTS = "model.weights.h5"
STATE = "state.json"
JOB = "job.json"
CHECKPOINTS = "checkpoints"
# What `_save` writes into `checkpoints/`: checkpoints, the pointer, and
# the temporary names of `mkdtemp(prefix=".tmp-")` and of
# `write_text_atomically` (`.LATEST.<hex>.tmp`; `tmp<...>.tmp` before it).
_CHECKPOINT_ENTRY = re.compile(
    r"step-\d+-epoch-\d+|\.tmp-[A-Za-z0-9_]+|tmp[A-Za-z0-9_]+\.tmp"
    r"|\.[A-Za-z0-9_.]+\.[0-9a-f]{8}\.tmp"
)
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
    """A job directory's checkpoint cannot be used or written."""


def job_directory(config, output):
    """The job directory of a run: `train.job_dir`, else `<output>.job`."""
    job_dir = config["train"].get("job_dir") or ""
    return os.path.abspath(job_dir or os.path.abspath(output) + ".job")


def config_fingerprint(config, located=True):
    """SHA-256 of the config sections that define the trained weights.

    Args:
        config: dict. A validated config.
        located: bool. Whether where the table lies (`data.source`,
            `data.path`) counts. `False` where the rows' own identity is
            part of the fingerprint: shards copied elsewhere resume.
    """
    train = {
        key: value
        for key, value in config["train"].items()
        if key not in _RESUMABLE_CHANGES
    }
    keys = {k: config[k] for k in ("data", "features", "model")}
    if not located:
        keys["data"] = {
            key: value
            for key, value in keys["data"].items()
            if key not in ("source", "path")
        }
    text = json.dumps({**keys, "train": train}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _not_owned(job_dir, what):
    return CheckpointError(
        f"Job directory {job_dir} {what} and was not created by recsys (it "
        f"has no {MARKER} file); refusing to write checkpoints into it or "
        "delete it. Fix: set train.job_dir to a new directory (by default "
        "it is the --output path + '.job'), or move this one away."
    )


def _legacy_job(job_dir, entries):
    """Whether an unmarked directory is a job of a recsys without markers
    (or empty): `job.json` with a fingerprint and `checkpoints/` only."""
    if not set(entries) <= {JOB, CHECKPOINTS}:
        return False
    if JOB not in entries:
        return True
    try:
        with open(os.path.join(job_dir, JOB)) as f:
            fingerprint = json.load(f)["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(fingerprint, str) and bool(
        re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    )


def check_job_directory(job_dir):
    """Refuses a job directory recsys did not create, without touching it.

    A missing directory, one with recsys's marker, and an unmarked one
    that is empty or holds only what an older recsys wrote are fine.

    Args:
        job_dir: str. The job directory.

    Raises:
        CheckpointError: for a file, a link, or any other directory.
    """
    if not os.path.lexists(job_dir):
        return
    if os.path.islink(job_dir) or not os.path.isdir(job_dir):
        raise _not_owned(job_dir, "is not a plain directory")
    marker = read_marker(job_dir)
    if marker is not None:
        if marker.get("kind") != "job":
            raise _not_owned(job_dir, f"is a recsys {marker.get('kind')}")
        return
    entries = os.listdir(job_dir)
    if not _legacy_job(job_dir, entries):
        raise _not_owned(job_dir, f"holds {sorted(entries)[:3]}")


def claim_job_directory(job_dir):
    """Creates (or adopts) the marked job directory `job_dir`.

    Args:
        job_dir: str. The job directory.

    Raises:
        CheckpointError: if `check_job_directory` refuses it.
    """
    check_job_directory(job_dir)
    if read_marker(job_dir) is not None:
        return
    created = not os.path.exists(job_dir)
    os.makedirs(job_dir, exist_ok=True)
    # `created`: only a directory recsys made is removed with the job.
    write_marker(job_dir, "job", created_directory=created)
    fsync_directory(os.path.dirname(job_dir))


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _clear_checkpoints(directory, keep=()):
    """Removes what `_save` wrote into `directory`, except `keep`."""
    for name in os.listdir(directory):
        if name not in keep and (
            name == LATEST or _CHECKPOINT_ENTRY.fullmatch(name)
        ):
            _remove(os.path.join(directory, name))


def discard(job_dir):
    """Deletes a job directory's checkpoints (`recsys train --restart`).

    Only what recsys wrote goes: `job.json`, the checkpoints, the marker,
    and the directory itself if recsys created it. A missing directory is
    fine.

    Args:
        job_dir: str. The job directory.

    Raises:
        CheckpointError: if `job_dir` was not created by recsys; it is
            left untouched.
    """
    if not os.path.lexists(job_dir):
        return
    check_job_directory(job_dir)
    marker = read_marker(job_dir) or {}
    checkpoints = os.path.join(job_dir, CHECKPOINTS)
    if os.path.isdir(checkpoints) and not os.path.islink(checkpoints):
        _clear_checkpoints(checkpoints)
        with contextlib.suppress(OSError):  # not empty: the user's files
            os.rmdir(checkpoints)
    for name in (JOB, MARKER):  # the marker last: a kill keeps it ours
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(job_dir, name))
    left = os.listdir(job_dir)
    if left:
        logger.warning(
            "Kept %s: it holds files recsys did not write (%s).",
            job_dir,
            ", ".join(sorted(left)[:5]),
        )
    elif marker.get("created_directory"):
        os.rmdir(job_dir)


def _write_json(path, data):
    write_text_atomically(path, json.dumps(data))


def _unusable(job_dir, path, reason):
    return CheckpointError(
        f"Checkpoint {path} cannot be used: {reason}. Fix: rerun with "
        f"--restart to discard {job_dir} and train from the start."
    )


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves the training state every `every` steps; restores it at start.

    Args:
        job_dir: str. The job directory (created if missing).
        fingerprint: str. Identifies the config; a job directory holding a
            checkpoint of another config is refused rather than resumed
            (one without a checkpoint yet is taken over).
        every: int. Steps between checkpoints; a checkpoint is also taken
            at the end of every epoch. `0` checkpoints only at epoch ends.

    Attributes:
        resumed_from: dict or None. `{"epoch", "step"}` of the checkpoint
            that `fit` resumed from.

    Example:

    ```python
    checkpoint = TrainingCheckpoint("artifacts/run.job", "abc", every=500)
    model.fit(   # kill, rerun: resumes
        x,
        epochs=3,
        initial_epoch=checkpoint.initial_epoch,
        callbacks=[checkpoint],
    )
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
        self.directory = os.path.join(job_dir, CHECKPOINTS)
        self.resumed_from = None
        self._resuming = None  # the epoch a restored fit must start at
        self._epoch = 0
        self._step = 0  # global step of the last callback
        self._epoch_step = 0  # steps done in the current epoch
        self._saved_step = 0
        self._check_job()

    def _check_job(self):
        claim_job_directory(self.job_dir)
        path = os.path.join(self.job_dir, JOB)
        if os.path.exists(path):
            try:
                with open(path) as f:
                    fingerprint = json.load(f)["fingerprint"]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise _unusable(
                    self.job_dir, path, f"unreadable job file ({error})"
                ) from None
            if fingerprint == self.fingerprint:
                return
            if os.path.exists(os.path.join(self.directory, LATEST)):
                raise CheckpointError(
                    f"Job directory {self.job_dir} holds a checkpoint of "
                    "another config (its data, features, model or optimizer "
                    "differ) or of another table (its training rows "
                    "changed since). Fix: rerun with --restart to discard "
                    "it, or set train.job_dir (or --output) to another "
                    "directory."
                )
            # Nothing saved yet: a run stopped before its first checkpoint
            # (a config error, fixed since, at model build) leaves nothing
            # to resume or lose, and this config takes the job over.
        os.makedirs(self.directory, exist_ok=True)
        _write_json(path, {"fingerprint": self.fingerprint})

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

    def _latest_state(self) -> tuple[str, int, int] | None:
        """`(path, epoch, step)` of the newest checkpoint, or `None`."""
        path = self.latest()
        if path is None:
            return None
        try:
            with open(os.path.join(path, STATE)) as f:
                state = json.load(f)
            return path, int(state["epoch"]), int(state["step"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise _unusable(
                self.job_dir, path, f"unreadable {STATE} ({error})"
            ) from None

    @property
    def initial_epoch(self) -> int:
        """The epoch `fit` resumes at: the newest checkpoint's, else `0`.

        Keras' `fit` cannot be told by a callback where to start, so the
        caller passes it: `model.fit(..., initial_epoch=
        checkpoint.initial_epoch, callbacks=[checkpoint])`.
        """
        state = self._latest_state()
        return 0 if state is None else state[1]

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._resuming = None
        state = self._latest_state()
        if state is None:
            return
        path, epoch, step = state
        epochs = (self.params or {}).get("epochs")
        if epochs is not None and epoch > epochs:
            # Resumed, it would hand over a model trained longer than its
            # config says, as if trained for `epochs`.
            raise CheckpointError(
                f"The checkpoint {path} has trained {epoch} epochs, more "
                f"than the {epochs} this run asks for (train.epochs). Fix: "
                f"train.epochs = {epoch} or more resumes it; --restart "
                f"trains {epochs} from the start."
            )
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
        self._resuming = epoch  # checked by the first `on_epoch_begin`
        self._epoch, self._step, self._saved_step = epoch, step, step
        self.resumed_from = {"epoch": epoch, "step": step}
        if epoch == epochs:
            logger.warning(
                "Checkpoint %s holds all %d epochs: nothing left to train.",
                path,
                epoch,
            )
            return
        logger.warning(
            "Resuming from checkpoint %s (epoch %d, step %d).",
            path,
            epoch + 1,
            step,
        )

    # -- save ----------------------------------------------------------------

    def on_epoch_begin(
        self, epoch: int, logs: dict[str, Any] | None = None
    ) -> None:
        if self._resuming is not None and epoch != self._resuming:
            # The restored weights are those of the start of epoch
            # `_resuming`: training them from another epoch would run
            # more (or fewer) epochs than asked, silently.
            raise CheckpointError(
                f"`fit` started at epoch {epoch}, but the checkpoint in "
                f"{self.job_dir} resumes at epoch {self._resuming}. Fix: "
                "pass `initial_epoch=checkpoint.initial_epoch` to `fit`."
            )
        self._resuming = None
        self._epoch = epoch
        self._epoch_step = 0

    def on_train_batch_end(self, batch, logs=None):
        # With `steps_per_execution`, `batch` jumps by several steps, and
        # the epoch's last execution reports a whole one's worth past its
        # end (a 131-step epoch ended at "step 144"): counted up to the
        # epoch's own steps.
        done = batch + 1
        steps = (self.params or {}).get("steps")
        if steps:
            done = min(done, steps)
        self._step += done - self._epoch_step
        self._epoch_step = done
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
        tmp = None
        try:
            os.makedirs(self.directory, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self.directory)
            self.model.save_weights(os.path.join(tmp, WEIGHTS))
            _write_json(
                os.path.join(tmp, STATE), {"epoch": epoch, "step": self._step}
            )
            # On disk before `LATEST` names it: a power cut must not leave
            # a pointer to a checkpoint whose files never reached the disk.
            fsync_tree(tmp)
            os.rename(tmp, final)
            tmp = None
            fsync_directory(self.directory)
            self._point_to(name)
        except BaseException as error:
            # A save that failed (a full disk) left its half-written
            # weights, which only a later save cleared: on a full disk
            # every retry failed earlier, leaving one more.
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(error, OSError):
                raise CheckpointError(
                    f"Cannot write a checkpoint in {self.directory}: "
                    f"{error.strerror or error}. Fix: free space there, "
                    "set train.job_dir to a folder with room, or "
                    "train.checkpoint_every = -1 (no checkpoints)."
                ) from None
            raise
        self._saved_step = self._step
        # Older checkpoints, and leftovers of a save that a kill cut short.
        _clear_checkpoints(self.directory, keep=(name, LATEST))

    def _point_to(self, name):
        write_text_atomically(os.path.join(self.directory, LATEST), name)

    def finish(self):
        """Deletes the job's checkpoints once its result is safely written."""
        discard(self.job_dir)
        logger.info(
            "Bundle written: removed the checkpoints in %s.", self.job_dir
        )


def training_checkpoint(config, output, table=None):
    """The `TrainingCheckpoint` of a run, or `None` (`checkpoint_every=-1`).

    Args:
        config: dict. A validated config (`train.checkpoint_every`,
            `train.job_dir`).
        output: str. The bundle directory the run writes.
        table: JSON-serializable or None. What identifies the rows trained
            on (`table_identity`), part of the fingerprint: hashed ids have
            tables of one shape whatever the data, so a checkpoint of a
            changed table loaded, and a streamed run whose last shard had
            gone resumed with test rows that its first epoch trained on.

    Returns:
        `TrainingCheckpoint` or `None`.
    """
    every = config["train"].get("checkpoint_every", 1000)
    if every < 0:
        return None
    fingerprint = config_fingerprint(config, located=table is None)
    if table is not None:
        text = json.dumps([fingerprint, table], sort_keys=True, default=str)
        fingerprint = hashlib.sha256(text.encode()).hexdigest()
    return TrainingCheckpoint(job_directory(config, output), fingerprint, every)


def table_identity(frame):
    """A hash of every cell of `frame` (the rows a run trains on, the table
    a study's trials score), its column names and types: 0.5 s for a
    million rows with a column of distinct texts. The columns are sorted:
    their order trains nothing.

    Args:
        frame: pandas DataFrame.

    Returns:
        dict: `{"rows", "fingerprint"}`.
    """
    import pandas as pd

    columns = sorted(frame.columns, key=str)
    frame = frame[columns]
    try:
        cells = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # cells of lists or dicts (a frame passed in Python)
        cells = pd.util.hash_pandas_object(frame.astype(str), index=False)
    digest = hashlib.sha256(
        json.dumps(
            [[str(c) for c in columns], [str(t) for t in frame.dtypes]]
        ).encode()
    )
    digest.update(cells.to_numpy().tobytes())
    return {"rows": len(frame), "fingerprint": digest.hexdigest()}


def resume_epoch(callbacks: Iterable[keras.callbacks.Callback]) -> int:
    """The epoch a `fit` with these callbacks starts at.

    Args:
        callbacks: the callbacks given to `fit`.

    Returns:
        int. The `initial_epoch` of the `TrainingCheckpoint` among them (the
        epoch of its newest checkpoint), else `0`.

    Example:

    ```python
    model.fit(x, callbacks=callbacks, initial_epoch=resume_epoch(callbacks))
    ```
    """
    return max(
        (
            callback.initial_epoch
            for callback in callbacks
            if isinstance(callback, TrainingCheckpoint)
        ),
        default=0,
    )


def _check_job_location(job_dir, output):
    """Refuses a job directory the bundle write would move or replace."""
    inside = os.path.commonpath([job_dir, output])
    if inside in (job_dir, output):
        raise CheckpointError(
            f"train.job_dir {job_dir} and --output {output} overlap: the "
            "bundle write replaces the output directory whole. Fix: set "
            "train.job_dir outside the output (or leave it empty for the "
            "output path + '.job')."
        )


@contextlib.contextmanager
def training_job(config, output, *, restart=False):
    """Claims `output` for one training run, before any data is read.

    Refuses an output no bundle can be written to and a job directory
    recsys did not create, recovers an interrupted bundle write, holds the
    output's lock for the whole run (a second run on the same output fails
    at once), and with `restart` discards the job's checkpoints.

    Args:
        config: dict. A validated config.
        output: str. The bundle directory the run writes.
        restart: bool. Discard the job's checkpoints first.

    Yields:
        str. The absolute output path.

    Raises:
        BundleError: if `output` is the root, a file or a non-bundle
            directory.
        CheckpointError: if the job directory is not recsys's own.
        OutputLockedError: if another process is writing `output`.

    Example:

    ```python
    with training_job(config, "artifacts/run"):
        train_bundle(config, "artifacts/run")
    ```
    """
    output = check_output_path(output)
    with output_lock(output, "recsys train"):
        recover_interrupted_write(output)
        check_output(output, config["model"].get("kind", "two_tower"))
        job_dir = job_directory(config, output)
        _check_job_location(job_dir, output)
        if restart:
            held = os.path.isdir(job_dir) and _holds_checkpoints(job_dir)
            discard(job_dir)
            if held:  # not said of checkpoints that never were
                logger.info(
                    "--restart: discarded the checkpoints in %s.", job_dir
                )
        elif config["train"].get("checkpoint_every", 1000) >= 0:
            check_job_directory(job_dir)
        try:
            yield output
        except Exception:
            # Refused before any checkpoint (a config too large for
            # memory): no job to resume, so none left behind.
            if os.path.isdir(job_dir) and not _holds_checkpoints(job_dir):
                with contextlib.suppress(CheckpointError, OSError):
                    discard(job_dir)  # the error that stopped it is said
            raise
        except SystemExit as stop:  # SIGTERM or Ctrl-C (`recsys.cli`)
            if _holds_checkpoints(job_dir):
                logger.warning(
                    "Stopped (exit status %s); the checkpoints in %s are "
                    "kept: rerun the same command to resume (--restart to "
                    "start over).",
                    stop.code,
                    job_dir,
                )
            raise


def _holds_checkpoints(job_dir) -> bool:
    """Whether the job directory holds a checkpoint to resume from."""
    return any(
        files for _, _, files in os.walk(os.path.join(job_dir, CHECKPOINTS))
    )
