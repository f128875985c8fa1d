"""Training never deletes what it did not create; bundle swaps survive kills;
one training per output (issue #12, items 6, 7 and 11)."""

import glob
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys.bundles import load_bundle
from recsys.cli import main
from recsys.data.sources import load_interactions
from recsys.data.synthetic import SyntheticInteractions
from recsys.storage.atomic_write import write_atomically
from recsys.storage.output_lock import lock_path
from recsys.storage.output_lock import output_lock

CONFIG = "configs/movielens_two_tower.toml"
MISSING_DATA = 'data.source="/no/such/ratings.csv"'


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    """MovieLens users 1-30, as a CSV source."""
    frame = load_interactions("movielens")
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    frame[frame["userId"] <= 30].to_csv(path, index=False)
    return str(path)


def _train(output, *overrides, restart=False):
    args = ["train", CONFIG, "--output", str(output), "--quiet"]
    for override in overrides:
        args += ["--set", override]
    return main([*args, "--restart"] if restart else args)


@pytest.fixture(scope="module")
def tiny_bundle(tiny_csv, tmp_path_factory):
    """A real bundle, trained through `recsys train` in a second."""
    output = tmp_path_factory.mktemp("bundles") / "tiny"
    _precious(output.parent)
    code = _train(
        output,
        f'data.source="{tiny_csv}"',
        "train.epochs=1",
        'index.kind="brute_force"',
    )
    assert code == 0
    # Finished: the job directory recsys created and the lock file are gone
    # again; the user's file beside them stays.
    assert sorted(os.listdir(output.parent)) == ["thesis.tex", "tiny"]
    return str(output)


def _tree(path):
    return sorted(
        os.path.relpath(os.path.join(root, name), path)
        for root, _, names in os.walk(path)
        for name in names
    )


def _precious(directory):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "thesis.tex")
    with open(path, "w") as f:
        f.write("five years of work")
    return path


# -- item 6: never delete what it did not create ---------------------------


@pytest.mark.parametrize("restart", [False, True])
def test_user_directory_as_job_dir_is_refused_and_kept(
    tmp_path, capsys, restart
):
    user = tmp_path / "home"
    precious = _precious(user)
    code = _train(
        tmp_path / "run",
        f'train.job_dir="{user}"',
        MISSING_DATA,
        restart=restart,
    )
    error = capsys.readouterr().err
    assert code == 1
    # Refused before the data was read: the missing source is not named.
    assert "not created by recsys" in error and str(user) in error
    assert "/no/such/ratings.csv" not in error
    assert Path(precious).read_text() == "five years of work"
    assert sorted(os.listdir(user)) == ["thesis.tex"]
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("restart", [False, True])
def test_users_own_output_job_directory_is_refused_and_kept(
    tmp_path, capsys, restart
):
    precious = _precious(tmp_path / "run.job")
    code = _train(tmp_path / "run", MISSING_DATA, restart=restart)
    error = capsys.readouterr().err
    assert code == 1
    assert "run.job" in error and "not created by recsys" in error
    assert Path(precious).read_text() == "five years of work"
    assert sorted(os.listdir(tmp_path / "run.job")) == ["thesis.tex"]


def test_output_root_is_refused_before_the_data_is_read(capsys):
    existed = os.path.lexists("/.job")
    assert _train("/", MISSING_DATA) == 1
    error = capsys.readouterr().err
    assert "filesystem root" in error and "ratings.csv" not in error
    assert os.path.lexists("/.job") == existed


@pytest.mark.parametrize("output", ["~", "~/runs/a"])
def test_an_unexpanded_tilde_is_refused(output, tmp_path, monkeypatch, capsys):
    # Before: `--output '~'` made a directory named `~` here.
    monkeypatch.chdir(tmp_path)
    assert _train(output, MISSING_DATA) == 1
    assert "which no shell expanded" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_a_training_refused_before_any_checkpoint_leaves_no_job(
    tiny_csv, tmp_path, capsys
):
    # Before: an empty `run.job` (job.json, no checkpoint) stayed behind.
    output = tmp_path / "run"
    too_large = "model.embedding_dim=1000000000"
    assert _train(output, f'data.source="{tiny_csv}"', too_large) == 1
    assert "more than this machine" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_output_under_a_file_is_refused_before_the_data_is_read(
    tmp_path, capsys
):
    (tmp_path / "afile").write_text("mine")
    assert _train(tmp_path / "afile" / "sub" / "run", MISSING_DATA) == 1
    error = capsys.readouterr().err
    assert "afile is a file, not a directory" in error, error
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_foreign_output_is_refused_before_the_data_is_read(
    tmp_path, capsys, kind
):
    output = tmp_path / "run"
    if kind == "directory":
        _precious(output)
    else:
        output.write_text("not a bundle")
    started = time.monotonic()
    assert _train(output, MISSING_DATA) == 1
    error = capsys.readouterr().err
    assert str(output) in error and "ratings.csv" not in error
    assert "not a recsys bundle" in error or "not a directory" in error
    assert time.monotonic() - started < 10
    assert not os.path.exists(tmp_path / "run.job")


