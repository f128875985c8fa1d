"""A stop signal (SIGTERM, Ctrl-C) honoured where training can stop cleanly.

The CLI turns SIGTERM and Ctrl-C into `SystemExit`, so that the cleanup of
temporary directories and locks runs. Raised from the signal handler while
Keras fits, it lands inside the backend's own code: 3 times in 6 it was
swallowed there (the run went on to its last epoch and exited 0), and
during the first step's compilation the process crashed (status 139). So
while a fit runs the handler only records the request, and every fit
(`recsys.training.stop_on_interrupt.interruptible_fit`) raises it at its
next batch's end, in plain Python. `recsys.train` and `recsys.tune.tune`
do the same for Ctrl-C in Python (`ctrl_c_at_batch_end`), where it stops
them as a `KeyboardInterrupt`.

Example:

```python
interruptible_fit(model, x, y)  # marks the fit as running
# in the SIGTERM handler:
if not interrupt.request(143):  # no fit running: stop here
    raise SystemExit(143)
```
"""

import contextlib
import signal

_requested: list[int] = []  # the exit status asked for, once
_as_keyboard = [False]  # the first request is Ctrl-C in Python
_fits = [0]  # fits running (a fit inside a fit: an early-stopping run)


def request(code: int, *, keyboard: bool = False) -> bool:
    """Records a stop; whether a running fit will raise it (else the caller
    raises now). A second request while a fit runs is not deferred: a fit
    stuck before its first batch still stops.

    Args:
        code: int. The exit status (`128 + signal`).
        keyboard: bool. Raise it as a `KeyboardInterrupt`, not
            `SystemExit(code)`. Defaults to False.

    Returns:
        bool. True when a fit will raise it at its next batch end.
    """
    deferred = _fits[0] > 0 and not _requested
    if not _requested:
        _as_keyboard[0] = keyboard
    _requested.append(code)
    return deferred


def pending() -> int | None:
    """The exit status of a recorded stop, or None."""
    return _requested[0] if _requested else None


def raise_pending() -> None:
    """Raises the recorded stop, if there is one: `KeyboardInterrupt` for
    Ctrl-C in Python, else `SystemExit` with its status."""
    if _requested:
        if _as_keyboard[0]:
            raise KeyboardInterrupt
        raise SystemExit(_requested[0])


@contextlib.contextmanager
def fitting():
    """The block runs a Keras fit holding `StopOnInterrupt`: a stop
    requested meanwhile is deferred to its next batch end. (A context, not
    the callback's `on_train_end`, which a fit ended by an error skips.)"""
    _fits[0] += 1
    try:
        yield
    finally:
        _fits[0] -= 1


@contextlib.contextmanager
def deferred(signals, *, keyboard=False):
    """`signals` during the block stop it, during a fit at its next batch
    end: as `SystemExit(128 + signal)` (the CLI's SIGTERM and Ctrl-C, so
    that its cleanup runs), or as `KeyboardInterrupt` with `keyboard`.

    A stop outside a fit raises at once; one swallowed there anyway (in a
    callback, which drops exceptions) is raised by the next fit's first
    batch or when the block ends. Off the main thread, signals are left
    alone.

    Example:

    ```python
    with deferred((signal.SIGTERM, signal.SIGINT)):
        interruptible_fit(model, x, y)
    ```
    """

    def _stop(signum, frame):
        if not request(128 + signum, keyboard=keyboard):
            if keyboard:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)

    try:
        previous = [signal.signal(stop, _stop) for stop in signals]
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
        raise_pending()
    finally:
        for stop, handler in zip(signals, previous, strict=True):
            signal.signal(stop, handler)
        _requested.clear()


def ctrl_c_at_batch_end():
    """Ctrl-C during the block stops it as a `KeyboardInterrupt`, during a
    fit at its next batch end (`deferred`).

    Python's own handler raises `KeyboardInterrupt` wherever the main
    thread is, and inside JAX (a batch's loss read back to numpy) it was
    swallowed: `recsys.train` from Python ran on to its last epoch after
    Ctrl-C, 2 times in 2. A handler other than Python's (the CLI's, a
    caller's) is left in place.

    Example:

    ```python
    with ctrl_c_at_batch_end():
        interruptible_fit(model, x, y)
    ```
    """
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return contextlib.nullcontext()
    return deferred((signal.SIGINT,), keyboard=True)
