"""`recsys train` killed with SIGKILL resumes from its checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from recsys import train
from recsys.cli import main
from recsys.config import load_config
from recsys.data.sources import load_interactions
from recsys.kinds.two_tower import prepare_data
from recsys.training.checkpoint import LATEST
from recsys.training.checkpoint import job_directory
from recsys.training.checkpoint import table_identity
from recsys.training.checkpoint import training_checkpoint

CONFIG = "configs/movielens_two_tower.toml"


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    """MovieLens users 1-100 (15,298 ratings), as a CSV source."""
    frame = load_interactions("movielens")
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    frame[frame["userId"] <= 100].to_csv(path, index=False)
    return str(path)


def _overrides(csv, epochs):
    return [
        f'data.source="{csv}"',
        f"train.epochs={epochs}",
        # A checkpoint every compiled call (16 steps), so a kill finds one.
        "train.checkpoint_every=16",
        'index.kind="brute_force"',
    ]


def _command(csv, output, epochs):
    command = [sys.executable, "-m", "recsys.cli", "train", CONFIG]
    command += ["--output", output, "--quiet"]
    for override in _overrides(csv, epochs):
        command += ["--set", override]
    return command


def _checkpoint_epoch(job_dir):
    """Epoch of the newest complete checkpoint, or -1."""
    directory = os.path.join(job_dir, "checkpoints")
    try:
        with open(os.path.join(directory, LATEST)) as f:
            name = f.read()
        with open(os.path.join(directory, name, "state.json")) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError):
        return -1


# Two fresh `recsys train` processes and a third training in this one: about
# a minute on 2 cores, so `pytest -m slow` runs it. The default run keeps
# resuming in one process (tests/training/test_checkpoint.py), a corrupted
# checkpoint below, and kills inside a bundle write
# (tests/security/test_job_dirs.py).
@pytest.mark.slow
def test_train_killed_with_sigkill_resumes_to_the_same_quality(
    small_csv, tmp_path
):
    epochs = 12
    output = str(tmp_path / "bundle")
    job_dir = output + ".job"
    command = _command(small_csv, output, epochs)
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 180
    while _checkpoint_epoch(job_dir) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint after 180 s"
        time.sleep(0.01)
    assert process.poll() is None, process.communicate()[1].decode()[-2000:]
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    killed_at = _checkpoint_epoch(job_dir)
    assert 2 <= killed_at < epochs
    assert not os.path.exists(output)  # no bundle, not even half of one

    rerun = subprocess.run(command, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "Resuming from checkpoint" in rerun.stderr
    with open(os.path.join(output, "metrics.json")) as f:
        resumed = json.load(f)
    assert resumed["train"]["resumed_from"]["epoch"] >= killed_at
    assert not os.path.exists(job_dir)  # finished: nothing left to resume

    # The same job never interrupted, in this process.
    config = load_config(CONFIG, _overrides(small_csv, epochs))
    _, straight = train(config, str(tmp_path / "straight"), progress=0)
    for key in ("hr@50_filtered", "hr@100_filtered"):
        assert resumed["test"][key] == pytest.approx(
            straight["test"][key], abs=0.02
        )


def test_train_with_corrupted_checkpoint_fails_then_restarts(
    small_csv, tmp_path, capsys
):
    output = str(tmp_path / "bundle")
    overrides = _overrides(small_csv, 1)
    config = load_config(CONFIG, overrides)
    job_dir = job_directory(config, output)
    # The job of this config and these training rows, as training makes it.
    rows = table_identity(prepare_data(config).train)
    training_checkpoint(config, output, rows)
    checkpoint = os.path.join(job_dir, "checkpoints", "step-1-epoch-0")
    os.makedirs(checkpoint)
    with open(os.path.join(checkpoint, "model.weights.h5"), "wb") as f:
        f.write(b"\x89HDF\r\n truncated by a kill")
    with open(os.path.join(checkpoint, "state.json"), "w") as f:
        json.dump({"epoch": 0, "step": 1}, f)
    with open(os.path.join(job_dir, "checkpoints", LATEST), "w") as f:
        f.write("step-1-epoch-0")
    args = ["train", CONFIG, "--output", output, "--quiet"]
    for override in overrides:
        args += ["--set", override]

    assert main(args) == 1
    error = capsys.readouterr().err
    assert "model.weights.h5 does not load" in error
    assert "--restart" in error and job_dir in error
    assert not os.path.exists(output)

    assert main([*args, "--restart"]) == 0
    assert os.path.isfile(os.path.join(output, "metrics.json"))
    assert not os.path.exists(job_dir)
