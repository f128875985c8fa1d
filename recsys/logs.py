"""What a user sees on stderr: log messages, native logs, progress bars.

Four pieces, so that every recsys message reaches a terminal or a log
file the same way:

- `configure_logging(verbosity)`: the CLI's logging setup. The library
  itself only creates `logging.getLogger(__name__)` loggers and never
  configures logging (an application embedding recsys owns that).
- `warnings_once()`: within the block, a recsys warning already shown is
  not shown again (`recsys tune` prepares the table for every trial).
- `native_logs(logger)`: ScaNN's C++ code logs through its own, statically
  linked absl straight to file descriptor 2 (`I0000 ...
  partitioner_factory_base.cc:58] ...`). That absl reads no environment
  variable (`TF_CPP_MIN_LOG_LEVEL`, `GLOG_minloglevel`,
  `ABSL_MIN_LOG_LEVEL` change nothing, checked on scann 1.4.2), and its
  `absl::SetMinLogLevel` is exported only under a name mangled with the
  absl release. So the block's writes to fd 2 are held back and each absl
  line is passed to `logger` instead (DEBUG, or ERROR for `E`/`F` lines);
  anything else is written out unchanged.
- `progress_bar(iterable, **kwargs)`: a tqdm bar that, when its stream is not
  a terminal (a log file, a pipe, a CI job), prints one plain line at
  most every `LINE_INTERVAL` seconds, with no `\\r` or cursor codes.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as std_tqdm

# Seconds between two lines of a progress bar written to a non-terminal.
LINE_INTERVAL = 10.0
# Levels of `configure_logging(verbosity)`: -q (-1), default (0), -v (1).
VERBOSITY_LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
# TensorFlow's C++ log level (`TF_CPP_MIN_LOG_LEVEL`): 3 keeps even its
# start-up "errors" (`failed call to cuInit` on a machine without a GPU)
# off the terminal; a real failure still raises in Python. -v shows all.
TF_LOG_LEVELS = {-1: "3", 0: "3", 1: "0"}

# An absl log line (`I0000 00:00:1795913995.855289   15867 file.cc:58] msg`),
# TensorFlow's variant (`2026-11-29 01:00:54.595610: E file.cc:51] msg`),
# or the notice absl prints before its first line.
_NATIVE_LINE = re.compile(
    rb"(?:WARNING: All log messages before absl::InitializeLog\(\) is "
    rb"called are written to STDERR"
    rb"|(?P<absl>[IWEF])\d{4} [\d:.]+ +\d+ (?P<where>[^\]\s]+)\] "
    rb"(?P<message>[^\n]*)"
    rb"|\d{4}-\d\d-\d\d [\d:.]+: (?P<tf>[IWEF]) (?P<tf_where>[^\]\s]+)\] "
    rb"(?P<tf_message>[^\n]*))\r?\n?"
)
# One capture of fd 2 at a time: the descriptor is shared by all threads.
_CAPTURE_LOCK = threading.RLock()
_capturing = False
_HANDLER_MARK = "_recsys_cli_handler"


class _Formatter(logging.Formatter):
    """One plain line: the message, after `warning: ` or `error: ` for
    those levels (and the traceback, if one was logged)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"error: {text}"
        if record.levelno >= logging.WARNING:
            return f"warning: {text}"
        return text


