"""Training that diverged: a clear error instead of NaN weights.

A learning rate too large for its optimizer (or labels far out of scale)
makes the loss NaN or infinite within an epoch; without a check the run
goes on, and fails later with a message about the metrics' or the index's
inputs (`Input contains NaN`, `embeddings must not contain NaN`).
"""

import math

import keras


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite."""


class StopWhenDiverged(keras.callbacks.Callback):
    """Raises `TrainingDiverged` at the end of an epoch whose loss is not
    finite, naming the optimizer, its rate and the fix.

    Example:

    ```python
    model.fit(x, y, epochs=3, callbacks=[StopWhenDiverged()])
    ```
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        optimizer = self.model.optimizer
        rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        raise TrainingDiverged(
            f"Training diverged: the loss is {float(loss)} after epoch "
            f"{epoch + 1} ({type(optimizer).__name__}, learning rate "
            f"{rate:g}). Fix: a lower train.learning_rate (e.g. "
            f"{rate / 10:g})."
        )
