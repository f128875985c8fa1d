"""`OneBlasThread`: BLAS on the calling thread only, while any caller is in.

OpenBLAS splits a matmul of a hundred rows over every core, and on a busy
machine a thread waits for a core it does not get: a `(100, 115) @ (115,
115)` product (the cross layers of the MovieLens ranker) took 40 ms with 2
threads on 2 loaded cores against 0.03 ms with one. A server answers
requests in parallel instead.
"""

import threading
from typing import Any

from threadpoolctl import ThreadpoolController


class OneBlasThread:
    """A context in which BLAS runs on the calling thread only.

    The limit is process-wide while set (threadpoolctl), so it is set by
    the first thread in and restored by the last one out: calls from
    several threads at once nest. A server holds it for as long as it
    answers (`recsys.serving.reranker.Reranker.serving`): set and restored
    around each call, OpenBLAS's idle pool threads spun on a core between
    calls.

    Example:

    ```python
    with ONE_BLAS_THREAD:
        scores = x @ kernel
    ```
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._limiter: Any = None
        self._controller: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                if self._controller is None:
                    self._controller = ThreadpoolController()
                self._limiter = self._controller.limit(
                    limits=1, user_api="blas"
                )
            self._inside += 1

    def __exit__(self, *error: Any) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                self._limiter.restore_original_limits()
                self._limiter = None


ONE_BLAS_THREAD = OneBlasThread()
