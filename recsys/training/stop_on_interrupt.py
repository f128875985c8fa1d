"""`interruptible_fit`: a fit that ends at a batch boundary on a recorded
stop (`recsys.training.interrupt`)."""

import keras

from recsys.training import interrupt
from recsys.training.progress import progress_callbacks


class StopOnInterrupt(keras.callbacks.Callback):
    """Raises `SystemExit` (`KeyboardInterrupt` for Ctrl-C in Python) at
    the end of the batch during which a stop was recorded
    (`recsys.training.interrupt`: SIGTERM or Ctrl-C during a fit).

    Use it through `interruptible_fit`, which also marks the fit as
    running.
    """

    def _stop_if_asked(self, *args, **kwargs):
        interrupt.raise_pending()

    on_train_batch_end = _stop_if_asked
    on_test_batch_end = _stop_if_asked
    on_epoch_end = _stop_if_asked


def interruptible_fit(model, *args, callbacks=(), **kwargs):
    """`model.fit(*args, **kwargs)` that a SIGTERM stops at a batch end.

    Args:
        model: a compiled Keras model.
        *args: `fit`'s positional arguments.
        callbacks: sequence of Keras callbacks; `StopOnInterrupt` is added
            after them, and for a log file (`verbose=2`) the progress lines
            within an epoch (`progress_callbacks`).
        **kwargs: `fit`'s other arguments.

    Returns:
        `fit`'s `History`.

    Example:

    ```python
    interruptible_fit(model, x, y, epochs=3, callbacks=[StopWhenDiverged()])
    ```
    """
    x = kwargs["x"] if "x" in kwargs else (args[0] if args else None)
    # Examples per step: fit's own, or a PyDataset's (streamed batches).
    batch_size = kwargs.get("batch_size") or getattr(x, "batch_size", None)
    # A log file's lines within an epoch (Keras prints one per epoch).
    lines = progress_callbacks(kwargs.get("verbose"), batch_size)
    with interrupt.fitting():
        return model.fit(
            *args, callbacks=[*callbacks, StopOnInterrupt(), *lines], **kwargs
        )
