"""A stop requested during a fit ends it at the next batch's end."""

import keras
import numpy as np
import pytest

from recsys.training import interrupt
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
