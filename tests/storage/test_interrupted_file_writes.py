"""A file output killed with -9 (`recommend --all`, `score`) left its hidden
temporary file for good, and each killed run added one: the next write of
the same file removes them, once their writer is dead."""

import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.storage.atomic_write import write_tables_atomically
from recsys.storage.output_lock import OutputLockedError

# Writes one table of `recs.parquet` in the directory argv[1], then prints
# "ready" and waits for stdin (a live writer), or kills itself with -9
# (argv[2] == "kill") before the write is whole.
_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import pyarrow as pa, pyarrow.parquet as pq
    from recsys.storage.atomic_write import write_tables_atomically

    def tables():
        yield pa.table({"x": list(range(1000))})
        print("ready", flush=True)
        if sys.argv[2] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.readline()
        yield pa.table({"x": [1]})

    write_tables_atomically(
        os.path.join(sys.argv[1], "recs.parquet"), tables(), pq.ParquetWriter
    )
    """
)


def _writer(directory, mode):
    """The writer subprocess, once its first table is written."""
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(directory), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "ready\n"
    return process


def _write(path):
    return write_tables_atomically(
        str(path), [pa.table({"x": [7, 8]})], pq.ParquetWriter
    )


def test_a_killed_writes_temporary_file_is_removed_by_the_next(
    tmp_path, caplog
):
    killed = _writer(tmp_path, "kill")
    killed.communicate(timeout=60)
    assert killed.returncode == -9
    (left,) = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    # One an older run left under a name `new_temp_file` makes.
    older = ".recs.parquet.0123abcd.tmp"
    (tmp_path / older).write_text("partial rows")
    # Not temporary files of this output: another output's, or names
    # recsys does not make.
    others = [".other.parquet.0123abcd.tmp", ".recs.parquet.notes.tmp"]
    others += [".recs.parquet.0123abcd.tmp.bak", "recs.parquet.0123abcd.tmp"]
    for name in others:
        (tmp_path / name).write_text("keep")
    with caplog.at_level("WARNING", logger="recsys"):
        assert _write(tmp_path / "recs.parquet") == 2
    assert sorted(os.listdir(tmp_path)) == sorted([*others, "recs.parquet"])
    assert pq.read_table(tmp_path / "recs.parquet")["x"].to_pylist() == [7, 8]
    for name in (left, older):
        assert (
            f"Removed {tmp_path / name}, left by an interrupted write of "
            f"{tmp_path / 'recs.parquet'}." in caplog.text
        )


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    live = _writer(tmp_path, "wait")
    try:
        (tmp,) = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
        with pytest.raises(OutputLockedError, match="Another recsys process"):
            _write(tmp_path / "recs.parquet")
        assert (tmp_path / tmp).exists()
    finally:
        live.communicate("go\n", timeout=60)
    assert live.returncode == 0
    assert pq.read_table(tmp_path / "recs.parquet").num_rows == 1001
    assert os.listdir(tmp_path) == ["recs.parquet"]