def test_a_manifest_beside_the_users_files_is_not_a_bundle(
    tiny_bundle, tmp_path, capsys
):
    # Before: any manifest.json made a bundle, and replacing it removed the
    # directory with the user's files (exit 0, no warning).
    web_app = tmp_path / "site"
    _precious(web_app)
    (web_app / "manifest.json").write_text('{"name": "my web app"}')
    old_bundle = tmp_path / "old"
    shutil.copytree(tiny_bundle, old_bundle)
    _precious(old_bundle)  # notes kept inside an old bundle
    for output, said in (
        (web_app, "not a recsys bundle"),
        # The user's file named, with both fixes.
        (old_bundle, "does not list (1: thesis.tex); refusing"),
    ):
        assert _train(output, MISSING_DATA) == 1
        error = capsys.readouterr().err
        assert said in error and "choose another --output" in error
        assert (output / "thesis.tex").read_text() == "five years of work"
    # A folder of the user's: empty, or a link to their data (whose files
    # a walk of the bundle never reached): both were removed on replace.
    for folder, said in (("notes", "notes/"), ("mydata", "mydata/")):
        inside = tmp_path / f"with_{folder}"
        shutil.copytree(tiny_bundle, inside)
        if folder == "notes":
            (inside / folder).mkdir()
        else:
            (inside / folder).symlink_to(web_app, target_is_directory=True)
        assert _train(inside, MISSING_DATA) == 1
        error = capsys.readouterr().err
        assert f"(1: {said})" in error, error
        assert (inside / folder).is_dir()
    # A bundle as written is still replaced.
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    write_atomically(
        str(copy),
        lambda tmp: shutil.copytree(tiny_bundle, tmp, dirs_exist_ok=True),
    )
    assert _tree(copy) == _tree(tiny_bundle)


# -- item 11: one training per output ----------------------------------------


