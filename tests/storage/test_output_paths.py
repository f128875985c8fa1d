"""Outputs a bundle write must refuse before any work: a symbolic link
(the write renames a new directory into place, replacing the link) and a
path inside another bundle (which would then no longer load)."""

import json
import os

import pytest

from recsys.storage.atomic_write import check_output_path
from recsys.storage.files import BundleError


def _bundle(path):
    os.makedirs(path)
    with open(os.path.join(path, "a.npy"), "w") as file:
        file.write("x")
    manifest = {"kind": "two_tower", "files": {"a.npy": "0"}}
    with open(os.path.join(path, "manifest.json"), "w") as file:
        json.dump(manifest, file)
    return str(path)


def test_a_link_to_a_bundle_is_refused_naming_its_target(tmp_path):
    # `current -> v1`: the link was replaced by a new directory and v1
    # kept the old bundle, without a word.
    target = _bundle(tmp_path / "v1")
    os.symlink(target, tmp_path / "current")
    with pytest.raises(BundleError) as info:
        check_output_path(str(tmp_path / "current"))
    message = str(info.value)
    assert "is a symbolic link (to " in message
    assert f"Fix: give its target, {os.path.realpath(target)}," in message
    assert os.path.islink(tmp_path / "current")
    # A link to an empty directory failed only once trained.
    os.mkdir(tmp_path / "empty")
    os.symlink(tmp_path / "empty", tmp_path / "to_empty")
    with pytest.raises(BundleError, match="is a symbolic link"):
        check_output_path(str(tmp_path / "to_empty"))


def test_a_path_inside_a_bundle_is_refused(tmp_path):
    host = _bundle(tmp_path / "host")
    with pytest.raises(BundleError, match=r"is inside the bundle .*host, "):
        check_output_path(os.path.join(host, "sub", "run"))
    # A folder holding bundles is no bundle: a path beside them is fine.
    beside = os.path.join(tmp_path, "other")
    assert check_output_path(beside) == beside


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "Permission denied"),
        # A read-only mount: "Read-only file system: .../.b.lock".
        OSError(30, "Read-only file system"),
    ],
)
def test_a_folder_it_cannot_write_is_named_with_the_fix(
    tmp_path, monkeypatch, error
):
    # A read-only folder above --output (as a user without root's
    # override): "Permission denied: .../.run.lock" named neither.
    from recsys.storage import output_lock as module

    def refused(lock, purpose):
        raise type(error)(error.errno, error.strerror, lock)

    monkeypatch.setattr(module, "_acquire", refused)
    output = str(tmp_path / "ro" / "run")
    with pytest.raises(type(error)) as info:
        with module.output_lock(output):
            pass
    message = str(info.value)
    assert message.startswith(f"Cannot write {output}: ")
    assert f"is not writable ({error.strerror}). Fix: choose an --output" in (
        message
    )


def test_an_output_inside_the_tables_folder_is_refused(tmp_path):
    # A bundle written among a Parquet folder's files: the config's next
    # training failed to read its table.
    import pandas as pd

    from recsys import train

    folder = tmp_path / "table"
    folder.mkdir()
    pd.DataFrame({"x": range(40), "y": [0, 1] * 20}).to_parquet(
        folder / "part-0.parquet"
    )
    config = {
        "data": {"source": str(folder), "label": "y"},
        "model": {"kind": "tabular"},
    }
    with pytest.raises(ValueError, match=r"is inside the folder the table is"):
        train(config, str(folder / "bundle"), progress=False)
    # Tune, before its trials (it failed at the final training).
    from recsys.config import load_config
    from recsys.tune import tune

    with pytest.raises(ValueError, match=r"\(data.source = .*\): its files"):
        tune(load_config(config), str(folder / "tuned"), trials=1)
    assert sorted(os.listdir(folder)) == ["part-0.parquet"]
