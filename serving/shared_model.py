"""`SharedModel`: a numpy model in memory shared by forked workers.

Building a numpy model (`NumpyTower`, `NumpyRanker`) needs the Keras model
it repeats, and Keras with JAX costs a serving process 300-400 MB of its
own memory. With several workers (`recsys serve --workers N`) the
supervisor maps one anonymous shared memory region per model before
forking, and one short-lived helper process (forked too, before any thread
exists) loads Keras, converts the model and writes its arrays there, then
exits. The supervisor waits for it (`join`) before it forks the workers:
a model that fails to load there (`FAILED`, with its error), or a helper
that dies (a native abort loading a hostile file, the OOM killer), refuses
the bundle, so workers never start on a model they cannot load or wait for
one that never comes. Every worker, a restarted one included, reads the
model from that memory without importing Keras; only a model the numpy
code cannot evaluate makes each worker load Keras itself.

Layout: an 8-byte state (`PENDING`, `READY`, `UNSUPPORTED`, `FAILED`), an
8-byte header length, the JSON header (`HEADER_BYTES` at most) describing
the model's constructor arguments with each array replaced by its offset,
dtype and shape (for `FAILED`: the error's text), then the arrays. Nothing
is pickled: the header holds only JSON values, and arrays are read as the
numeric dtypes it names.
"""

import gc
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

from recsys.storage.files import UNPACKED_SLACK
from recsys.storage.files import BundleError

logger = logging.getLogger(__name__)

HEADER_BYTES = 1 << 16
PENDING, READY, UNSUPPORTED, FAILED = 0, 1, 2, 3
ALIGN = 64
WEIGHTS = "model.weights.h5"
# The dtypes a shared array may have (a header names one of these).
DTYPES = ("float32", "int32", "int64")
# How long `join` waits for a helper before it refuses the bundle.
JOIN_TIMEOUT = 900.0
# The smallest region: room for a `FAILED` state and its error, for a file
# whose weights cannot be sized (the helper's load says why).
MIN_CAPACITY = ALIGN * 64


def describe_error(error: BaseException) -> str:
    """One line saying why a model did not load: the message of a check
    (`BundleError` and other `ValueError`s, `OSError`), else the error's
    type and text."""
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])  # str(KeyError) adds quotes
    elif isinstance(error, (OSError, ValueError)):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split()) or type(error).__name__


