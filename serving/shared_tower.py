"""`SharedTower`: one `NumpyTower` in memory shared by forked workers.

Building the numpy query tower needs the Keras tower, and Keras with JAX
costs a serving process 300-400 MB of its own memory. With several
workers (`recsys serve --workers N`) the supervisor maps one anonymous
shared memory region before forking, and one short-lived helper process
(forked too, before any thread exists) loads Keras, converts the tower
(`NumpyTower.from_keras`) and writes its arrays there, then exits. Every
worker, a restarted one included, reads the tower from that memory
without importing Keras; only a tower `NumpyTower` cannot evaluate (or a
failed helper) makes each worker load the Keras tower itself.

Layout: an 8-byte state (`PENDING`, `READY`, `UNSUPPORTED`), an 8-byte
header length, the JSON header (`HEADER_BYTES` at most) naming each
array's offset and shape, then the float32 arrays. Nothing is pickled.
"""

import json
import logging
import mmap
import os
import time
import zipfile
from io import BytesIO
from typing import Any

import numpy as np

from recsys.serving.fast_tower import NumpyTower

logger = logging.getLogger(__name__)

HEADER_BYTES = 1 << 16
PENDING, READY, UNSUPPORTED = 0, 1, 2
ALIGN = 64
WEIGHTS = "model.weights.h5"


class SharedTower:
    """A shared memory region that one process fills with a `NumpyTower`.

    Args:
        capacity: int. Bytes for the arrays (at least the tower's weights).

    Example:

    ```python
    shared = SharedTower.for_bundle(bundle)
    shared.fill_in_child(bundle)  # before forking the workers
    fast = shared.wait()  # in a worker: the NumpyTower, or None
    ```
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        # Anonymous and MAP_SHARED: forked children see the same pages.
        self.memory = mmap.mmap(-1, HEADER_BYTES + self.capacity)
        self.pid: int | None = None

    @classmethod
    def for_bundle(cls, bundle: Any) -> "SharedTower | None":
        """A region sized for `bundle`'s query tower, or None without one.

        The size is the uncompressed size of the `.keras` file's weights,
        read from its zip directory (no Keras needed): the numpy tower's
        float32 arrays are a subset of them.
        """
        data = getattr(bundle, "_query_tower_bytes", None)
        if data is None:
            return None
        try:
            with zipfile.ZipFile(BytesIO(data)) as archive:
                size = archive.getinfo(WEIGHTS).file_size
        except (zipfile.BadZipFile, KeyError, ValueError):
            return None  # each worker loads the Keras tower, as before
        return cls(size + ALIGN * 64)

    # -- the helper process --------------------------------------------------

    def fill_in_child(self, bundle: Any) -> int:
        """Forks a process that converts `bundle`'s tower into this region.

        Call it from a process with no other threads. The child loads the
        Keras tower, writes the `NumpyTower` (or `UNSUPPORTED`) and exits.

        Returns:
            int. The child's pid (the caller reaps it).
        """
        pid = os.fork()
        if pid:
            self.pid = pid
            return pid
        status = 0
        try:
            from recsys.serving.workers import die_with_parent

            die_with_parent()
            fast = NumpyTower.from_keras(bundle.query_tower)
            if fast is None:
                self._set_state(UNSUPPORTED)
            else:
                self.write(fast)
        except BaseException:
            logger.exception("Converting the query tower for workers failed")
            self._set_state(UNSUPPORTED)
            status = 1
        finally:
            os._exit(status)

    def write(self, fast: NumpyTower) -> None:
        """Writes `fast`'s arrays and header, then marks the region ready."""
        offset = 0
        arrays = []

        def place(array):
            nonlocal offset
            if array is None:
                return None
            array = np.ascontiguousarray(array, np.float32)
            if offset + array.nbytes > self.capacity:
                raise ValueError("the numpy tower is larger than its weights")
            arrays.append((offset, array))
            spec = {"offset": offset, "shape": list(array.shape)}
            offset += -(-array.nbytes // ALIGN) * ALIGN
            return spec

        header = {
            "combine": fast.combine,
            "normalize": bool(fast.normalize),
            "parts": [
                {"name": name, "table": place(table), "combiner": combiner}
                for name, table, combiner in fast.parts
            ],
            "dense": [
                {"kernel": place(kernel), "bias": place(bias), "relu": relu}
                for kernel, bias, relu in fast.dense
            ],
        }
        text = json.dumps(header).encode()
        if len(text) > HEADER_BYTES - 16:
            raise ValueError("the numpy tower's header is too large")
        view = memoryview(self.memory)
        for at, array in arrays:
            start = HEADER_BYTES + at
            data = array.reshape(-1).view(np.uint8)
            view[start : start + array.nbytes] = data
        view[8:16] = np.int64(len(text)).tobytes()
        view[16 : 16 + len(text)] = text
        self._set_state(READY)  # last: readers see the data complete

    def _set_state(self, state: int) -> None:
        self.memory[0:8] = np.int64(state).tobytes()

    # -- the workers -----------------------------------------------------------

    @property
    def state(self) -> int:
        return int(np.frombuffer(self.memory, np.int64, count=1)[0])

    def wait(self, timeout: float = 900.0) -> NumpyTower | None:
        """The shared `NumpyTower` once written, or None.

        None when the tower is unsupported, the helper failed, or nothing
        was written within `timeout` seconds: the caller loads Keras.
        """
        deadline = time.monotonic() + timeout
        while self.state == PENDING:
            if time.monotonic() > deadline:
                logger.warning("No shared query tower after %.0f s", timeout)
                return None
            time.sleep(0.05)
        if self.state != READY:
            return None
        return self.read()

    def read(self) -> NumpyTower:
        """The `NumpyTower` viewing the region (read-only arrays)."""
        length = int(np.frombuffer(self.memory, np.int64, count=1, offset=8)[0])
        header = json.loads(bytes(self.memory[16 : 16 + length]))

        def view(spec):
            if spec is None:
                return None
            count = int(np.prod(spec["shape"]))
            array = np.frombuffer(
                self.memory,
                np.float32,
                count=count,
                offset=HEADER_BYTES + spec["offset"],
            ).reshape(spec["shape"])
            array.flags.writeable = False
            return array

        parts = [
            (part["name"], view(part["table"]), part["combiner"])
            for part in header["parts"]
        ]
        dense = [
            (view(layer["kernel"]), view(layer["bias"]), layer["relu"])
            for layer in header["dense"]
        ]
        return NumpyTower(parts, header["combine"], dense, header["normalize"])
