"""`run_workers`: forks and supervises the processes of `recsys serve
--workers N`.

Pre-fork: the parent loads and checks the bundle, binds the port, then
forks N workers that each answer on the inherited socket. The loaded
arrays and the ScaNN searcher (most of a serving process's memory) are
shared with the parent copy-on-write, not loaded N times; `gc.freeze()`
before forking keeps the collector from writing to (and so copying) the
pages of the objects loaded until then.

`fork` copies only the thread that calls it, so the parent must not have
started any Python thread (the top-items precompute, the query tower's
load) or loaded JAX: each worker starts its own after the fork
(`check_fork_safe`). Native pools that survive are either fork-aware
(OpenBLAS, jemalloc, Arrow) or never used by a worker (ScaNN's query pool:
workers search on the calling thread, see `recsys.serving.server`).

The parent only supervises: a worker that dies is logged and forked again
from the same loaded state (seconds, no reload); a worker that fails to
start (exit status `STARTUP_FAILURE`), or workers dying more than
`MAX_RESTARTS` times within `RESTART_WINDOW` seconds, stop the server with
status 1. SIGTERM or SIGINT to the parent stop every worker (SIGTERM, then
SIGKILL after `STOP_TIMEOUT` seconds) and exit 0.

SIGHUP reloads, when the server gave a `load` function (as gunicorn and
nginx do): the parent loads the next generation (the bundle again, or what
its pointer file names now) while the workers answer, forks a new set of
workers on it, then stops the old ones gracefully (SIGTERM: they finish
the requests they hold; SIGKILL after `STOP_TIMEOUT`). The loading happens
in the parent, which answers no request, so no worker pauses for it (a
ScaNN searcher's load holds the interpreter lock ~0.4 s on a 1M-item
bundle). A generation that fails to load is logged and the old workers
serve on. Without `load`, SIGHUP stops the server.
"""

import ctypes
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# A worker's exit status when its server could not start (uvicorn's own
# code for it): the same fork would fail again, so the parent stops.
STARTUP_FAILURE = 3
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
STOP_TIMEOUT = 30.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SIGNALS = {signal.SIGCHLD, signal.SIGHUP, *_STOP_SIGNALS}
# prctl(PR_SET_PDEATHSIG): a worker gets SIGTERM when the parent dies
# (killed with SIGKILL, so unable to stop it), instead of serving on.
_PR_SET_PDEATHSIG = 1


def check_fork_safe() -> None:
    """Raises if this process runs what a fork would break.

    Raises:
        RuntimeError: a Python thread other than the main one is alive,
            or JAX (whose runtime is multithreaded) is loaded.
    """
    threads = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ]
    if threads:
        raise RuntimeError(
            "Cannot fork workers: threads are running "
            f"({', '.join(threads)}); a worker would inherit their locks "
            "but not the threads."
        )
    if "jax" in sys.modules:
        raise RuntimeError(
            "Cannot fork workers after JAX is loaded (its runtime is "
            "multithreaded): load the query tower in each worker."
        )


