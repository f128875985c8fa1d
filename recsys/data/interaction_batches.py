"""`InteractionBatches`: fixed-size shuffled training batches from row groups.

Training streams the rows instead of holding them: each epoch visits the row
groups in a new random order, in windows of `window` groups whose rows are
shuffled together, and cuts the window stream into batches of exactly
`batch_size` rows (a batch may span two windows; the last partial batch of
the epoch is dropped). Fixed shapes matter: a jit-compiled step would
compile again for every new batch size. Memory holds at most two windows of
model inputs, whatever the number of rows.
"""

import threading

import keras
import numpy as np


class InteractionBatches(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` of training batches read group by group.

    Args:
        load: callable. `load(group)` returns the model inputs of row group
            `group` as a dict of numpy arrays with `group_rows[group]` rows.
        group_rows: list of int. Rows that each group contributes (0 for a
            group to skip).
        batch_size: int. Rows per batch.
        seed: int. Seeds the per-epoch order. Defaults to `0`.
        window: int. Row groups whose rows are shuffled together. Defaults
            to `8`.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`, ...).

    Example:

    ```python
    batches = InteractionBatches(load, group_rows, batch_size=4096)
    model.fit(batches, epochs=1)
    ```
    """

    def __init__(
        self, load, group_rows, batch_size, seed=0, window=8, **kwargs
    ):
        super().__init__(**kwargs)
        if batch_size < 1 or window < 1:
            raise ValueError(
                "`batch_size` and `window` must be positive integers. "
                f"Received: batch_size={batch_size}, window={window}"
            )
        self.load = load
        self.group_rows = np.asarray(group_rows, np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.window = window
        self.num_rows = int(self.group_rows.sum())
        if self.num_rows < batch_size:
            raise ValueError(
                f"Only {self.num_rows} training rows, fewer than one batch "
                f"of {batch_size}. Fix: lower train.batch_size or add data."
            )
        self._lock = threading.Lock()
        self.epoch = 0
        self._plan()

    def _plan(self):
        """This epoch's windows (lists of groups) and their row offsets."""
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = np.flatnonzero(self.group_rows)
        groups = groups[rng.permutation(len(groups))]
        self._windows = [
            groups[i : i + self.window]
            for i in range(0, len(groups), self.window)
        ]
        sizes = [int(self.group_rows[w].sum()) for w in self._windows]
        self._offsets = np.r_[0, np.cumsum(sizes)]
        self._cache = {}

    def __len__(self):
        return self.num_rows // self.batch_size

    def _window_inputs(self, w):
        if w not in self._cache:
            parts = [self.load(int(g)) for g in self._windows[w]]
            inputs = {
                name: np.concatenate([p[name] for p in parts])
                for name in parts[0]
            }
            rng = np.random.default_rng([self.seed, self.epoch, w + 1])
            order = rng.permutation(self._offsets[w + 1] - self._offsets[w])
            inputs = {name: value[order] for name, value in inputs.items()}
            # Batches run forward: only the window before is still needed.
            self._cache = {k: v for k, v in self._cache.items() if k >= w - 1}
            self._cache[w] = inputs
        return self._cache[w]

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} out of range [0, {len(self)}).")
        start = index * self.batch_size
        stop = start + self.batch_size
        parts = []
        with self._lock:
            w = int(np.searchsorted(self._offsets, start, side="right")) - 1
            while start < stop:
                inputs = self._window_inputs(w)
                low = start - self._offsets[w]
                high = min(stop, self._offsets[w + 1]) - self._offsets[w]
                parts.append({k: v[low:high] for k, v in inputs.items()})
                start = self._offsets[w] + high
                w += 1
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def on_epoch_end(self):
        self.epoch += 1
        with self._lock:
            self._plan()
