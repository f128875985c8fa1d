"""`MicroBatcher`: concurrent requests that arrive together share one call."""

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool


class MicroBatcher:
    """Collects the items submitted within `window` seconds into one call.

    The first item of a batch starts a timer of `window` seconds; every item
    submitted before it fires joins the batch, and `max_size` items flush it
    at once. With `flush_when_idle`, a turn of the event loop in which no
    item joined flushes it too: the requests that arrived together (one
    read of the sockets) share a batch, and a request alone does not wait
    out the window for company that is not coming (in a closed loop, where
    every client waits in the batch, the server sat idle until the timer
    fired). The batch then runs as `run(items)`, which returns one result
    per item: a value, or an exception that only that item's caller gets.
    So a request waits at most `window` for others, then its batch's work;
    one item's error never fails the others.

    A batch runs on the event loop itself while `inline()` is true (work
    of a millisecond or so: numpy and ScaNN), else in a worker thread (the
    Keras fallbacks, which take longer and release the GIL). Inline is
    faster for short work: a worker thread holding the GIL makes the loop
    wait up to Python's 5 ms switch interval for it each time it wakes,
    and under load that convoy, not the work, set the latency (reranked
    queries at 500 req/s: p50 26 ms, p99 68 ms in a thread; 6.6 and 22 ms
    inline, `benchmarks/rerank_load.py`). Requests arriving while an
    inline batch runs queue on their sockets and form the next batch.

    Args:
        run: callable taking a list of items and returning a list of the
            same length, each entry a result or an `Exception` instance.
        window: float. Seconds the first item of a batch waits for others;
            `0` runs every item alone, at once.
        max_size: int. Items that flush a batch before its window ends.
        call_later: callable `(delay, callback)` scheduling the flush; the
            running loop's `call_later` by default (tests pass a fake).
        inline: callable returning whether the next batch runs on the
            event loop (asked at each flush); `None` always uses a thread.
        flush_when_idle: bool. Flush a batch after a turn of the event loop
            added nothing to it, before its window ends. Defaults to `True`.

    Example:

    ```python
    batcher = MicroBatcher(service.retrieve_many, window=0.001, max_size=64)
    ids, scores, fallback = await batcher.submit({"user_id": 42, "k": 10})
    ```
    """

    def __init__(
        self,
        run: Callable[[list[Any]], list[Any]],
        window: float,
        max_size: int,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
        inline: Callable[[], bool] | None = None,
        flush_when_idle: bool = True,
    ) -> None:
        if window < 0 or max_size < 1:
            raise ValueError(
                "`window` must be >= 0 and `max_size` >= 1. Received: "
                f"window={window}, max_size={max_size}"
            )
        self.run = run
        self.window = window
        self.max_size = max_size
        self._call_later = call_later
        self.inline = inline
        self.flush_when_idle = flush_when_idle
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._timer: Any = None
        # Running batches, kept referenced until done (asyncio holds weak
        # references to tasks).
        self._running: set[asyncio.Task] = set()
        self.batches = 0  # batches run so far (tests and metrics)

    async def submit(self, item: Any) -> Any:
        """Adds `item` to the open batch and returns its result.

        Raises:
            Exception: the exception `run` returned (or raised) for it.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_size or self.window == 0:
            self._flush()
        elif len(self._pending) == 1:
            schedule = self._call_later or loop.call_later
            self._timer = schedule(self.window, self._flush)
            if self.flush_when_idle:
                loop.call_soon(self._flush_if_idle, self._timer, 1)
        return await future

    def _flush_if_idle(self, timer: Any, seen: int) -> None:
        """Flushes the batch of `timer` if no item joined it since `seen`."""
        if self._timer is not timer:  # that batch was flushed already
            return
        if len(self._pending) == seen:
            self._flush()
        else:  # items keep arriving: look again after the next turn
            asyncio.get_running_loop().call_soon(
                self._flush_if_idle, timer, len(self._pending)
            )

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        self.batches += 1
        try:
            quick = self.inline is not None and self.inline()
        except Exception:  # a failing check must not strand the callers
            quick = False
        if quick:
            try:
                results = self.run([item for item, _ in batch])
            except Exception as error:  # the whole call failed: tell everyone
                results = [error] * len(batch)
            _answer(batch, results)
            return
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        try:
            results = await run_in_threadpool(
                self.run, [item for item, _ in batch]
            )
        except Exception as error:  # the whole call failed: tell everyone
            results = [error] * len(batch)
        _answer(batch, results)


def _answer(batch: list[tuple[Any, asyncio.Future]], results: list) -> None:
    """Sets each waiting caller's result or exception."""
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():  # its caller went away
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
