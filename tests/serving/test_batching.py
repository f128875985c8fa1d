import asyncio
import threading

import numpy as np
import pytest

from recsys.serving import Settings
from recsys.serving import create_app
from recsys.serving.batching import MicroBatcher
from recsys.serving.service import QueryError
from recsys.serving.service import RetrievalService
from tests.serving.server import post_concurrently


class FakeTimers:
    """`call_later` that records each delay and fires only when told."""

    def __init__(self):
        self.scheduled = []

    def __call__(self, delay, callback):
        timer = FakeTimer(delay, callback)
        self.scheduled.append(timer)
        return timer


class FakeTimer:
    def __init__(self, delay, callback):
        self.delay, self.callback, self.cancelled = delay, callback, False

    def cancel(self):
        self.cancelled = True


def _double(items):
    return [ValueError(f"bad {x}") if x < 0 else 2 * x for x in items]


async def _settle():
    for _ in range(50):  # let submitted tasks reach their `await`
        await asyncio.sleep(0)


def test_requests_in_one_window_share_one_call():
    async def main():
        timers = FakeTimers()
        calls = []
        batcher = MicroBatcher(
            lambda items: calls.append(items) or _double(items),
            window=0.002,
            max_size=10,
            call_later=timers,
            flush_when_idle=False,
        )
        tasks = [asyncio.create_task(batcher.submit(x)) for x in (1, 2, 3)]
        await _settle()
        # The first request started the one timer, of exactly the window:
        # no request waits longer than that before its batch runs.
        assert [t.delay for t in timers.scheduled] == [0.002]
        assert calls == [] and not any(t.done() for t in tasks)
        timers.scheduled[0].callback()
        assert await asyncio.gather(*tasks) == [2, 4, 6]
        assert calls == [[1, 2, 3]] and batcher.batches == 1

    asyncio.run(main())


def test_a_batch_closes_once_a_turn_of_the_loop_adds_nothing():
    # No request waits out the window for company that is not coming.
    async def main():
        timers = FakeTimers()  # never fired here
        calls = []
        batcher = MicroBatcher(
            lambda items: calls.append(items) or _double(items),
            window=60.0,
            max_size=10,
            call_later=timers,
            inline=lambda: True,
        )
        together = asyncio.gather(*(batcher.submit(x) for x in (1, 2, 3)))
        assert await asyncio.wait_for(together, 5) == [2, 4, 6]
        assert await asyncio.wait_for(batcher.submit(4), 5) == 8
        assert calls == [[1, 2, 3], [4]] and batcher.batches == 2
        assert [t.cancelled for t in timers.scheduled] == [True, True]

    asyncio.run(main())


def test_a_full_batch_runs_at_once_and_a_window_of_zero_never_waits():
    async def main():
        timers = FakeTimers()
        batcher = MicroBatcher(_double, 1.0, max_size=2, call_later=timers)
        found = await asyncio.gather(batcher.submit(1), batcher.submit(2))
        assert found == [2, 4] and batcher.batches == 1
        assert timers.scheduled[0].cancelled  # flushed before its window
        alone = MicroBatcher(_double, 0, max_size=8, call_later=timers)
        assert await alone.submit(5) == 10
        assert len(timers.scheduled) == 1  # no timer for a zero window

    asyncio.run(main())


@pytest.mark.parametrize("inline", [None, True, False])
def test_a_failing_request_fails_alone_on_the_loop_or_in_a_thread(inline):
    # On the event loop only while `inline()` says so (None: never).
    async def main():
        threads = []

        def run(items):
            threads.append(threading.get_ident())
            if items == [0]:
                raise RuntimeError("the whole call failed")
            return _double(items)

        batcher = MicroBatcher(
            run,
            0.001,
            max_size=3,
            inline=None if inline is None else (lambda: inline),
        )
        found = await asyncio.gather(
            batcher.submit(1),
            batcher.submit(-1),
            batcher.submit(3),
            return_exceptions=True,
        )
        # Inline or not, one item's error stays its own...
        assert found[0] == 2 and found[2] == 6
        assert isinstance(found[1], ValueError)
        assert batcher.batches == 1
        # ...and a call that raises fails its batch only.
        with pytest.raises(RuntimeError, match="whole call"):
            await batcher.submit(0)
        assert await batcher.submit(4) == 8
        return threads

    threads = asyncio.run(main())
    on_loop = [t == threading.get_ident() for t in threads]
    assert on_loop == [inline is True] * 3