class _StderrHandler(logging.Handler):
    """Writes to the `sys.stderr` of the moment, through `tqdm.write`, so a
    message does not break a progress bar drawn on a terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            std_tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


def configure_logging(verbosity: int = 0) -> None:
    """Sends the `recsys` loggers' messages to stderr, one plain line each.

    For the command line only: a library module never calls it. Calling it
    again replaces the earlier handler. Also sets `TF_CPP_MIN_LOG_LEVEL`
    (unless set) so that TensorFlow's C++ start-up lines stay off stderr.

    Args:
        verbosity: int. -1 (or less) shows warnings and errors only, 0
            adds INFO messages (what a run did: the index kind, hashed
            features' collision reports), 1 (or more) adds DEBUG messages,
            ScaNN's native log lines among them. Defaults to `0`.

    Example:

    ```python
    configure_logging(args.verbose - args.quiet)
    ```
    """
    verbosity = max(-1, min(1, int(verbosity)))
    # Read when TensorFlow loads, so set before anything imports it; a
    # value the user set wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVELS[verbosity])
    logger = logging.getLogger("recsys")
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            logger.removeHandler(handler)
    level = VERBOSITY_LEVELS[verbosity]
    handler = _StderrHandler(level)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(_Formatter("%(message)s"))
    logger.addHandler(handler)
    # The handler filters; the logger is only ever opened further, so that
    # a process calling `main()` twice (tests) never loses records another
    # handler (pytest's `caplog`, an application's) asked for. Records
    # still propagate to the root logger, which the CLI leaves without
    # handlers.
    logger.setLevel(min(level, logger.getEffectiveLevel()))


@contextlib.contextmanager
def warnings_once() -> Iterator[None]:
    """Within the block, a `recsys` warning whose text was shown is not
    shown again: `recsys tune` prepares the table for every trial, and
    each trial repeated the same warnings about it.

    Filters the handlers that show `recsys` records (the `recsys` logger's,
    the root logger's, or Python's last resort where there are none), so
    the records still reach every handler once.

    Example:

    ```python
    with warnings_once():
        for trial in trials:
            run(trial)
    ```
    """
    shown: dict[str, logging.LogRecord] = {}
    # Only the block's own thread: a service scoring in other threads
    # while a tune runs keeps its warnings.
    thread = threading.get_ident()

    def first_time(record: logging.LogRecord) -> bool:
        if (
            record.levelno != logging.WARNING
            or not record.name.startswith("recsys")
            or record.thread != thread
        ):
            return True
        # The same record passes every handler; a later one with its text
        # is a repeat.
        return shown.setdefault(record.getMessage(), record) is record

    handlers = [
        *logging.getLogger("recsys").handlers,
        *logging.getLogger().handlers,
    ]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        handler.addFilter(first_time)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(first_time)


# -- native logs -------------------------------------------------------------


def _flush_stderr() -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()


def _replay(captured: bytes, logger: logging.Logger) -> None:
    """Logs the absl lines of `captured`; writes the rest to fd 2."""
    rest = []
    start = 0
    for match in _NATIVE_LINE.finditer(captured):
        rest.append(captured[start : match.start()])
        start = match.end()
        severity = match["absl"] or match["tf"]
        if severity is None:
            continue  # absl's "before InitializeLog" notice
        where = match["where"] or match["tf_where"]
        message = match["message"] or match["tf_message"] or b""
        level = logging.ERROR if severity in b"EF" else logging.DEBUG
        logger.log(
            level,
            "%s (native %s, %s)",
            message.decode(errors="replace").strip(),
            severity.decode(),
            where.decode(errors="replace"),
        )
    rest.append(captured[start:])
    other = b"".join(rest)
    if other:
        # Another thread's output, or a progress bar: delayed, not lost.
        with contextlib.suppress(OSError):
            os.write(2, other)


@contextlib.contextmanager
def native_logs(logger: logging.Logger) -> Iterator[None]:
    """Routes native (C++) log lines written during the block to `logger`.

    File descriptor 2 points at a temporary file while the block runs. On
    exit each absl or TensorFlow log line found there is logged (DEBUG; `E`
    and `F` lines at ERROR) and any other output is written to stderr
    unchanged. Blocks in several threads run one at a time (fd 2 is shared
    by the whole process); a nested block is part of the outer one. Where
    fd 2 cannot be duplicated the block runs as it is.

    Args:
        logger: `logging.Logger`. Receives the native lines.

    Example:

    ```python
    with native_logs(logger):
        searcher = builder.build()
    ```
    """
    global _capturing
    with _CAPTURE_LOCK:
        if _capturing:
            yield
            return
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            with tempfile.TemporaryFile() as sink:
                _flush_stderr()
                os.dup2(sink.fileno(), 2)
                _capturing = True
                try:
                    yield
                finally:
                    _capturing = False
                    _flush_stderr()
                    os.dup2(saved, 2)
                    sink.seek(0)
                    _replay(sink.read(), logger)
        finally:
            os.close(saved)


# -- progress bars -----------------------------------------------------------


class _Lines:
    """The stream of a `_LineBar`: drops tqdm's bare `\\r` and newlines."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        if text.strip():
            self.stream.write(text)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _LineBar(std_tqdm):
    """A tqdm bar for a non-terminal: a plain line per `LINE_INTERVAL` s
    and the last one on close, ASCII only."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        self._interval = LINE_INTERVAL
        self._printed_at: float | None = None
        self._printed_n = -1
        self._closing = False
        kw["file"] = _Lines(kw.get("file") or sys.stderr)
        kw.setdefault("ascii", True)
        # A log erases nothing: a bar that is not kept would end on its
        # first line ("bundle: 0%"), as if stalled.
        kw["leave"] = True
        kw["mininterval"] = max(kw.get("mininterval") or 0.0, self._interval)
        super().__init__(*args, **kw)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is not None:  # tqdm clearing the line: nothing to clear
            return False
        now = time.monotonic()
        due = self._printed_at is None or now - self._printed_at >= (
            self._interval
        )
        # On close, the last line only if it says something new.
        if due or (self._closing and self.n != self._printed_n):
            line = self.__str__().strip()
            if line:
                self.fp.write(line + "\n")
                self.fp.flush()
            self._printed_at, self._printed_n = now, self.n
        return False

    def moveto(self, n: int) -> None:
        """No cursor movement: lines follow each other."""

    def clear(self, nolock: bool = False) -> None:
        """Nothing to clear: a printed line stays."""

    def close(self) -> None:
        self._closing = True
        super().close()


def _is_notebook_bar() -> bool:
    # `tqdm.auto` picks the widget bar in a Jupyter kernel with ipywidgets.
    return any(cls.__module__ == "tqdm.notebook" for cls in auto_tqdm.__mro__)


def progress_bar(iterable: Any = None, **kwargs: Any) -> std_tqdm:
    """A tqdm progress bar that suits where its output goes.

    On a terminal, and in a notebook, this is `tqdm.auto.tqdm`. When the
    stream (`file`, by default `sys.stderr`) is not a terminal, the bar
    prints a plain ASCII line at most every `LINE_INTERVAL` seconds (and
    its last line on close, even with `leave=False`), with no carriage
    returns or cursor codes, so a log file stays readable.

    Args:
        iterable: iterable or None. What to iterate over, as for `tqdm`.
        **kwargs: `tqdm` arguments (`total`, `desc`, `unit`, `disable`,
            `leave`, `file`, ...).

    Returns:
        A `tqdm` instance.

    Example:

    ```python
    for batch in progress_bar(batches, desc="embed", disable=not show):
        ...
    ```
    """
    stream = kwargs.get("file") or sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        terminal = bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or odd stream
        terminal = False
    if terminal or kwargs.get("disable") is True or _is_notebook_bar():
        return auto_tqdm(iterable, **kwargs)
    return _LineBar(iterable, **kwargs)
