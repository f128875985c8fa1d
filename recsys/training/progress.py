"""How much Keras prints while it fits."""

import sys
import threading
import time
from typing import Any

import keras

from recsys.logs import LINE_INTERVAL


def keras_verbosity(progress: bool) -> int:
    """The `verbose` argument of `keras.Model.fit` for a `progress` flag.

    A terminal gets the live progress bar; a log file or a pipe one line
    per epoch, since a bar redrawn with carriage returns would fill it
    (`progress_callbacks` adds a line at most every `LINE_INTERVAL`
    seconds within an epoch).

    Args:
        progress: bool. Show training progress at all.

    Returns:
        int. `0` (silent), `1` (progress bar) or `2` (one line per epoch).

    Example:

    ```python
    model.fit(x, y, verbose=keras_verbosity(progress=True))
    ```
    """
    if not progress:
        return 0
    return 1 if sys.stdout.isatty() else 2


def progress_callbacks(
    verbose: Any, batch_size: int | None = None
) -> list[keras.callbacks.Callback]:
    """The callbacks that go with a `fit`'s `verbose`.

    Keras' `verbose=2` (`keras_verbosity` for a log file) prints one line
    per epoch: an epoch of a large table is minutes to hours of silence,
    and a hung job looks like a slow one. So `2` gets `ProgressLines` too.

    Args:
        verbose: `fit`'s `verbose` argument.
        batch_size: int or None. Examples per step, for the lines'
            examples/s. Defaults to `None` (not shown).

    Returns:
        list of Keras callbacks (empty unless `verbose == 2`).

    Example:

    ```python
    verbose = keras_verbosity(progress=True)
    model.fit(
        x, y, batch_size=512, verbose=verbose,
        callbacks=progress_callbacks(verbose, batch_size=512),
    )
    ```
    """
    if verbose != 2:
        return []
    return [ProgressLines(batch_size=batch_size)]


class ProgressLines(keras.callbacks.Callback):
    """Prints a line of training progress at most every `interval` seconds.

    For a log file, beside Keras' line per epoch (`verbose=2`): the
    progress bars of the other stages (`recsys.logs.progress_bar`) keep
    the same pace there. A line reads
    `train: epoch 1/3, 200/879 steps - 9s - 45ms/step - 11,378 examples/s
    - loss: 0.6931` (no epoch part in a fit of one epoch); the epoch's
    last step has none, as Keras' epoch line follows it. Lines go to
    `sys.stdout` as Keras' do (the CLI points it at stderr).

    Args:
        interval: float or None. Least seconds between two lines; None
            reads `LINE_INTERVAL` (10). Defaults to `None`.
        batch_size: int or None. Examples per step, for the examples/s.
            Defaults to `None` (not shown).

    Example:

    ```python
    model.fit(x, y, batch_size=64, verbose=2,
              callbacks=[ProgressLines(batch_size=64)])
    ```
    """

    # Keras may call `on_train_batch_end` from a thread pool: the lock
    # keeps the lines whole and the clock consistent.
    async_safe = True

    def __init__(
        self, interval: float | None = None, batch_size: int | None = None
    ) -> None:
        super().__init__()
        self.interval = LINE_INTERVAL if interval is None else interval
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._epoch = 0
        self._epoch_start = 0.0
        self._printed_at = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._printed_at = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        with self._lock:
            self._epoch = epoch
            self._epoch_start = time.monotonic()
            # Keras' epoch line was just printed: the next is `interval`
            # after it (a first epoch slowed by compiling had the second
            # print "epoch 2/400, 1/5 steps" at its first step).
            self._printed_at = self._epoch_start

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = batch + 1
        total = (self.params or {}).get("steps")
        if total is not None and step >= total:
            return  # Keras' epoch line follows
        with self._lock:
            now = time.monotonic()
            if now - self._printed_at < self.interval:
                return
            self._printed_at = now
            line = self._line(step, total, now - self._epoch_start, logs)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def _line(
        self, step: int, total: int | None, seconds: float, logs: dict | None
    ) -> str:
        epochs = (self.params or {}).get("epochs") or 1
        where = f"epoch {self._epoch + 1}/{epochs}, " if epochs > 1 else ""
        parts = [
            f"train: {where}{step}/{total or '?'} steps",
            f"{seconds:.0f}s",
            _per_step(seconds / step),
        ]
        if self.batch_size:
            rate = step * self.batch_size / max(seconds, 1e-9)
            parts.append(f"{rate:,.0f} examples/s")
        for name, value in (logs or {}).items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            # Keras' own format for its epoch line.
            parts.append(
                f"{name}: {value:.4f}"
                if abs(value) > 1e-3
                else f"{name}: {value:.4e}"
            )
        return " - ".join(parts)


def _per_step(seconds: float) -> str:
    """A step's time as Keras writes it: `45ms/step`, or `293us/step`."""
    if seconds < 1e-3:
        return f"{1e6 * seconds:.0f}us/step"
    return f"{1e3 * seconds:.0f}ms/step"
