"""`StopOnInterrupt`: a fit ends at a batch boundary on a recorded stop."""

import keras

from recsys.training import interrupt


class StopOnInterrupt(keras.callbacks.Callback):
    """Raises `SystemExit` at the end of the batch during which a stop was
    recorded (`recsys.training.interrupt`: SIGTERM during a fit).

    Example:

    ```python
    with interrupt.fitting():
        model.fit(x, y, callbacks=[StopOnInterrupt()])
    ```
    """

    def _stop_if_asked(self, *args, **kwargs):
        code = interrupt.pending()
        if code is not None:
            raise SystemExit(code)

    on_train_batch_end = _stop_if_asked
    on_test_batch_end = _stop_if_asked
    on_epoch_end = _stop_if_asked
