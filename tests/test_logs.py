import io
import logging
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from recsys import cli
from recsys import logs
from recsys.features import CategoricalFeature
from recsys.features import Preprocessor
from recsys.index.scann_modules import scann_available

NATIVE_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog", re.M)
CURSOR = re.compile(r"\r|\x1b")


def _log_all_levels():
    logger = logging.getLogger("recsys.some.module")
    logger.debug("a debug line")
    logger.info("an info line")
    logger.warning("a warning line")
    logger.error("an error line")


@pytest.mark.parametrize(
    "verbosity, shown, hidden",
    [
        (-1, ["warning: a warning line", "error: an error line"], ["info"]),
        (0, ["an info line", "warning: a warning line"], ["debug"]),
        (1, ["a debug line", "an info line", "error: an error line"], []),
    ],
)
def test_configure_logging_levels(verbosity, shown, hidden, capsys):
    logs.configure_logging(verbosity)
    _log_all_levels()
    err = capsys.readouterr().err
    for line in shown:
        assert line in err.splitlines()
    for word in hidden:
        assert word not in err


def test_configure_logging_twice_keeps_one_handler(capsys):
    logs.configure_logging(1)
    logs.configure_logging(0)
    _log_all_levels()
    err = capsys.readouterr().err
    assert err.count("an info line") == 1 and "debug" not in err


def test_collision_report_reaches_stderr(capsys):
    logs.configure_logging(0)
    frame = pd.DataFrame({"user": [str(i) for i in range(300)]})
    feature = CategoricalFeature("user", vocabulary="hash", num_buckets=64)
    Preprocessor(features=[feature]).fit(frame)
    err = capsys.readouterr().err
    assert "Hashed feature 'user': 300 distinct values in 64 buckets" in err


def test_cli_shows_info_and_quiet_hides_it(monkeypatch, tmp_path, capsys):
    def run(args):
        logging.getLogger("recsys.data.synthetic").info("an info line")
        logging.getLogger("recsys.data.synthetic").warning("careful")
        return 0

    # `build_parser` binds the command's function when main() runs.
    monkeypatch.setattr(cli, "cmd_synth", run)
    assert cli.main(["synth", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "an info line" in err and "warning: careful" in err
    assert cli.main(["synth", str(tmp_path / "b"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "an info line" not in err and "warning: careful" in err


def test_native_logs_become_log_records(capfd, caplog):
    logger = logging.getLogger("recsys.index.test")
    with caplog.at_level(logging.DEBUG, logger="recsys.index.test"):
        with logs.native_logs(logger):
            os.write(
                2,
                b"WARNING: All log messages before absl::InitializeLog() is "
                b"called are written to STDERR\n"
                b"I0000 00:00:1795913995.855289   15867 part.cc:58] Sampled\n"
                b"not a log line\n"
                b"E0000 00:00:1795913995.856987   15867 gmm.cc:1026] Broke\n",
            )
    assert capfd.readouterr().err == "not a log line\n"
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert records == [
        (logging.DEBUG, "Sampled (native I, part.cc:58)"),
        (logging.ERROR, "Broke (native E, gmm.cc:1026)"),
    ]


BUILD = """
import numpy as np
from recsys.index import build_index
from recsys.logs import configure_logging

rows = np.random.default_rng(0).normal(size=(2000, 8)).astype("float32")
rows[:100] = 0  # empty partitions: ScaNN warns it cannot normalize them
build_index(rows, kind="scann")
print("built", flush=True)
configure_logging(1)
build_index(rows, kind="scann")
"""


@pytest.mark.skipif(not scann_available(), reason="ScaNN is not installed")
def test_scann_build_writes_no_native_lines_to_stderr():
    done = subprocess.run(
        [sys.executable, "-c", BUILD],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "built\n"
    assert not NATIVE_LINE.search(done.stderr), done.stderr
    # Under -v the same lines are there, as DEBUG log messages.
    assert "(native I, partitioner_factory_base.cc:" in done.stderr


def test_progress_bar_off_a_terminal_prints_plain_lines(monkeypatch):
    monkeypatch.setattr(logs, "LINE_INTERVAL", 0.0)
    stream = io.StringIO()
    outer = logs.progress_bar(total=3, desc="outer", file=stream, leave=False)
    for step in range(3):
        outer.set_postfix_str(f"stage {step}")
        for _ in logs.progress_bar(range(5), desc="inner", file=stream):
            pass
        outer.update()
    outer.close()
    text = stream.getvalue()
    assert not CURSOR.search(text), repr(text)
    lines = text.splitlines()
    assert all(line.strip() for line in lines), repr(text)
    assert "inner: 100%|##########| 5/5" in text  # ASCII, kept bars
    assert lines[0].startswith("outer:   0%")
    # Not kept on a terminal, but a log erases nothing: its end is said.
    assert lines[-1].startswith("outer: 100%|##########| 3/3"), repr(text)


def test_progress_bar_off_a_terminal_prints_at_most_every_interval():
    stream = io.StringIO()
    bar = logs.progress_bar(range(10_000), desc="rows", file=stream)
    for _ in bar:
        bar.set_postfix_str("busy")  # forces a refresh on a terminal
    lines = stream.getvalue().splitlines()
    # The first line, then the last one on close.
    assert len(lines) == 2, lines
    assert lines[-1].startswith("rows: 100%")


def test_progress_bar_on_a_terminal_is_tqdm_auto():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    bar = logs.progress_bar(total=1, file=Terminal())
    assert type(bar) is logs.auto_tqdm
    bar.close()


def test_warnings_once_shows_each_warning_once_to_every_handler(capsys, caplog):
    logs.configure_logging(0)
    logger = logging.getLogger("recsys.some.module")
    with caplog.at_level(logging.INFO), logs.warnings_once():
        for _ in range(3):
            logger.warning("the table is small")
            logger.warning("trial %s diverged", 1)
            logger.info("an info line")
        logging.getLogger("elsewhere").warning("not ours")
        logging.getLogger("elsewhere").warning("not ours")
    logger.warning("the table is small")  # after the block: shown again
    err = capsys.readouterr().err
    assert err.count("warning: the table is small") == 2
    assert err.count("warning: trial 1 diverged") == 1
    assert err.count("an info line") == 3
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("the table is small") == 2
    assert messages.count("trial 1 diverged") == 1
    assert messages.count("not ours") == 2


def test_warnings_once_leaves_other_threads_alone(capsys):
    import threading

    logs.configure_logging(0)
    logger = logging.getLogger("recsys.some.module")

    def elsewhere():
        for _ in range(2):
            logger.warning("a request's own warning")

    with logs.warnings_once():
        logger.warning("a request's own warning")
        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
    assert capsys.readouterr().err.count("a request's own warning") == 3
