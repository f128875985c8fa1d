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
workers on it, and once they answer (`notify_ready`) stops the old ones
gracefully (`RETIRE_SIGNAL`: they stop accepting, finish the requests
they hold and close their connections between requests; SIGKILL after
`STOP_TIMEOUT`). The loading happens
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
# How long a reload waits for its new workers before stopping the old.
READY_TIMEOUT = 60.0
# A new worker to the parent: "I answer". A real-time signal: those queue,
# one per sender, where two SIGUSR1s sent at once arrive as one.
READY_SIGNAL = getattr(signal, "SIGRTMIN", signal.SIGUSR1)
# A reload to an old worker: "stop accepting, finish what you hold, then
# exit" (SIGTERM stops at once). A worker without a handler for it exits.
RETIRE_SIGNAL = signal.SIGUSR2
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SIGNALS = {signal.SIGCHLD, signal.SIGHUP, READY_SIGNAL, *_STOP_SIGNALS}
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


def notify_ready() -> None:
    """Tells the supervisor this worker answers requests (call it once the
    server listens): a reload stops the old workers only then."""
    _signal(os.getppid(), READY_SIGNAL)


def block_worker_signals() -> None:
    """Blocks the signals `run_workers` waits for, in the calling thread
    and every thread started from it afterwards.

    The supervisor waits for them with `sigwaitinfo`; the kernel gives a
    signal sent to the process to any thread that does not block it. A
    thread started before `run_workers` blocks them (a library's pool,
    started while loading the ranker) took a worker's ready signal or a
    SIGHUP whenever the supervisor's own thread was busy, and their
    default action ended the server (every worker with it). Call it
    before loading anything.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


def stop_requested() -> bool:
    """Whether SIGTERM or SIGINT waits for the supervisor (blocked, so
    pending): a long step of a reload or of the start gives up for it."""
    return bool(signal.sigpending() & set(_STOP_SIGNALS))


def run_workers(
    count: int,
    run: Run | None = None,
    *,
    load: Callable[[], Run] | None = None,
    changed: Callable[[], bool] | None = None,
    interval: float = 2.0,
    before_stop: Callable[[], None] | None = None,
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
            Its workers call `notify_ready` once they answer; the old
            ones are stopped when all new ones have (or after
            `READY_TIMEOUT` seconds).
        changed: callable or None. With `load`: asked every `interval`
            seconds; True reloads as SIGHUP does (`recsys serve --watch`).
        interval: float. Seconds between `changed` calls. Defaults to 2.
        before_stop: callable or None. Called once the server stops,
            before its workers are told to: closes what this process
            shares with them (the listening socket, whose open copy here
            kept taking connections that no worker would answer).

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
    supervisor = _Supervisor(count, load, changed, interval)
    try:
        supervisor.fork_all(run if load is None else load())
        logger.info("Started %d workers: %s", count, sorted(supervisor.workers))
        return supervisor.loop()
    finally:
        if before_stop is not None:
            before_stop()
        _stop({**supervisor.workers, **supervisor.retiring})
        # What came after the stop is pending: a worker's READY_SIGNAL (one
        # that finished starting meanwhile), a SIGHUP, a second Ctrl-C.
        # Unblocked, their default actions ended the stopped server (killed
        # by SIGRTMIN, status 162, or a KeyboardInterrupt): taken off first.
        _discard_pending()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


class _Supervisor:
    """The parent's state: its workers, and a reload's two generations."""

    def __init__(self, count, load, changed, interval):
        self.count = count
        self.load = load
        self.watch = changed if load is not None else None
        self.interval = interval
        self.next_check = time.monotonic() + interval
        self.workers: dict[int, tuple[int, Run]] = {}  # pid -> number, run
        # Old workers: pid -> when they get SIGKILL (inf: not yet stopped,
        # their successors are starting).
        self.retiring: dict[int, float] = {}
        self.starting: set[int] = set()  # new workers not ready yet
        self.handover = math.inf  # when the old ones stop regardless
        self.deaths: list[float] = []

    def fork_all(self, run):
        """Forks `count` workers running `run`, the heap frozen first."""
        # `gc.freeze()` keeps the collector from writing to (and so
        # copying) the shared pages; unfrozen first, so that what only an
        # old generation held is collected, not copied into the new
        # workers (the old workers have their own).
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        for number in range(self.count):
            self.workers[_fork(number, run)] = (number, run)

    def loop(self):
        """Waits for signals until the server stops; its exit status."""
        while True:
            info = self._wait()
            now = time.monotonic()
            self._kill_overdue(now)
            if now >= self.handover:
                logger.warning(
                    "New workers %s not ready after %.0f s; stopping the "
                    "old ones anyway.",
                    sorted(self.starting),
                    READY_TIMEOUT,
                )
                self._retire_old()
            if self.watch is not None and now >= self.next_check:
                self.next_check = now + self.interval
                if self.watch():
                    self.reload()
            if info is None:
                continue
            sig = info.si_signo
            if sig in _STOP_SIGNALS or (sig == signal.SIGHUP and not self.load):
                logger.info(
                    "%s: stopping %d workers",
                    signal.Signals(sig).name,
                    len(self.workers),
                )
                return 0
            if sig == signal.SIGHUP:
                self.reload()
            elif sig == READY_SIGNAL:
                self.starting.discard(info.si_pid)
                if not self.starting:
                    self._retire_old()
            elif self._reap():
                return 1

    def _wait(self):
        """The next signal, or None when something is due first."""
        due = min(
            self.handover,
            self.next_check if self.watch is not None else math.inf,
            time.monotonic() + 1.0 if self.retiring else math.inf,
        )
        if due == math.inf:
            return signal.sigwaitinfo(_SIGNALS)
        return signal.sigtimedwait(_SIGNALS, max(due - time.monotonic(), 0))

    def reload(self):
        """Forks a new generation; the old one stops once it is ready."""
        try:
            run = self.load()
            check_fork_safe()
        except Exception:
            logger.exception("Reload failed; the workers serve on unchanged")
            run = None
        if run is None:
            # The refused generation's cycles (its traceback's frames hold
            # it) are freed now, here where its native threads run, not in
            # the next reload's forked helper.
            gc.collect()
            return
        old = sorted(self.workers)
        for pid in old:
            del self.workers[pid]  # and with it the old generation's `run`
            self.retiring[pid] = math.inf
        self.fork_all(run)
        self.starting = set(self.workers)
        self.handover = time.monotonic() + READY_TIMEOUT
        logger.info(
            "Reload: started workers %s; the old ones %s stop once these "
            "answer",
            sorted(self.workers),
            old,
        )

    def _retire_old(self):
        """`RETIRE_SIGNAL` to the old workers (they finish what they hold)."""
        self.starting.clear()
        self.handover = math.inf
        deadline = time.monotonic() + STOP_TIMEOUT
        for pid, when in self.retiring.items():
            if when == math.inf:
                _signal(pid, RETIRE_SIGNAL)
                self.retiring[pid] = deadline

    def _kill_overdue(self, now):
        """SIGKILL to the old workers past their stop deadline."""
        retiring = self.retiring
        for pid, deadline in list(retiring.items()):
            if now >= deadline:
                logger.warning(
                    "Old worker pid %d did not stop; killing it.", pid
                )
                _signal(pid, signal.SIGKILL)
                retiring[pid] = math.nan  # reaped with the others; never again

    def _reap(self):
        """Restarts the workers that died; True when the server must stop."""
        workers, retiring = self.workers, self.retiring
        while workers or retiring:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return False
            if retiring.pop(pid, None) is not None:
                continue  # an old generation's worker, stopped by a reload
            popped = workers.pop(pid, None)
            if popped is None:
                continue  # not a worker (a child of something it ran)
            number, run = popped
            if (
                os.WIFEXITED(status)
                and os.WEXITSTATUS(status) == STARTUP_FAILURE
            ):
                logger.error(
                    "Worker %d (pid %d) could not start; stopping.", number, pid
                )
                return True
            now = time.monotonic()
            deaths = self.deaths
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
            if pid in self.starting:  # a reload waits for its successor
                self.starting.discard(pid)
                self.starting.add(new)
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


def _discard_pending():
    """Takes every pending signal of `_SIGNALS` off the queue, unhandled
    (real-time ones queue once per sender)."""
    while signal.sigtimedwait(_SIGNALS, 0) is not None:
        pass


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