def die_with_parent() -> None:
    """Asks Linux to SIGTERM this process when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: best effort
        pass


def _fork(number: int, run: Callable[[int], int | None]) -> int:
    """Forks worker `number`; in the child, runs it and never returns."""
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        die_with_parent()
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        result = run(number)
        status = 0 if result is None else int(result)
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        logger.exception("Worker %d failed", number)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # Not `sys.exit`: the parent's atexit handlers and buffers are not
        # the worker's to run or flush.
        os._exit(status)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


Run = Callable[[int], int | None]


def run_workers(
    count: int,
    run: Run | None = None,
    *,
    load: Callable[[], Run] | None = None,
    changed: Callable[[], bool] | None = None,
    interval: float = 2.0,
) -> int:
    """Forks `count` workers running `run(number)` and supervises them.

    Call it from the main thread once everything the workers share is
    loaded (`check_fork_safe` passes). Returns when the server stops.

    Args:
        count: int. Workers, at least 1.
        run: callable. A worker's body, given its number (0..count-1);
            returns (or exits with) its status: 0 for a clean stop,
            `STARTUP_FAILURE` when it could not start.
        load: callable or None. Instead of `run`: loads what the workers
            share and returns their `run`; called once here, and again on
            each SIGHUP (a reload). Nothing else may hold what it loads,
            so that a reload frees the old generation before forking the
            new one (a forked worker keeps every object its parent held).
        changed: callable or None. With `load`: asked every `interval`
            seconds; True reloads as SIGHUP does (`recsys serve --watch`).
        interval: float. Seconds between `changed` calls. Defaults to 2.

    Returns:
        int. The server's exit status: 0 after a stop signal, 1 when a
        worker could not start or workers kept dying.

    Example:

    ```python
    status = run_workers(2, lambda number: server.run(sockets=[sock]))
    ```
    """
    if (run is None) == (load is None):
        raise ValueError("Pass `run` or `load`, not both or neither.")
    check_fork_safe()
    # Blocked here, waited for below: no handler runs between the checks.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    workers: dict[int, tuple[int, Run]] = {}  # pid -> (number, its run)
    retiring: dict[int, float] = {}  # pid -> when it gets SIGKILL
    deaths: list[float] = []
    status = 0
    watch = changed if load is not None else None
    next_check = time.monotonic() + interval
    try:
        _fork_all(count, run if load is None else load(), workers)
        logger.info("Started %d workers: %s", count, sorted(workers))
        while True:
            # Retiring workers are checked once a second for their
            # deadline, a watched bundle every `interval`.
            until_check = max(next_check - time.monotonic(), 0.0)
            timeout = min(
                1.0 if retiring else math.inf,
                math.inf if watch is None else until_check,
            )
            info = (
                signal.sigwaitinfo(_SIGNALS)
                if timeout == math.inf
                else signal.sigtimedwait(_SIGNALS, timeout)
            )
            _kill_overdue(retiring)
            if watch is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + interval
                if watch():
                    _reload(count, load, workers, retiring)
            if info is None:
                continue
            if info.si_signo in _STOP_SIGNALS or (
                info.si_signo == signal.SIGHUP and load is None
            ):
                logger.info(
                    "%s: stopping %d workers",
                    signal.Signals(info.si_signo).name,
                    len(workers),
                )
                break
            if info.si_signo == signal.SIGHUP:  # with `load` (see above)
                _reload(count, load, workers, retiring)
                continue
            failed = _reap(workers, deaths, retiring)
            if failed:
                status = 1
                break
    finally:
        _stop({**workers, **retiring})
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    return status


def _fork_all(count, run, workers):
    for number in range(count):
        workers[_fork(number, run)] = (number, run)


def _reload(count, load, workers, retiring):
    """Forks a new generation of workers, then retires the old one."""
    try:
        run = load()
        check_fork_safe()
    except Exception:
        logger.exception("Reload failed; the workers serve on unchanged")
        return
    old = sorted(workers)
    deadline = time.monotonic() + STOP_TIMEOUT
    for pid in old:
        del workers[pid]  # and with it the old generation's `run`
        retiring[pid] = deadline
    # What only the old generation held is freed before the new workers
    # fork: they would keep a copy of it (the old workers have their own).
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _fork_all(count, run, workers)
    for pid in old:
        _signal(pid, signal.SIGTERM)
    logger.info(
        "SIGHUP: started workers %s, stopping the old ones %s",
        sorted(workers),
        old,
    )


def _kill_overdue(retiring):
    now = time.monotonic()
    for pid, deadline in list(retiring.items()):
        if now >= deadline:
            logger.warning("Old worker pid %d did not stop; killing it.", pid)
            _signal(pid, signal.SIGKILL)
            retiring[pid] = float("inf")  # reaped with the others


def _reap(workers, deaths, retiring):
    """Restarts the workers that died; True when the server must stop."""
    while workers or retiring:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return False
        if retiring.pop(pid, None) is not None:
            continue  # an old generation's worker, stopped by a reload
        number, run = workers.pop(pid, (None, None))
        if number is None:
            continue  # not a worker (a child of something it ran)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == STARTUP_FAILURE:
            logger.error(
                "Worker %d (pid %d) could not start; stopping.", number, pid
            )
            return True
        now = time.monotonic()
        deaths[:] = [t for t in deaths if now - t < RESTART_WINDOW] + [now]
        if len(deaths) > MAX_RESTARTS:
            logger.error(
                "Worker %d (pid %d) %s: %d workers died within %.0f s; "
                "stopping.",
                number,
                pid,
                _describe(status),
                len(deaths),
                RESTART_WINDOW,
            )
            return True
        new = _fork(number, run)
        workers[new] = (number, run)
        logger.warning(
            "Worker %d (pid %d) %s; restarted as pid %d.",
            number,
            pid,
            _describe(status),
            new,
        )
    return False


def _stop(workers):
    """SIGTERM to every worker, SIGKILL to those alive after the timeout."""
    for pid in workers:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while workers and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            workers.clear()
            break
        if pid:
            workers.pop(pid, None)
        else:
            time.sleep(0.05)
    for pid in workers:
        logger.warning("Worker pid %d did not stop; killing it.", pid)
        _signal(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    workers.clear()


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
