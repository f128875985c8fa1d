"""A stop requested during a fit ends it at the next batch's end."""

import os
import signal

import keras
import numpy as np
import pandas as pd
import pytest

import recsys
from recsys.training import interrupt
from recsys.training import stop_on_interrupt
from recsys.training.stop_on_interrupt import interruptible_fit


@pytest.fixture(autouse=True)
def no_stop_left():
    yield
    interrupt._requested.clear()
    interrupt._fits[0] = 0


def test_outside_a_fit_the_caller_stops_at_once():
    assert interrupt.request(143) is False
    assert interrupt.pending() == 143


def test_a_fit_stops_at_the_batch_end_after_the_request():
    batches = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            batches.append(batch)
            if batch == 2:  # the signal arrives during batch 2
                # Deferred: the fit raises it; a second one would not be.
                assert interrupt.request(143) is True
                assert interrupt.request(143) is False

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((64, 3)), np.zeros((64, 1))
    with pytest.raises(SystemExit) as stopped:
        interruptible_fit(
            model,
            x,
            y,
            batch_size=8,
            epochs=5,
            verbose=0,
            callbacks=[Count()],
        )
    assert stopped.value.code == 143
    assert batches == [0, 1, 2]
    assert interrupt._fits[0] == 0


def test_a_fit_ended_by_an_error_defers_no_later_stop():
    # Keras skips on_train_end when a fit raises (a diverged loss): the
    # count of running fits must not stay up, or a later SIGTERM outside
    # any fit would wait for a batch end that never comes.
    with pytest.raises(ValueError), interrupt.fitting():
        raise ValueError("diverged")
    assert interrupt.request(143) is False


@pytest.fixture
def python_ctrl_c():
    """SIGINT handled as a plain Python process handles it (a pytest-xdist
    worker may run with it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _fit_interrupted_at(batch, callbacks=()):
    """A fit of 5 epochs of 8 batches; Ctrl-C arrives during `batch`.

    Returns:
        The batches begun.
    """
    batches = []

    class CtrlC(keras.callbacks.Callback):
        def on_train_batch_begin(self, number, logs=None):
            batches.append(number)
            if number == batch:
                os.kill(os.getpid(), signal.SIGINT)

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((64, 3)), np.zeros((64, 1))
    interruptible_fit(
        model,
        x,
        y,
        batch_size=8,
        epochs=5,
        verbose=0,
        callbacks=[CtrlC(), *callbacks],
    )
    return batches


def test_ctrl_c_in_python_stops_a_fit_at_the_batch_end(python_ctrl_c):
    begun = []
    with (
        pytest.raises(KeyboardInterrupt),
        interrupt.ctrl_c_at_batch_end(),
    ):
        begun = _fit_interrupted_at(2)
    assert begun == []  # the fit raised: nothing returned
    assert interrupt.pending() is None  # cleared for the next call
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # A later fit runs to its end.
    assert len(_fit_interrupted_at(-1)) == 40


def test_ctrl_c_swallowed_outside_a_fit_stops_at_the_block_end(
    python_ctrl_c,
):
    # Python drops an exception raised in a callback (a weakref's, as in
    # sqlalchemy's connection pool during `recsys tune`): the stop is
    # raised when the block ends all the same.
    with (
        pytest.raises(KeyboardInterrupt),
        interrupt.ctrl_c_at_batch_end(),
    ):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        assert interrupt.pending() == 128 + signal.SIGINT


def test_a_callers_own_ctrl_c_handler_is_left_alone():
    def own(signum, frame):
        raise RuntimeError("the caller's")

    previous = signal.signal(signal.SIGINT, own)
    try:
        with interrupt.ctrl_c_at_batch_end():
            assert signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGINT, previous)


def test_recsys_train_stops_on_ctrl_c_at_a_batch_end(
    python_ctrl_c, tmp_path, monkeypatch
):
    # Before, Ctrl-C raised inside JAX (a batch's loss read back to numpy)
    # was swallowed and `recsys.train` ran on to its last epoch.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=400), "g": rng.choice(list("abc"), 400)}
    )
    frame["y"] = (frame["x"] > 0).astype(int)
    config = {
        "data": {"user": "", "item": "", "time": "", "label": "y"},
        "features": {"x": {"kind": "numeric"}, "g": {"kind": "categorical"}},
        "model": {"kind": "tabular", "task": "binary"},
        "train": {"epochs": 200, "batch_size": 8, "refit": False},
    }
    begun, ended = [], []
    fit = stop_on_interrupt.interruptible_fit

    def fit_with_ctrl_c(model, *args, callbacks=(), **kwargs):
        class CtrlC(keras.callbacks.Callback):
            def on_train_batch_begin(self, number, logs=None):
                begun.append(number)
                if len(begun) == 3:
                    os.kill(os.getpid(), signal.SIGINT)

            def on_train_batch_end(self, number, logs=None):
                ended.append(number)

        return fit(model, *args, callbacks=[*callbacks, CtrlC()], **kwargs)

    monkeypatch.setattr(
        "recsys.training.refit.interruptible_fit", fit_with_ctrl_c
    )
    with pytest.raises(KeyboardInterrupt):
        recsys.train(config, frame=frame, progress=False, write=False)
    # The third batch ran to its end, and no batch after it began.
    assert len(begun) == len(ended) == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
