import json
import os

import keras
import numpy as np
import pytest

from recsys.config import load_config
from recsys.storage.owned_dirs import MARKER
from recsys.training.checkpoint import LATEST
from recsys.training.checkpoint import WEIGHTS
from recsys.training.checkpoint import CheckpointError
from recsys.training.checkpoint import TrainingCheckpoint
from recsys.training.checkpoint import config_fingerprint
from recsys.training.checkpoint import discard
from recsys.training.checkpoint import job_directory
from recsys.training.checkpoint import resume_epoch
from recsys.training.checkpoint import training_job

CONFIG = "configs/movielens_two_tower.toml"
X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
Y = X @ np.array([1.0, -2.0, 0.5], "float32")


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


class _Interrupt(keras.callbacks.Callback):
    """Stands in for a kill: training stops at the start of `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.weights = [w.copy() for w in self.model.get_weights()]
            raise KeyboardInterrupt


def _interrupted_job(job_dir, every=0):
    model, stop = _model(), _Interrupt(2)
    checkpoint = TrainingCheckpoint(job_dir, "spec", every=every)
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            X,
            Y,
            batch_size=8,
            epochs=5,
            initial_epoch=checkpoint.initial_epoch,
            callbacks=[checkpoint, stop],
        )
    return stop.weights


def test_checkpoint_resumes_at_the_interrupted_epoch(tmp_path):
    job_dir = str(tmp_path / "job")
    saved = _interrupted_job(job_dir)
    model, checkpoint = _model(), TrainingCheckpoint(job_dir, "spec", every=0)
    seen = []
    probe = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(
            (epoch, [w.copy() for w in model.get_weights()])
        )
    )
    assert checkpoint.initial_epoch == 2
    model.fit(
        X,
        Y,
        batch_size=8,
        epochs=5,
        initial_epoch=checkpoint.initial_epoch,
        callbacks=[checkpoint, probe],
    )
    assert checkpoint.resumed_from == {"epoch": 2, "step": 16}
    assert [epoch for epoch, _ in seen] == [2, 3, 4]
    for restored, expected in zip(seen[0][1], saved, strict=True):
        np.testing.assert_array_equal(restored, expected)
    # The optimizer state came back too: Adam's step count went on.
    assert int(model.optimizer.iterations.numpy()) == 40


def test_checkpoint_keeps_one_complete_checkpoint(tmp_path):
    job_dir = str(tmp_path / "job")
    _interrupted_job(job_dir, every=3)
    directory = os.path.join(job_dir, "checkpoints")
    assert sorted(os.listdir(directory)) == [
        LATEST,
        "step-000000000016-epoch-2",
    ]
    state = os.path.join(directory, "step-000000000016-epoch-2", "state.json")
    with open(state) as f:
        assert json.load(f) == {"epoch": 2, "step": 16}


def test_checkpoint_saves_every_n_steps(tmp_path):
    job_dir = str(tmp_path / "job")
    checkpoint = TrainingCheckpoint(job_dir, "spec", every=3)
    names = []
    original = checkpoint._point_to
    checkpoint._point_to = lambda name: (names.append(name), original(name))
    _model().fit(X, Y, batch_size=8, epochs=1, callbacks=[checkpoint])
    # Steps 3 and 6 within the epoch, then the epoch end (step 8).
    assert names == [
        "step-000000000003-epoch-0",
        "step-000000000006-epoch-0",
        "step-000000000008-epoch-1",
    ]


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    job_dir = str(tmp_path / "job")
    _interrupted_job(job_dir)
    directory = os.path.join(job_dir, "checkpoints")
    with open(os.path.join(directory, LATEST)) as f:
        latest = os.path.join(directory, f.read())
    with open(os.path.join(latest, WEIGHTS), "wb") as f:
        f.write(b"not an HDF5 file")
    checkpoint = TrainingCheckpoint(job_dir, "spec")
    with pytest.raises(CheckpointError, match="rerun with --restart"):
        _model().fit(X, Y, epochs=5, callbacks=[checkpoint], verbose=0)


def test_checkpoint_of_another_config_is_refused(tmp_path):
    job_dir = str(tmp_path / "job")
    _interrupted_job(job_dir)
    with pytest.raises(CheckpointError, match="another config"):
        TrainingCheckpoint(job_dir, "other spec")


def test_a_job_without_a_checkpoint_is_taken_over_by_another_config(
    tmp_path,
):
    # A run that stopped before its first checkpoint (a config error at
    # model build) left nothing to resume: the fixed config goes on.
    job_dir = str(tmp_path / "job")
    TrainingCheckpoint(job_dir, "spec")
    checkpoint = TrainingCheckpoint(job_dir, "fixed spec")
    assert checkpoint.initial_epoch == 0
    _model().fit(X, Y, batch_size=8, epochs=1, callbacks=[checkpoint])
    with pytest.raises(CheckpointError, match="another config"):
        TrainingCheckpoint(job_dir, "spec")


def test_fingerprint_ignores_epochs_and_devices_but_not_the_model():
    base = load_config(CONFIG)
    same = load_config(CONFIG, ["train.epochs=9", 'train.distribution="data"'])
    other = load_config(CONFIG, ["model.embedding_dim=8"])
    assert config_fingerprint(base) == config_fingerprint(same)
    assert config_fingerprint(base) != config_fingerprint(other)


def test_damaged_job_files_are_clear_errors(tmp_path):
    job_dir = str(tmp_path / "job")
    TrainingCheckpoint(job_dir, "spec")
    with open(os.path.join(job_dir, "checkpoints", LATEST), "w") as f:
        f.write("step-9-epoch-1")
    checkpoint = TrainingCheckpoint(job_dir, "spec")
    with pytest.raises(CheckpointError, match="names a missing checkpoint"):
        _model().fit(X, Y, epochs=1, callbacks=[checkpoint], verbose=0)
    with open(os.path.join(job_dir, "job.json"), "w") as f:
        f.write("{truncated")
    with pytest.raises(CheckpointError, match=f"discard {job_dir} and"):
        TrainingCheckpoint(job_dir, "spec")


def test_checkpoint_removes_only_what_it_wrote(tmp_path):
    job_dir = str(tmp_path / "job")
    _interrupted_job(job_dir, every=3)
    assert os.path.isfile(os.path.join(job_dir, MARKER))
    notes = os.path.join(job_dir, "checkpoints", "notes.txt")
    with open(notes, "w") as f:
        f.write("mine")
    _interrupted_job(job_dir, every=3)  # saves and prunes again
    assert os.path.isfile(notes)
    discard(job_dir)
    # Only the user's file is left; the directory stays for it.
    assert os.listdir(job_dir) == ["checkpoints"]
    assert os.listdir(os.path.join(job_dir, "checkpoints")) == ["notes.txt"]


def test_job_directory_recsys_created_is_removed(tmp_path):
    job_dir = str(tmp_path / "job")
    _interrupted_job(job_dir)
    TrainingCheckpoint(job_dir, "spec").finish()
    assert os.listdir(tmp_path) == []


def test_empty_job_directory_is_used_and_kept(tmp_path):
    TrainingCheckpoint(str(tmp_path), "spec").finish()
    assert tmp_path.is_dir() and os.listdir(tmp_path) == []


def test_job_directory_of_the_user_is_refused_untouched(tmp_path):
    (tmp_path / "thesis.tex").write_text("keep me")
    with pytest.raises(CheckpointError, match="not created by recsys"):
        TrainingCheckpoint(str(tmp_path), "spec")
    with pytest.raises(CheckpointError, match="not created by recsys"):
        discard(str(tmp_path))
    assert os.listdir(tmp_path) == ["thesis.tex"]


def test_job_directory_of_an_older_recsys_is_resumed(tmp_path):
    job_dir = str(tmp_path / "job")
    _interrupted_job(job_dir)
    os.remove(os.path.join(job_dir, MARKER))  # written before markers
    fingerprint = "0" * 64
    with open(os.path.join(job_dir, "job.json"), "w") as f:
        json.dump({"fingerprint": fingerprint}, f)
    checkpoint = TrainingCheckpoint(job_dir, fingerprint, every=0)
    callbacks = [checkpoint]
    _model().fit(
        X,
        Y,
        batch_size=8,
        epochs=3,
        initial_epoch=resume_epoch(callbacks),
        callbacks=callbacks,
    )
    assert checkpoint.resumed_from == {"epoch": 2, "step": 16}


def test_checkpoint_refuses_a_fit_started_at_another_epoch(tmp_path):
    job_dir = str(tmp_path / "job")
    _interrupted_job(job_dir)
    checkpoint = TrainingCheckpoint(job_dir, "spec", every=0)
    with pytest.raises(CheckpointError, match="initial_epoch"):
        _model().fit(X, Y, batch_size=8, epochs=5, callbacks=[checkpoint])


def test_a_checkpoint_past_the_epochs_asked_for_is_refused(tmp_path):
    # Resumed, the model would have trained 2 epochs under a config of 1.
    job_dir = str(tmp_path / "job")
    _interrupted_job(job_dir)
    checkpoint = TrainingCheckpoint(job_dir, "spec", every=0)
    with pytest.raises(CheckpointError, match="has trained 2 epochs, more"):
        _model().fit(
            X,
            Y,
            batch_size=8,
            epochs=1,
            initial_epoch=checkpoint.initial_epoch,
            callbacks=[checkpoint],
        )


def test_a_checkpoint_of_every_epoch_is_the_model(tmp_path, caplog):
    job_dir = str(tmp_path / "job")
    saved = _interrupted_job(job_dir)
    model, checkpoint = _model(), TrainingCheckpoint(job_dir, "spec", every=0)
    model.fit(
        X,
        Y,
        batch_size=8,
        epochs=2,
        initial_epoch=checkpoint.initial_epoch,
        callbacks=[checkpoint],
    )
    assert "holds all 2 epochs: nothing left to train" in caplog.text
    for restored, expected in zip(model.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(restored, expected)


def test_resume_epoch_without_a_checkpoint_is_zero(tmp_path):
    fresh = TrainingCheckpoint(str(tmp_path / "job"), "spec")
    assert fresh.initial_epoch == 0
    assert resume_epoch([fresh, keras.callbacks.History()]) == 0
    assert resume_epoch([]) == 0


def test_a_checkpoint_of_another_table_is_refused(tmp_path):
    # Hashed ids' tables have one shape whatever the data: a checkpoint of
    # a replaced table loaded, and training resumed on it without a word.
    import pandas as pd

    from recsys.training.checkpoint import table_identity
    from recsys.training.checkpoint import training_checkpoint

    config = load_config(CONFIG)
    output = str(tmp_path / "bundle")
    rows = pd.DataFrame({"user": [1, 2, 3], "item": ["a", "b", "c"]})
    first = training_checkpoint(config, output, table_identity(rows))
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            X, Y, batch_size=8, epochs=5, callbacks=[first, _Interrupt(2)]
        )
    # The same rows (another frame, columns in another order) resume.
    again = rows[["item", "user"]].copy()
    assert training_checkpoint(config, output, table_identity(again)).latest()
    changed = rows.assign(item=["a", "b", "d"])
    with pytest.raises(CheckpointError, match="of another table"):
        training_checkpoint(config, output, table_identity(changed))


def test_a_streamed_runs_identity_changes_with_its_shards(tmp_path):
    import shutil

    import pandas as pd

    from recsys.data.parquet_source import ParquetSource
    from recsys.kinds.two_tower_streamed import source_identity

    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(3):
        pd.DataFrame({"user": [i], "item": [i], "t": [i]}).to_parquet(
            shards / f"part-{i}.parquet"
        )
    roles = {"user": "id", "item": "id", "t": "time"}
    identity = source_identity(ParquetSource(str(shards), roles), (1, 2), "")
    copied = tmp_path / "copied"
    shutil.copytree(shards, copied)  # moved or copied: the same shards
    assert (
        source_identity(ParquetSource(str(copied), roles), (1, 2), "")
        == identity
    )
    (copied / "part-2.parquet").unlink()
    assert (
        source_identity(ParquetSource(str(copied), roles), (1, 2), "")
        != identity
    )


def test_a_shard_rewritten_at_the_same_size_is_another_table(tmp_path):
    # Every item id shifted by one, the file's size unchanged: the resumed
    # run trained the old rows' vectors as other ids'.
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import recsys
    from recsys.kinds import two_tower_streamed as streamed

    rng = np.random.default_rng(0)
    rows = {
        "user_id": rng.integers(0, 300, 3000),
        "item_id": rng.integers(0, 100, 3000),
        "timestamp": np.arange(3000),
    }
    rows["category"] = rows["item_id"] // 10
    shards = tmp_path / "shards"
    shards.mkdir()
    shard = shards / "part-0.parquet"
    options = {"compression": "none", "use_dictionary": False}
    pq.write_table(pa.table(rows), shard, **options)
    size = shard.stat().st_size
    config = recsys.load_config(
        "configs/synthetic_two_tower.toml",
        overrides=[f"data.path={str(shards)!r}"],
    )

    def identity():
        source = streamed.open_source(config)
        bounds = streamed.split_bounds(source, config)
        data = streamed.scan_vocabulary(config, source, bounds, False)
        return streamed.source_identity(source, bounds, data.rows_digest)

    before = identity()
    rows["item_id"] = (rows["item_id"] + 1) % 100
    pq.write_table(pa.table(rows), shard, **options)
    assert shard.stat().st_size == size
    assert identity() != before


def test_steps_are_counted_as_run_with_steps_per_execution(tmp_path):
    # 67 rows at batch 8 are 9 steps an epoch; Keras reported the last
    # execution of 4 as batch 11: the second epoch ended at "step 24".
    model = _model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.05), loss="mse", steps_per_execution=4
    )
    job_dir = str(tmp_path / "job")
    checkpoint = TrainingCheckpoint(job_dir, "spec", every=0)
    x = np.concatenate([X, X[:3]])
    model.fit(
        x,
        x @ np.array([1.0, -2.0, 0.5], "float32"),
        batch_size=8,
        epochs=2,
        callbacks=[checkpoint],
        verbose=0,
    )
    saved = sorted(
        n for n in os.listdir(checkpoint.directory) if n.startswith("step-")
    )
    assert saved == ["step-000000000018-epoch-2"]  # the latest one is kept


def test_shards_copied_elsewhere_resume_with_the_same_rows(tmp_path):
    # The fingerprint held data.path: shards copied to another folder (the
    # same rows, the same digest) were refused as another config.
    from recsys.training.checkpoint import training_checkpoint

    config = load_config(CONFIG)
    moved = {**config, "data": {**config["data"], "source": "elsewhere.csv"}}
    rows = {"rows": 10, "fingerprint": "abc"}
    output = str(tmp_path / "out")
    same = [
        training_checkpoint(c, output, rows).fingerprint
        for c in (config, moved)
    ]
    assert same[0] == same[1]
    other = training_checkpoint(config, output, {**rows, "fingerprint": "x"})
    assert other.fingerprint != same[0]


def test_a_save_that_fails_leaves_nothing_and_says_where(tmp_path):
    # A full disk: the half-written weights stayed, and the next try
    # failed earlier, adding another; the error was h5py's.
    import errno

    job_dir = str(tmp_path / "job")
    model = _model()
    checkpoint = TrainingCheckpoint(job_dir, "spec", every=3)

    def full_disk(path):
        with open(path, "wb") as f:
            f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    model.save_weights = full_disk
    with pytest.raises(CheckpointError, match="No space left on device. Fix"):
        model.fit(X, Y, batch_size=8, epochs=1, callbacks=[checkpoint])
    directory = os.path.join(job_dir, "checkpoints")
    assert os.listdir(directory) == []


def test_restart_says_it_discarded_checkpoints_only_where_there_were(
    tmp_path, caplog
):
    config, output = load_config(CONFIG), str(tmp_path / "bundle")
    caplog.set_level("INFO", logger="recsys")
    with training_job(config, output, restart=True):
        pass  # a first run: no checkpoint to discard, none said
    assert "discarded" not in caplog.text
    job_dir = job_directory(config, output)
    _interrupted_job(job_dir)
    with training_job(config, output, restart=True):
        pass
    assert f"--restart: discarded the checkpoints in {job_dir}." in caplog.text
    assert not os.path.exists(job_dir)