def test_second_training_on_one_output_fails_at_once(
    tmp_path, monkeypatch, capsys
):
    import recsys.kinds.two_tower

    output = tmp_path / "run"
    seen = {}

    def train(self, config, output_, **kwargs):
        # The first training is running: a second `recsys train` process.
        started = time.monotonic()
        seen["second"] = subprocess.run(
            [sys.executable, "-m", "recsys.cli", "train", CONFIG]
            + ["--output", str(output), "--set", MISSING_DATA, "-q"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        seen["seconds"] = time.monotonic() - started
        raise ValueError("first training stops here")

    monkeypatch.setattr(recsys.kinds.two_tower.TwoTowerKind, "train", train)
    assert _train(output) == 1
    assert "first training stops here" in capsys.readouterr().err
    second = seen["second"]
    assert second.returncode == 1
    assert "Another recsys process is writing" in second.stderr
    assert f"pid {os.getpid()}, recsys train" in second.stderr
    assert "ratings.csv" not in second.stderr  # before any data was read
    assert seen["seconds"] < 60
    # The first run released its lock: the next one may write.
    assert not os.path.exists(lock_path(output))


def test_lock_of_a_killed_writer_does_not_block(tmp_path):
    output = str(tmp_path / "run")
    script = (
        "import sys\n"
        "from recsys.storage.output_lock import output_lock\n"
        f"with output_lock({output!r}, 'recsys train'):\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout.readline().strip() == "locked"
            with pytest.raises(ValueError, match=f"pid {holder.pid}"):
                with output_lock(output):
                    pass
        finally:
            holder.kill()
    assert os.path.exists(lock_path(output))  # left behind by SIGKILL
    with output_lock(output):
        pass


# -- item 7: crash-safe bundle swaps -----------------------------------------

# Writes the bundle `source` over `out` with `write_atomically`, and SIGKILLs
# itself inside the swap (after the old bundle moved aside) or inside `fill`.
_KILLED_WRITE = r"""
import os
import shutil
import signal
import sys

from recsys.storage.atomic_write import write_atomically

source, out, where = sys.argv[1:]
replace = os.replace


def killing_replace(src, dst):
    replace(src, dst)
    if os.fspath(src) == out:  # the old bundle is aside, the new not in
        os.kill(os.getpid(), signal.SIGKILL)


os.replace = killing_replace


def fill(tmp):
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    print(os.stat(tmp).st_ino, flush=True)
    if where == "fill":
        os.kill(os.getpid(), signal.SIGKILL)


write_atomically(out, fill)
"""


def _leftovers(parent):
    return glob.glob(os.path.join(parent, ".bundle-*")) + glob.glob(
        os.path.join(parent, ".*.lock")
    )


@pytest.mark.parametrize(
    "where, recover_by",
    [
        ("swap", "load"),
        ("swap", "write"),
        ("swap, new bundle lost", "load"),
        ("fill", "load"),
    ],
)
def test_kill_inside_a_bundle_write_is_recovered(
    tiny_bundle, tmp_path, caplog, where, recover_by
):
    output = tmp_path / "run"
    shutil.copytree(tiny_bundle, output)
    old_inode = os.stat(output).st_ino
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITE, tiny_bundle, str(output)]
        + [where.split(",")[0]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    new_inode = int(done.stdout.split()[0])
    in_swap = where.startswith("swap")
    assert os.path.exists(output) != in_swap
    assert len(glob.glob(str(tmp_path / ".bundle-*"))) == 1 + in_swap
    if where == "swap, new bundle lost":
        (tmp_dir,) = glob.glob(str(tmp_path / ".bundle-tmp-*"))
        shutil.rmtree(os.path.join(tmp_dir, "bundle"))

    with caplog.at_level(logging.WARNING, logger="recsys.storage.atomic_write"):
        if recover_by == "load":
            bundle = load_bundle(str(output))
            assert len(bundle.item_ids) > 0
        else:
            write_atomically(
                str(output),
                lambda tmp: shutil.copytree(
                    tiny_bundle, tmp, dirs_exist_ok=True
                ),
            )
    # The new bundle had been written in full: the swap completes forward;
    # only if it is gone does the previous one come back.
    if where == "swap":
        assert "moved the new bundle" in caplog.text
        if recover_by == "load":
            assert os.stat(output).st_ino == new_inode
    elif where == "swap, new bundle lost":
        assert "previous bundle was put back" in caplog.text
        assert os.stat(output).st_ino == old_inode
    else:
        assert os.stat(output).st_ino == old_inode
    assert "Removed" in caplog.text
    assert _tree(output) == _tree(tiny_bundle)  # no file lost
    assert _leftovers(str(tmp_path)) == []
    load_bundle(str(output))


def test_a_watch_finishes_a_swap_cut_between_its_renames(tiny_bundle, tmp_path):
    # A watching server kept the old bundle, saying the path named none,
    # until a SIGHUP; a load of the path would have finished the swap.
    from recsys.serving.bundle_paths import recover_watched_bundle

    output = tmp_path / "run"
    shutil.copytree(tiny_bundle, output)
    pointer = tmp_path / "current"
    pointer.write_text("run")
    assert not recover_watched_bundle(str(pointer))  # nothing to finish
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITE, tiny_bundle, str(output)]
        + ["swap"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    new_inode = int(done.stdout.split()[0])
    assert not os.path.exists(output)
    assert recover_watched_bundle(str(pointer))
    assert os.stat(output).st_ino == new_inode
    assert _leftovers(str(tmp_path)) == []
    load_bundle(str(output))


# The CLI's stop (`SystemExit(143)` from its SIGTERM handler) sent between
# the swap's two renames.
_STOPPED_SWAP = r"""
import os
import shutil
import signal
import sys

from recsys.storage.atomic_write import write_atomically

source, out = sys.argv[1:]
replace = os.replace


def stopping_replace(src, dst):
    replace(src, dst)
    if os.fspath(src) == out:  # the old bundle is aside, the new not in
        os.kill(os.getpid(), signal.SIGTERM)


def stop(signum, frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, stop)
os.replace = stopping_replace
write_atomically(
    out, lambda tmp: shutil.copytree(source, tmp, dirs_exist_ok=True)
)
"""


def test_a_stop_inside_a_swap_waits_for_it_to_end(tiny_bundle, tmp_path):
    # It left the old bundle half removed and said it stopped before.
    output = tmp_path / "run"
    shutil.copytree(tiny_bundle, output)
    old_inode = os.stat(output).st_ino
    done = subprocess.run(
        [sys.executable, "-c", _STOPPED_SWAP, tiny_bundle, str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 143, done.stderr[-2000:]
    assert f"Stopped after {output} was written whole" in done.stderr
    assert os.stat(output).st_ino != old_inode
    assert _tree(output) == _tree(tiny_bundle)
    assert _leftovers(str(tmp_path)) == []
    load_bundle(str(output))


def test_an_ignored_ctrl_c_inside_a_swap_stays_ignored(
    tiny_bundle, tmp_path, monkeypatch, caplog
):
    # It was held, said as "Stopped after ...", and the process went on.
    from recsys.storage import atomic_write

    swap = atomic_write._swap

    def interrupted(*args):
        os.kill(os.getpid(), signal.SIGINT)
        swap(*args)

    monkeypatch.setattr(atomic_write, "_swap", interrupted)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        write_atomically(
            str(tmp_path / "run"),
            lambda tmp: shutil.copytree(tiny_bundle, tmp, dirs_exist_ok=True),
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "Stopped" not in caplog.text
    load_bundle(str(tmp_path / "run"))


def test_bundle_directories_follow_the_umask(tiny_bundle, tmp_path):
    output = tmp_path / "run"
    previous = os.umask(0o022)
    try:
        write_atomically(
            str(output),
            lambda tmp: shutil.copytree(tiny_bundle, tmp, dirs_exist_ok=True),
        )
    finally:
        os.umask(previous)
    assert os.stat(output).st_mode & 0o777 == 0o755
    manifest = os.stat(output / "preprocessor.json").st_mode & 0o777
    assert manifest & 0o044 == 0o044  # readable by a service's user


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_a_fit_stops_it_at_a_batch_end(
    tiny_csv, tmp_path, request, sig
):
    # Raised inside the backend's code, SystemExit (SIGTERM) and
    # KeyboardInterrupt (Ctrl-C) were swallowed there (the run went on to
    # its last epoch and exited 0) or crashed the process (139).
    output = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "recsys.cli", "train", CONFIG]
        + ["--output", str(output), "--set", f'data.source="{tiny_csv}"']
        + ["--set", "train.epochs=500", "--set", "evaluate.baselines=[]"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    request.addfinalizer(process.kill)
    for line in process.stderr:  # Keras' epoch lines (stdout holds results)
        if line.startswith("Epoch 3/"):
            break
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + sig, err[-2000:]
    assert "Epoch 500/" not in err
    assert "rerun the same command to resume" in err
    assert not output.exists()
    assert _leftovers(str(tmp_path)) == []


# -- synth: no multi-GB temporary directory left behind ---------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_synth_leaves_no_temporary_directory(
    tmp_path, caplog, request, sig
):
    output = tmp_path / "shards"
    process = subprocess.Popen(
        [sys.executable, "-m", "recsys.cli", "synth", str(output), "-q"]
        + ["--interactions", "50000000", "--users", "1000", "--items", "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    request.addfinalizer(process.kill)
    pattern = str(tmp_path / ".synth-tmp-*" / "*" / "*.parquet")
    deadline = time.monotonic() + 60
    while not glob.glob(pattern):
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no shard after 60 s"
        time.sleep(0.05)
    process.send_signal(sig)
    process.communicate(timeout=60)
    assert not output.exists()
    leftovers = glob.glob(str(tmp_path / ".synth-tmp-*"))
    if sig == signal.SIGTERM:
        assert process.returncode == 128 + signal.SIGTERM
        assert leftovers == []
        return
    assert process.returncode == -signal.SIGKILL and len(leftovers) == 1
    # The next write of the same output removes what SIGKILL left.
    data = SyntheticInteractions(
        num_users=50,
        num_items=20,
        num_interactions=500,
        num_clusters=2,
        rows_per_group=256,
        rows_per_file=512,
    )
    with caplog.at_level(logging.WARNING, logger="recsys.storage.atomic_write"):
        data.write(output, progress=False)
    assert "interrupted write" in caplog.text
    assert glob.glob(str(tmp_path / ".synth-tmp-*")) == []
    assert sorted(os.listdir(tmp_path)) == ["shards"]
