"""`SharedModel`: a numpy model in memory shared by forked workers.

Building a numpy model (`NumpyTower`, `NumpyRanker`) needs the Keras model
it repeats, and Keras with JAX costs a serving process 300-400 MB of its
own memory. With several workers (`recsys serve --workers N`) the
supervisor maps one anonymous shared memory region per model before
forking, and one short-lived helper process (forked too, before any thread
exists) loads Keras, converts the model and writes its arrays there, then
exits. Every worker, a restarted one included, reads the model from that
memory without importing Keras; only a model the numpy code cannot
evaluate (or a failed helper) makes each worker load Keras itself.

Layout: an 8-byte state (`PENDING`, `READY`, `UNSUPPORTED`), an 8-byte
header length, the JSON header (`HEADER_BYTES` at most) describing the
model's constructor arguments with each array replaced by its offset,
dtype and shape, then the arrays. Nothing is pickled: the header holds
only JSON values, and arrays are read as the numeric dtypes it names.
"""

import json
import logging
import mmap
import os
import signal
import time
import zipfile
from collections.abc import Callable
from io import BytesIO
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

HEADER_BYTES = 1 << 16
PENDING, READY, UNSUPPORTED = 0, 1, 2
ALIGN = 64
WEIGHTS = "model.weights.h5"
# The dtypes a shared array may have (a header names one of these).
DTYPES = ("float32", "int32", "int64")


def capacity_for(keras_bytes: bytes | None) -> int | None:
    """Bytes a numpy twin of the `.keras` file `keras_bytes` needs, or None.

    The uncompressed size of the file's weights, read from its zip
    directory (no Keras needed): a numpy model's arrays are a subset of
    them. None without bytes or for an unreadable file (each worker then
    loads Keras, as without workers).
    """
    if keras_bytes is None:
        return None
    try:
        with zipfile.ZipFile(BytesIO(keras_bytes)) as archive:
            size = archive.getinfo(WEIGHTS).file_size
    except (zipfile.BadZipFile, KeyError, ValueError):
        return None
    return size + ALIGN * 64


class SharedModel:
    """A shared memory region that one process fills with a numpy model.

    The model class needs `state()`, its constructor's keyword arguments
    (nested lists, tuples and dicts of JSON values and numpy arrays), and
    is rebuilt in a reader as `model_class(**state)`.

    Args:
        model_class: the numpy model's class (`NumpyTower`, `NumpyRanker`).
        capacity: int. Bytes for the arrays (at least the model's weights).

    Example:

    ```python
    shared = SharedModel(NumpyRanker, capacity_for(model_bytes))
    shared.fork_writer(convert, "ranker")  # before forking the workers
    fast = shared.wait()  # in a worker: the NumpyRanker, or None
    ```
    """

    def __init__(self, model_class: type, capacity: int) -> None:
        self.model_class = model_class
        self.capacity = int(capacity)
        # Anonymous and MAP_SHARED: forked children see the same pages.
        self.memory = mmap.mmap(-1, HEADER_BYTES + self.capacity)
        self.pid: int | None = None

    # -- the helper process --------------------------------------------------

    def fork_writer(self, convert: Callable[[], Any], what: str) -> int:
        """Forks a process that writes `convert()` into this region.

        Call it from a process with no other threads. The child runs
        `convert` (which loads Keras and returns the numpy model, or None
        when the model has parts numpy cannot evaluate), writes it (or
        `UNSUPPORTED`) and exits.

        Args:
            convert: callable. Returns the numpy model or None.
            what: str. The model, for the log ("query tower", "ranker").

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

            # A supervisor forks this with its signals blocked (it waits
            # for them); the helper takes them as any process does.
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            die_with_parent()
            fast = convert()
            if fast is None:
                self._set_state(UNSUPPORTED)
            else:
                self.write(fast)
        except BaseException:
            logger.exception("Converting the %s for workers failed", what)
            self._set_state(UNSUPPORTED)
            status = 1
        finally:
            os._exit(status)

    def write(self, model: Any) -> None:
        """Writes `model`'s arrays and header, then marks the region ready."""
        offset = 0
        arrays = []

        def pack(value):
            nonlocal offset
            if isinstance(value, np.ndarray):
                array = np.ascontiguousarray(value)
                if array.dtype.name not in DTYPES:
                    raise ValueError(f"cannot share a {array.dtype} array")
                if offset + array.nbytes > self.capacity:
                    raise ValueError(
                        "the numpy model is larger than its weights"
                    )
                arrays.append((offset, array))
                spec = {
                    "offset": offset,
                    "dtype": array.dtype.name,
                    "shape": list(array.shape),
                }
                offset += -(-array.nbytes // ALIGN) * ALIGN
                return {"array": spec}
            if isinstance(value, tuple):
                return {"tuple": [pack(v) for v in value]}
            if isinstance(value, list):
                return [pack(v) for v in value]
            if isinstance(value, dict):
                return {"dict": {str(k): pack(v) for k, v in value.items()}}
            if isinstance(value, np.generic):
                return value.item()
            if value is None or isinstance(value, (bool, int, float, str)):
                return value
            raise ValueError(f"cannot share a {type(value).__name__}")

        text = json.dumps(pack(model.state())).encode()
        if len(text) > HEADER_BYTES - 16:
            raise ValueError("the numpy model's header is too large")
        view = memoryview(self.memory)
        for at, array in arrays:
            start = HEADER_BYTES + at
            view[start : start + array.nbytes] = array.tobytes()
        view[8:16] = np.int64(len(text)).tobytes()
        view[16 : 16 + len(text)] = text
        self._set_state(READY)  # last: readers see the data complete

    def _set_state(self, state: int) -> None:
        self.memory[0:8] = np.int64(state).tobytes()

    # -- the workers -----------------------------------------------------------

    @property
    def state(self) -> int:
        return int(np.frombuffer(self.memory, np.int64, count=1)[0])

    def wait(self, timeout: float = 900.0) -> Any:
        """The shared model once written, or None.

        None when the model is unsupported, the helper failed, or nothing
        was written within `timeout` seconds: the caller loads Keras.
        """
        deadline = time.monotonic() + timeout
        while self.state == PENDING:
            if time.monotonic() > deadline:
                name = self.model_class.__name__
                logger.warning("No shared %s after %.0f s", name, timeout)
                return None
            time.sleep(0.05)
        if self.state != READY:
            return None
        return self.read()

    def read(self) -> Any:
        """The model, its arrays viewing the region (read-only)."""
        length = int(np.frombuffer(self.memory, np.int64, count=1, offset=8)[0])
        header = json.loads(bytes(self.memory[16 : 16 + length]))

        def unpack(value):
            if isinstance(value, list):
                return [unpack(v) for v in value]
            if not isinstance(value, dict):
                return value
            if "tuple" in value:
                return tuple(unpack(v) for v in value["tuple"])
            if "dict" in value:
                return {k: unpack(v) for k, v in value["dict"].items()}
            spec = value["array"]
            if spec["dtype"] not in DTYPES:
                raise ValueError(f"cannot read a {spec['dtype']} array")
            dtype = np.dtype(spec["dtype"])
            array = np.frombuffer(
                self.memory,
                dtype,
                count=int(np.prod(spec["shape"])),
                offset=HEADER_BYTES + spec["offset"],
            ).reshape(spec["shape"])
            array.flags.writeable = False
            return array

        return self.model_class(**unpack(header))
