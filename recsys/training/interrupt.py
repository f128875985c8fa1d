"""A stop signal (SIGTERM) honoured where training can stop cleanly.

The CLI turns SIGTERM into `SystemExit`, so that the cleanup of temporary
directories and locks runs. Raised from the signal handler while Keras fits,
it lands inside the backend's own code: 3 times in 6 it was swallowed there
(the run went on to its last epoch and exited 0), and during the first
step's compilation the process crashed (status 139). So while a fit runs
the handler only records the request, and every fit
(`recsys.training.stop_on_interrupt.interruptible_fit`) raises it at its
next batch's end, in plain Python.

Example:

```python
interruptible_fit(model, x, y)  # marks the fit as running
# in the SIGTERM handler:
if not interrupt.request(143):  # no fit running: stop here
    raise SystemExit(143)
```
"""

import contextlib

_requested: list[int] = []  # the exit status asked for, once
_fits = [0]  # fits running (a fit inside a fit: an early-stopping run)


def request(code: int) -> bool:
    """Records a stop; whether a running fit will raise it (else the caller
    raises now). A second request while a fit runs is not deferred: a fit
    stuck before its first batch still stops.

    Args:
        code: int. The exit status (`128 + signal`).

    Returns:
        bool. True when a fit will raise `SystemExit(code)` at its next
        batch end.
    """
    deferred = _fits[0] > 0 and not _requested
    _requested.append(code)
    return deferred


def pending() -> int | None:
    """The exit status of a recorded stop, or None."""
    return _requested[0] if _requested else None


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
