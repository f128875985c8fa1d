"""What recsys writes follows the umask like any file the user writes: a
service running as another user can read a bundle written under umask 022,
and umask 077 keeps it private (issue #15)."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from recsys.bundles.two_tower import ARRAYS
from recsys.bundles.two_tower import write_bundle
from recsys.storage.atomic_write import new_temp_file
from recsys.storage.atomic_write import owned_output_dir
from recsys.storage.atomic_write import write_atomically
from recsys.storage.atomic_write import write_text_atomically
from recsys.storage.owned_dirs import make_owned_tempdir


@pytest.fixture(params=[0o022, 0o077, 0o027], ids=oct)
def umask(request):
    """Runs the test under a umask; yields the modes it gives."""
    previous = os.umask(request.param)
    try:
        yield 0o777 & ~request.param, 0o666 & ~request.param
    finally:
        os.umask(previous)


def _modes(root):
    """`{relative path: mode}` of `root` and everything under it."""
    modes = {".": os.stat(root).st_mode & 0o777}
    for parent, directories, files in os.walk(root):
        for name in directories + files:
            path = os.path.join(parent, name)
            modes[os.path.relpath(path, root)] = os.stat(path).st_mode & 0o777
    return modes


def _expected(root, directory_mode, file_mode):
    return {
        name: directory_mode
        if os.path.isdir(os.path.join(root, name))
        else file_mode
        for name in _modes(root)
    }


def _fill(tmp):
    # The ways bundle writers create files: open, NumPy, pandas/Arrow, a
    # subdirectory, and the atomic text write.
    np.save(os.path.join(tmp, "ids.npy"), np.arange(3))
    pd.DataFrame({"a": [1]}).to_parquet(os.path.join(tmp, "items.parquet"))
    os.makedirs(os.path.join(tmp, "index", "scann"))
    write_text_atomically(os.path.join(tmp, "index", "index.json"), "{}")
    write_text_atomically(os.path.join(tmp, "index", "scann", "a.pb"), "")
    # Last, listing every file: what makes the directory a bundle to
    # replace (`atomic_write._is_bundle`; a folder of no listed file is
    # not part of it).
    listed = [
        "ids.npy",
        "items.parquet",
        "index/index.json",
        "index/scann/a.pb",
    ]
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        f.write(json.dumps({"kind": "test", "files": dict.fromkeys(listed)}))


def test_a_written_bundle_follows_the_umask(umask, tmp_path):
    directory_mode, file_mode = umask
    output = write_atomically(str(tmp_path / "run"), _fill)
    modes = _modes(output)
    assert modes == _expected(output, directory_mode, file_mode)
    assert modes["."] == directory_mode and modes["ids.npy"] == file_mode
    # Replacing it (the two-rename swap) keeps the modes too.
    output = write_atomically(str(tmp_path / "run"), _fill)
    assert _modes(output) == modes


def test_an_owned_output_directory_follows_the_umask(umask, tmp_path):
    directory_mode, file_mode = umask
    path = str(tmp_path / "shards")
    with owned_output_dir(path, ".synth-tmp-", "synth-tmp") as content:
        _fill(content)
    assert _modes(path) == _expected(path, directory_mode, file_mode)
    assert _modes(path)["."] == directory_mode


def test_temporary_directories_and_files_follow_the_umask(umask, tmp_path):
    directory_mode, file_mode = umask
    # mkdtemp / mkstemp alone would give 0700 and 0600 under any umask.
    directory = make_owned_tempdir(str(tmp_path), ".tmp-", "test")
    assert os.stat(directory).st_mode & 0o777 == directory_mode
    assert os.stat(new_temp_file(str(tmp_path / "x"))).st_mode & 0o777 == (
        file_mode
    )


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=oct)
def test_a_trained_bundle_follows_the_umask(trained_bundle, tmp_path, mask):
    # The real writer: Keras, the ScaNN index, the preprocessor, NumPy.
    bundle, metrics = trained_bundle
    previous = os.umask(mask)
    try:
        output = write_bundle(
            str(tmp_path / "copy"),
            config=bundle.config,
            metrics=metrics,
            preprocessor=bundle.preprocessor,
            query_tower=bundle.query_tower,
            items=bundle.items,
            arrays={name: getattr(bundle, name) for name in ARRAYS},
            index=bundle.index,
        )
    finally:
        os.umask(previous)
    modes = _modes(output)
    assert modes == _expected(output, 0o777 & ~mask, 0o666 & ~mask)
    assert any(name.startswith("index") for name in modes)
