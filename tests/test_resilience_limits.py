"""Concurrency limits hold for threads and coroutines together."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmrouter.resilience import ConcurrencyLimit


def test_threads_never_exceed_the_limit() -> None:
    limit, peak, lock = ConcurrencyLimit(3), [0], threading.Lock()

    def work() -> None:
        with limit.slot():
            with lock:
                peak[0] = max(peak[0], limit.in_flight)
            time.sleep(0.01)

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda _: work(), range(48)))
    assert peak[0] == 3 and limit.in_flight == 0


async def test_coroutines_and_threads_share_one_limit() -> None:
    limit, peak = ConcurrencyLimit(2), [0]

    async def coro() -> None:
        async with limit.aslot():
            peak[0] = max(peak[0], limit.in_flight)
            await asyncio.sleep(0.01)

    def thread() -> None:
        with limit.slot():
            peak[0] = max(peak[0], limit.in_flight)
            time.sleep(0.01)

    threads = [asyncio.to_thread(thread) for _ in range(4)]
    await asyncio.gather(*(coro() for _ in range(16)), *threads)
    assert peak[0] <= 2 and limit.in_flight == 0


async def test_slot_released_on_error_and_cancel() -> None:
    limit = ConcurrencyLimit(1)
    with pytest.raises(RuntimeError):
        async with limit.aslot():
            raise RuntimeError
    task = asyncio.create_task(asyncio.sleep(10))
    async with limit.aslot():
        task.cancel()
    assert limit.in_flight == 0


def test_bad_limit() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        ConcurrencyLimit(0)
