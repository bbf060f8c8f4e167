"""Per-model concurrency limits that work from threads and from asyncio alike."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager


class ConcurrencyLimit:
    """At most ``max_in_flight`` calls at once, whether sync or async.

    One counter serves both worlds (a router may be called from threads and from
    an event loop at the same time). Async waiters poll with a short, growing
    sleep instead of parking a thread each, so many waiters cost no threads.

    Examples:
        >>> limit = ConcurrencyLimit(2)
        >>> with limit.slot():
        ...     limit.in_flight
        1
    """

    def __init__(self, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self._semaphore = threading.BoundedSemaphore(max_in_flight)
        self._count = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._count

    def _enter(self) -> None:
        with self._lock:
            self._count += 1

    def _exit(self) -> None:
        with self._lock:
            self._count -= 1
        self._semaphore.release()

    @contextmanager
    def slot(self) -> Iterator[None]:
        self._semaphore.acquire()
        self._enter()
        try:
            yield
        finally:
            self._exit()

    @asynccontextmanager
    async def aslot(self) -> AsyncIterator[None]:
        delay = 0.001
        while not self._semaphore.acquire(blocking=False):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        self._enter()
        try:
            yield
        finally:
            self._exit()
