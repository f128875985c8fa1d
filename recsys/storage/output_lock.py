"""One writer per output: an advisory lock beside the bundle directory.

Two `recsys train` runs given the same `--output` would share a job
directory (each resuming from, then deleting, the other's checkpoints) and
race to swap the bundle. The first to start holds `fcntl.flock` on
`.<name>.lock` beside the output until it exits; the second fails at once,
naming the first's process id. The kernel drops the lock when its holder
dies, even by SIGKILL, so a stale lock file never blocks a rerun.

The lock is re-entrant within a process (the CLI holds it for the whole
run, the bundle write takes it again), not between threads.
"""

import contextlib
import fcntl
import os
import threading

_held = {}  # lock path -> [file descriptor, depth]
_guard = threading.Lock()


class OutputLockedError(ValueError):
    """Another process is writing the same output."""


def lock_path(path):
    """The lock file of the output directory `path`."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    return os.path.join(parent, f".{name}.lock")


def _holder(fd):
    """What the lock file says of its holder: `"pid 42, recsys train"`."""
    try:
        text = os.pread(fd, 200, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    pid, _, purpose = text.partition(" ")
    if not pid.isdigit():
        return "pid unknown"
    return f"pid {pid}, {purpose}" if purpose else f"pid {pid}"


def _acquire(lock, purpose):
    """An fd holding `flock` on `lock`, or raises `OutputLockedError`."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OutputLockedError(holder) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder before us unlinks the file on release: if it did so
        # after our open, we lock a file nobody else will ever open. Only
        # the file still at `lock` counts.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {purpose}\n".encode(), 0)
            return fd
        os.close(fd)


def _release(lock, fd):
    # Unlinked while still locked, so no other process can lock this file
    # after we let go of it (see `_acquire`).
    with contextlib.suppress(OSError):
        os.unlink(lock)
    os.close(fd)


@contextlib.contextmanager
def output_lock(path, purpose="a bundle write"):
    """Holds the lock of the output directory `path`.

    Args:
        path: str. The bundle directory (it need not exist; its parent is
            created if missing).
        purpose: str. What this process does, written to the lock file
            for the message another process gets. Defaults to
            `"a bundle write"`.

    Raises:
        OutputLockedError: if another process holds the lock.

    Example:

    ```python
    with output_lock("artifacts/run"):
        ...  # train, then write the bundle
    ```
    """
    path = os.path.abspath(path)
    lock = lock_path(path)
    with _guard:
        if lock in _held:
            _held[lock][1] += 1
        else:
            try:
                os.makedirs(os.path.dirname(lock), exist_ok=True)
                fd = _acquire(lock, purpose)
            except OSError as error:
                # A read-only folder or file system above the output, or a
                # folder that cannot hold one (/proc): a bare "Permission
                # denied: .../.run.lock" named neither --output nor a fix.
                raise type(error)(
                    f"Cannot write {path}: {error.filename or lock} is not "
                    f"writable ({error.strerror}). Fix: choose an --output in "
                    "a folder you can write, or make that folder writable."
                ) from None
            except OutputLockedError as error:
                raise OutputLockedError(
                    f"Another recsys process is writing {path} "
                    f"({error.args[0]}; lock file {lock}). Fix: wait for "
                    "it to finish, or choose another --output."
                ) from None
            _held[lock] = [fd, 1]
    try:
        yield
    finally:
        with _guard:
            _held[lock][1] -= 1
            if _held[lock][1] == 0:
                fd, _ = _held.pop(lock)
                _release(lock, fd)


@contextlib.contextmanager
def try_output_lock(path):
    """Holds the lock of `path` if it is free; yields whether it does.

    For readers that tidy up after a crashed writer: they must leave
    everything alone while a live writer holds the lock, and may lack the
    permission to create the lock file at all.

    Args:
        path: str. The bundle directory.

    Yields:
        bool. `True` when this process holds the lock.
    """
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(output_lock(path, "a recovery of a write"))
        held = True
    except (OutputLockedError, OSError):
        held = False
    with stack:
        yield held
