"""pyws/_aio.py: blocking session code run from coroutines in worker greenlets."""
from __future__ import annotations

import asyncio
import gc
import queue
import socket
import weakref
from typing import Any, List

import pytest

from pyws import _aio


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_call_returns_the_result_and_raises_the_exception():
    def ok(a: int, b: int = 0) -> int:
        return a + b

    def bad() -> None:
        raise KeyError("nope")

    async def main() -> int:
        with pytest.raises(KeyError, match="nope"):
            await _aio.call(bad)
        return await _aio.call(ok, 2, b=3)

    assert run(main()) == 5


def test_a_wait_in_a_worker_awaits_the_future():
    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_later(0.05, future.set_result, "done")
        return [await _aio.call(_aio.wait, future), _aio.in_worker()]

    assert run(main()) == ["done", False]


def test_waiting_outside_a_worker_is_an_error_that_says_so():
    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        _aio.wait(future)

    with pytest.raises(RuntimeError, match=r"outside pyws\.asyncio's worker"):
        run(main())


def test_cancelling_the_caller_unwinds_the_worker_and_releases_the_lock():
    lock = _aio.Lock()
    unwound: List[str] = []

    def hold_and_wait(future: asyncio.Future[None]) -> None:
        with lock:
            try:
                _aio.wait(future)
            finally:
                unwound.append("finally")

    async def main() -> bool:
        future = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(_aio.call(hold_and_wait, future))
        await asyncio.sleep(0.01)
        assert lock.locked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return lock.locked()

    assert run(main()) is False
    assert unwound == ["finally"]


def test_the_lock_is_handed_to_waiters_in_order_and_times_out():
    lock = _aio.Lock()
    order: List[int] = []

    def take(number: int) -> None:
        with lock:
            order.append(number)
            _aio.wait(asyncio.sleep(0.01))

    def try_briefly() -> bool:
        return lock.acquire(timeout=0.001)

    async def main() -> List[Any]:
        tasks = [asyncio.ensure_future(_aio.call(take, n)) for n in range(4)]
        await asyncio.sleep(0)
        timed_out = await _aio.call(try_briefly)
        await asyncio.gather(*tasks)
        return [timed_out, lock.acquire(blocking=False), order]

    assert run(main()) == [False, True, [0, 1, 2, 3]]


def test_event_and_queue_wait_with_timeouts():
    event = _aio.Event()
    items = _aio.Queue(2)

    def consumer() -> List[Any]:
        got = [event.wait(0.01)]
        got.append(event.wait(1.0))
        got.append(items.get())
        with pytest.raises(queue.Empty):
            items.get(timeout=0.01)
        return got

    async def main() -> List[Any]:
        task = asyncio.ensure_future(_aio.call(consumer))
        await asyncio.sleep(0.05)  # the first wait timed out; the second waits
        event.set()
        items.put_nowait("first")
        result = await task
        items.put_nowait("a")
        items.put_nowait("b")
        with pytest.raises(queue.Full):
            items.put_nowait("c")
        return [result, items.qsize()]

    assert run(main()) == [[False, True, "first"], 2]


def test_a_finished_call_keeps_no_reference_to_its_result():
    class Big:
        pass

    ref: List[Any] = []

    def make() -> Big:
        big = Big()
        ref.append(weakref.ref(big))
        return big

    async def main() -> None:
        await _aio.call(make)

    run(main())
    gc.collect()
    assert ref[0]() is None


def test_timeouts_are_socket_timeouts():
    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        await _aio.call(_aio.wait_future, future, 0.01)

    with pytest.raises(socket.timeout):
        run(main())
