"""Training progress in a log file: Keras' line per epoch, and a line at
most every `LINE_INTERVAL` seconds within the epoch."""

import contextlib
import io

import keras
import numpy as np
import pytest

from recsys.training import progress
from recsys.training.progress import keras_verbosity
from recsys.training.progress import progress_callbacks
from recsys.training.stop_on_interrupt import interruptible_fit


def _fit_into_a_log(epochs=1, callbacks=()):
    """Fits a tiny model (4 steps an epoch) with stdout a log file, as
    `recsys train 2> log` does; returns what it printed."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((32, 3), np.float32)
    y = np.zeros((32, 1), np.float32)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        verbose = keras_verbosity(progress=True)
        # As every kind's training fits: through `interruptible_fit`.
        interruptible_fit(
            model,
            x,
            y,
            batch_size=8,
            epochs=epochs,
            verbose=verbose,
            callbacks=callbacks,
        )
    return log.getvalue().splitlines()


def test_progress_lines_in_a_log_within_each_epoch(monkeypatch):
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    lines = _fit_into_a_log(epochs=2)
    train = [line for line in lines if line.startswith("train:")]
    # Steps 1-3 of each epoch; the 4th is Keras' epoch line.
    assert [line.split(" - ")[0] for line in train] == [
        f"train: epoch {epoch}/2, {step}/4 steps"
        for epoch in (1, 2)
        for step in (1, 2, 3)
    ]
    assert all("examples/s - loss: " in line for line in train)
    assert sum(line.startswith("4/4 - ") for line in lines) == 2
    assert "\r" not in "".join(lines)


def test_progress_lines_come_at_most_every_interval():
    # The whole fit takes less than the 10 s between two lines.
    lines = _fit_into_a_log()
    assert not [line for line in lines if line.startswith("train:")]
    assert [line for line in lines if line.startswith("4/4 - ")]


def test_the_interval_counts_from_keras_epoch_line(monkeypatch):
    # A first epoch slowed by compiling made the second epoch's first
    # step print a line right after Keras' own.
    import time

    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.5)
    slow = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: time.sleep(0.6) if epoch == 0 else None
    )
    lines = _fit_into_a_log(epochs=2, callbacks=[slow])
    assert not [line for line in lines if line.startswith("train:")]


@pytest.mark.parametrize("verbose", [0, 1, "auto"])
def test_no_progress_lines_for_a_terminal_or_silence(verbose):
    assert progress_callbacks(verbose, batch_size=8) == []
