"""`ProfileBatches`: training batches whose profile histories change by epoch.

With `model.history = "profile"` a training row's history is a random half
of its user's other items (`recsys.data.history.profile_items`). Drawn once,
each user would have two fixed histories, which the model can learn by
heart; drawn again every epoch, the history is noise around the user's
profile, as the input dropout of a denoising autoencoder is. Arrays passed
to `Model.fit` are fixed for the whole fit on some backends, so the rows are
served as a `keras.utils.PyDataset` that draws each epoch's histories and
row order itself.
"""

import threading

import keras
import numpy as np

from recsys.data.history import profile_items
from recsys.names import HISTORY


class ProfileBatches(keras.utils.PyDataset):
    """Shuffled training batches with a new profile history each epoch.

    Args:
        inputs: dict of equally long numpy arrays, one row per training
            interaction (`recsys.data.retrieval_inputs.training_inputs`);
            its `HISTORY` is replaced every epoch.
        users: 1-D array. Each row's user; rows grouped by user.
        items: 1-D int array. Each row's item id in the history's
            vocabulary (`0` is padding).
        length: int. History length.
        batch_size: int. Rows per batch. The last batch of an epoch holds
            the rows left over, as `Model.fit` batches arrays: every row
            is trained every epoch (dropping them left 190 of Catsup's
            2,238 rows out of each epoch), for one more trace of the step.
        seed: int. Seeds the histories and the order. Defaults to `0`.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`, ...).

    Example:

    ```python
    batches = ProfileBatches(inputs, users, item_ids, 50, batch_size=1024)
    model.fit(batches, epochs=3, shuffle=False)
    ```
    """

    def __init__(
        self, inputs, users, items, length, batch_size, seed=0, **kwargs
    ):
        super().__init__(**kwargs)
        self.num_rows = len(users)
        if batch_size < 1 or self.num_rows < 1:
            raise ValueError(
                "`batch_size` and the number of rows must be positive. "
                f"Received: batch_size={batch_size}, rows={self.num_rows}"
            )
        self.inputs = {k: v for k, v in inputs.items() if k != HISTORY}
        self.users = np.asarray(users)
        self.items = np.asarray(items)
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self._lock = threading.Lock()
        self._draw()

    def _draw(self):
        """This epoch's histories and row order."""
        self._history = profile_items(
            self.users, self.items, self.length, seed=[self.seed, self.epoch]
        )
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        self._order = rng.permutation(self.num_rows)

    def __len__(self):
        return -(-self.num_rows // self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} out of range [0, {len(self)}).")
        with self._lock:
            rows = self._order[
                index * self.batch_size : (index + 1) * self.batch_size
            ]
            batch = {k: v[rows] for k, v in self.inputs.items()}
            batch[HISTORY] = self._history[rows]
        return batch

    def on_epoch_end(self):
        self.epoch += 1
        with self._lock:
            self._draw()
