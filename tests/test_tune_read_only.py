"""`recsys tune` on a study directory it cannot write: one line naming the
file and the fix, before the table is read or a trial runs (SQLite found
out at the study's first write, and Optuna's traceback ran 112 lines)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recsys import load_config
from recsys.kinds.base import TrainResult
from recsys.kinds.tabular import TabularKind
from recsys.tune import Choice
from recsys.tune import tune

OVERRIDES = ["model.features=['user_id', 'item_id']", "train.epochs=1"]
# What the read-only run does: the check comes before the table is read,
# so data.source need not exist.
RUN = f"""
import sys
from recsys import load_config
from recsys.tune import tune
config = load_config("configs/examples/labelled.toml", {OVERRIDES!r})
try:
    tune(config, sys.argv[1], trials=2, final=False, progress=False)
except ValueError as error:
    print(error)
    sys.exit(3)
"""


def _run_read_only(directory):
    """Runs `RUN` on `directory` made read-only: by its mode, or, as root
    (whom modes do not stop), by a private read-only bind mount."""
    command = [sys.executable, "-c", RUN, str(directory)]
    if os.geteuid() != 0:
        for path in (directory / "study.db", directory):
            os.chmod(path, 0o555)
        try:
            return subprocess.run(command, capture_output=True, text=True)
        finally:
            for path in (directory, directory / "study.db"):
                os.chmod(path, 0o755)
    if not shutil.which("unshare"):
        pytest.skip("root without unshare: no way to make a read-only dir")
    mount = (
        'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", mount, str(directory), *command],
        capture_output=True,
        text=True,
    )
    if "mount" in result.stderr or "unshare" in result.stderr:
        pytest.skip(f"no private mount here: {result.stderr.strip()}")
    return result


def test_a_read_only_study_is_refused_in_one_line(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 20, 300),
            "item_id": rng.integers(0, 9, 300),
            "timestamp": rng.permutation(300),
        }
    )
    frame["clicked"] = (frame["item_id"] % 2 == 0).astype(int)

    def train(self, config, *args, **kwargs):
        return TrainResult(metrics={"validation": {"auc": 0.7}})

    monkeypatch.setattr(TabularKind, "train", train)
    study = tmp_path / "study"
    config = load_config("configs/examples/labelled.toml", OVERRIDES)
    space = {"model.hidden_units": Choice(([], [64]))}
    tune(config, str(study), trials=1, space=space, frame=frame, final=False)
    before = (study / "study.db").read_bytes()

    result = _run_read_only(study)

    assert result.returncode == 3, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{study / 'study.db'} cannot be written (")
    assert "Fix: make it writable" in lines[0]
    assert (study / "study.db").read_bytes() == before