def describe_exit(status: int) -> str:
    """How a child process ended, from its `waitpid` status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def capacity_for(keras_bytes: bytes | None) -> int | None:
    """Bytes a numpy twin of the `.keras` file `keras_bytes` needs, or None.

    The uncompressed size of the file's weights, read from its zip
    directory (no Keras needed): a numpy model's arrays are a subset of
    them, and a `.keras` file unpacks to about its size (a file said to
    unpack to much more is refused when it loads). None without bytes. An
    unreadable file gets `MIN_CAPACITY`: its helper still loads it, and
    the load says what is wrong (a model larger than its region makes
    each worker load Keras, as without workers).
    """
    if keras_bytes is None:
        return None
    try:
        with zipfile.ZipFile(BytesIO(keras_bytes)) as archive:
            size = archive.getinfo(WEIGHTS).file_size
    except Exception:  # not a zip, no weights: whatever a hostile file is
        return MIN_CAPACITY
    return min(size, 2 * len(keras_bytes) + UNPACKED_SLACK) + MIN_CAPACITY


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
    shared.join()  # raises BundleError where the model does not load
    fast = shared.wait()  # in a worker: the NumpyRanker, or None
    ```
    """

    def __init__(self, model_class: type, capacity: int) -> None:
        self.model_class = model_class
        self.capacity = int(capacity)
        # Anonymous and MAP_SHARED: forked children see the same pages.
        self.memory = mmap.mmap(-1, HEADER_BYTES + self.capacity)
        self.pid: int | None = None
        self.what = "model"  # what `fork_writer` converts, for messages

    # -- the helper process --------------------------------------------------

    def fork_writer(self, convert: Callable[[], Any], what: str) -> int:
        """Forks a process that writes `convert()` into this region.

        Call it from a process with no other threads, then `join` it. The
        child runs `convert` (which loads Keras and returns the numpy
        model, or None when the model has parts numpy cannot evaluate),
        writes it (or `UNSUPPORTED`, or `FAILED` and the error when
        `convert` raises) and exits.

        Args:
            convert: callable. Returns the numpy model or None.
            what: str. The model, for messages ("query tower of DIR").

        Returns:
            int. The child's pid (`join` reaps it).
        """
        pid = os.fork()
        if pid:
            self.pid = pid
            self.what = what
            return pid
        status = 0
        try:
            # Nothing this process inherited is collected here: a refused
            # generation's garbage (a ScaNN searcher among it) ran its
            # destructor in this copy, and joining thread pools whose
            # threads stayed in the parent hung the helper for good.
            gc.freeze()
            from recsys.serving.workers import die_with_parent

            # A supervisor forks this with its signals blocked (it waits
            # for them); the helper takes them as any process does.
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            die_with_parent()
            try:
                fast = convert()
            except BaseException as error:
                # The model does not load: `join` refuses the bundle.
                if not isinstance(error, (ValueError, OSError)):
                    # No check's message: the traceback says where.
                    logger.error("Loading the %s failed", what, exc_info=error)
                self._fail(describe_error(error))
                status = 1
            else:
                self._share(fast, what)
        except BaseException:
            logger.exception("Converting the %s for workers failed", what)
            self._set_state(UNSUPPORTED)
            status = 1
        finally:
            os._exit(status)

    def _share(self, fast: Any, what: str) -> None:
        """Writes `fast`, or `UNSUPPORTED` where it is None or cannot be
        shared (each worker then loads the model itself)."""
        if fast is None:
            self._set_state(UNSUPPORTED)
            return
        try:
            self.write(fast)
        except Exception:
            logger.exception(
                "Sharing the %s with workers failed; each loads it", what
            )
            self._set_state(UNSUPPORTED)

    def join(
        self,
        timeout: float = JOIN_TIMEOUT,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        """Waits for the helper of `fork_writer` to exit, and reaps it.

        Returns once the model is written (or found `UNSUPPORTED`: each
        worker loads it with Keras). Call it before forking the workers:
        they then never wait for the region.

        Args:
            timeout: float. Seconds to wait; the helper is killed after.
            stop: callable or None. Asked while waiting; True kills the
                helper (the server is stopping).

        Raises:
            BundleError: the model failed to load (the error it raised),
                or its helper ended without writing it: killed (the OOM
                killer), a native abort (SIGABRT) while Keras built it,
                or `timeout` passed.
            InterruptedError: `stop` said True.
        """
        pid, self.pid = self.pid, None
        if pid is None:
            return
        deadline = time.monotonic() + timeout
        ended = None
        while ended is None:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                done, ended = pid, "ended"
            if done:
                ended = ended or describe_exit(status)
            elif stop is not None and stop():
                _kill(pid)
                raise InterruptedError(
                    f"Stopped while loading the {self.what}."
                )
            elif time.monotonic() > deadline:
                _kill(pid)
                ended = f"did not finish within {timeout:.0f} s"
            else:
                time.sleep(0.02)
        state = self.state
        if state in (READY, UNSUPPORTED):
            return
        if state == FAILED:
            raise BundleError(self.error)
        raise BundleError(
            f"The process loading the {self.what} {ended} without loading "
            "it (a model too large for memory, or one that crashes Keras "
            "or XLA): refused. Fix: check that it loads in Python "
            "(recsys.load_bundle(PATH)), or retrain the bundle."
        )

    @property
    def error(self) -> str:
        """Why the model did not load (the `FAILED` state's text)."""
        length = int(np.frombuffer(self.memory, np.int64, count=1, offset=8)[0])
        length = min(max(length, 0), HEADER_BYTES - 16)
        return bytes(self.memory[16 : 16 + length]).decode(errors="replace")

    def _fail(self, message: str) -> None:
        text = message.encode()[: HEADER_BYTES - 16]
        self.memory[8:16] = np.int64(len(text)).tobytes()
        self.memory[16 : 16 + len(text)] = text
        self._set_state(FAILED)  # last: `join` reads the text complete

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
        was written within `timeout` seconds: the caller loads Keras. (A
        supervisor `join`s the helper before forking its workers, so they
        find the region final.)
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


def _kill(pid: int) -> None:
    """SIGKILL to a helper, then reaps it."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