def test_a_failing_inline_check_still_answers_in_a_thread():
    def broken():
        raise AttributeError("no service yet")

    async def main():
        batcher = MicroBatcher(_double, 0.001, max_size=2, inline=broken)
        return await asyncio.gather(batcher.submit(1), batcher.submit(2))

    assert asyncio.run(main()) == [2, 4]


@pytest.fixture(scope="module")
def service(trained_bundle):
    return RetrievalService(trained_bundle[0], precompute_depth=20)


def _queries(bundle):
    users = [str(u) for u in bundle.user_ids[:4]]
    return [
        {"user_id": users[0], "k": 10},  # the precomputed table
        {"user_id": users[1], "k": 150, "exclude": ["1", "260", "1196"]},
        {"user_id": users[2], "k": 150},
        {"features": {"history": ["1", "260"]}, "k": 10},
        {"features": {"userId": users[3], "history": ["1196"]}, "k": 10},
        {"user_id": users[3], "features": {"history": []}, "k": 150},
        {"user_id": "nobody", "k": 5},  # popular items
        {"features": {"no_such_feature": 1}, "k": 10},  # refused
        {"features": {"history": "1"}, "k": 10},  # refused
    ]


def test_batched_answers_equal_unbatched_ones(service, trained_bundle):
    queries = _queries(trained_bundle[0])
    together = service.retrieve_many(queries)
    for query, answer in zip(queries, together, strict=True):
        try:
            alone = service.retrieve(**query)
        except QueryError as error:
            assert isinstance(answer, QueryError)
            assert str(answer) == str(error)
            continue
        ids, scores, fallback = answer
        np.testing.assert_array_equal(ids, alone[0])
        np.testing.assert_allclose(scores, alone[1], rtol=1e-5, atol=1e-6)
        assert fallback == alone[2]
    assert [type(a) for a in together].count(QueryError) == 2


def test_concurrent_http_requests_share_a_batch(service, trained_bundle):
    bundle = trained_bundle[0]
    queries = [q for q in _queries(bundle) if "user_id" not in q or q["k"] > 20]
    # A batch closes when full (its window is long): one batch, whatever
    # the timing.
    batched = RetrievalService(
        bundle,
        precompute_depth=20,
        batch_window=60,
        batch_max_size=len(queries),
    )
    app = create_app(bundle.path, settings=Settings(), service=batched)

    answers = post_concurrently(app, queries)
    assert batched.batcher.batches == 1
    for query, answer in zip(queries, answers, strict=True):
        try:
            ids, _, _ = service.retrieve(**query)
        except QueryError:
            assert answer.status_code == 422
            continue
        assert answer.status_code == 200
        assert [i["id"] for i in answer.json()["items"]] == [
            str(i) for i in ids
        ]


def test_only_quick_batches_run_on_the_event_loop(service, trained_bundle):
    # The numpy tower and the approximate index: about a millisecond.
    service.load_query_tower()
    assert service.tower_kind == "numpy" and service.answers_quickly
    # Exact search (long matrix products) and the Keras tower take a
    # thread, which releases the GIL while they run.
    exact = RetrievalService(
        trained_bundle[0], exact=True, load_tower=False, precompute_depth=0
    )
    keras = RetrievalService(
        trained_bundle[0], fast_tower=False, precompute_depth=0
    )
    assert not exact.answers_quickly and not keras.answers_quickly


def test_the_keras_tower_runs_compiled_not_traced_each_call(trained_bundle):
    # Called eagerly, an ordered history encoder (a GRU) re-ran its Python
    # layers on every query: ~115 ms and ~2 MB of traces a call.
    keras = RetrievalService(
        trained_bundle[0], fast_tower=False, precompute_depth=0
    )
    tower = keras.query_tower
    calls = []
    original = type(tower).call
    tower.call = lambda *args, **kwargs: (
        calls.append(1) or original(tower, *args, **kwargs)
    )
    queries = [{"userId": 1}, {"userId": 2}, {"userId": 3}]
    first = keras.embed(queries)
    traced = len(calls)
    for _ in range(5):
        np.testing.assert_array_equal(keras.embed(queries), first)
    assert len(calls) == traced
