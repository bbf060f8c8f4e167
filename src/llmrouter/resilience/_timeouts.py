"""Deadlines for one attempt: a whole answer, or a stream's chunks.

Async deadlines cancel the call. A sync call cannot be cancelled from outside,
so a sync deadline runs the call (or a stream's reads) in a helper thread and
stops waiting for it. The helper thread's context carries `patience`, how long
the router waits for any one read: an HTTP client that caps its own timeouts to
it (``openai_compatible``'s does) ends the abandoned call soon after the router
gave up on it, and releases its connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from llmrouter.errors import AttemptTimeoutError

T = TypeVar("T")

_PATIENCE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "llmrouter_patience", default=None
)


def patience() -> float | None:
    """Seconds the router waits for any one read of the current sync call (``None``:
    no deadline). Set in the helper thread of a call with a deadline."""
    return _PATIENCE.get()


def _helper(target: Callable[[], None], wait: float | None, model: str) -> threading.Thread:
    """A started daemon thread running ``target`` in a copy of the caller's context."""
    context = contextvars.copy_context()
    context.run(_PATIENCE.set, wait)
    thread = threading.Thread(
        target=context.run, args=(target,), name=f"llmrouter-{model}", daemon=True
    )
    thread.start()
    return thread


def call_with_timeout(fn: Callable[[], T], timeout: float | None, model: str) -> T:
    """``fn()``, or `AttemptTimeoutError` after ``timeout`` seconds."""
    if timeout is None:
        return fn()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = _helper(run, timeout, model)
    worker.join(timeout)
    if worker.is_alive():
        raise AttemptTimeoutError(model, timeout)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def acall_with_timeout(coro: Any, timeout: float | None, model: str) -> Any:
    """Await ``coro``, cancelling it after ``timeout`` seconds."""
    if timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise AttemptTimeoutError(model, timeout) from None


# ------------------------------------------------------------------ streams


@dataclass(frozen=True)
class StreamDeadlines:
    """How long a streamed attempt may take, in seconds (``None``: no limit)."""

    first: float | None = None
    """To the first chunk with content (text or a tool call); empty chunks do not count."""
    idle: float | None = None
    """Between two chunks, after the first with content."""
    total: float | None = None
    """The whole stream, from the request to its last chunk."""

    @property
    def bounded(self) -> bool:
        return self.first is not None or self.idle is not None or self.total is not None

    @property
    def longest_wait(self) -> float | None:
        """The longest the router waits for any one chunk (``None``: no limit)."""
        before = self.first if self.first is not None else self.total
        after = self.idle if self.idle is not None else self.total
        if before is None or after is None:
            return None
        return max(before, after)

    def wait(self, started: float, now: float, content: bool) -> tuple[float | None, float, str]:
        """How long to wait for the next chunk: ``(seconds or None, limit, what for)``."""
        step, what = (self.idle, "next chunk") if content else (self.first, "first chunk")
        if self.total is not None:
            left = max(self.total - (now - started), 0.0)
            if step is None or left < step:
                return left, self.total, "complete answer"
        return step, step or 0.0, what


def timed(
    chunks: Iterable[T], deadlines: StreamDeadlines, model: str, content: Callable[[T], bool]
) -> Iterator[T]:
    """``chunks`` within ``deadlines``, or `AttemptTimeoutError` when one passes.

    ``content`` tells a chunk that counts for the first-chunk deadline. While no
    deadline applies to the next read (with the defaults: until the first chunk
    with content, as only ``idle`` is set) the caller's thread reads ``chunks``
    itself: no thread stands between a stream and its first chunk. From the first
    read with a deadline on, a helper thread reads ahead; until the first chunk
    with content it hands the GIL to the reader after each chunk (else the reader
    would wait up to the interpreter's 5 ms switch interval for it: +6 ms to the
    first chunk in ``benchmarks/throughput.py``), then reads on without yielding (a
    yield per chunk costs more over a whole stream than it saves). Once nobody
    waits for it any more it stops at its next chunk and closes ``chunks``.
    """
    if not deadlines.bounded:
        return iter(chunks)
    return _timed(iter(chunks), deadlines, model, content)


_ITEM, _END, _ERROR = range(3)
_release_gil = time.sleep  # bound once: a sleep(0) that tests patching time.sleep never see


def _timed(
    chunks: Iterator[T], deadlines: StreamDeadlines, model: str, content: Callable[[T], bool]
) -> Iterator[T]:
    started, seen, handed = time.monotonic(), False, False
    try:
        while deadlines.wait(started, time.monotonic(), seen)[0] is None:
            try:
                item = next(chunks)
            except StopIteration:
                return
            seen = seen or content(item)
            yield item
        handed = True  # the pump reads (and closes) the rest
        yield from _pumped(chunks, deadlines, model, content, started, seen)
    finally:
        close = getattr(chunks, "close", None)
        if not handed and close is not None:
            close()  # a generator's finally: the HTTP response is released


def _pumped(
    chunks: Iterator[T],
    deadlines: StreamDeadlines,
    model: str,
    content: Callable[[T], bool],
    started: float,
    seen: bool,
) -> Iterator[T]:
    queue: SimpleQueue[tuple[int, Any]] = SimpleQueue()
    stop = threading.Event()

    def pump() -> None:
        answering = seen
        try:
            for item in chunks:
                queue.put((_ITEM, item))
                if stop.is_set():
                    break
                if not answering:  # hand the GIL to the waiting reader now, not in 5 ms
                    _release_gil(0)
                    answering = content(item)
            else:
                queue.put((_END, None))
        except BaseException as exc:  # handed to the reader below
            queue.put((_ERROR, exc))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a generator's finally: the HTTP response is released

    _helper(pump, deadlines.longest_wait, model)
    try:
        while True:
            wait, limit, what = deadlines.wait(started, time.monotonic(), seen)
            try:
                kind, value = queue.get(timeout=wait)
            except Empty:
                raise AttemptTimeoutError(model, limit, what) from None
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            seen = seen or content(value)
            yield value
    finally:
        stop.set()  # the pump stops at its next chunk


def atimed(
    chunks: AsyncIterable[T],
    deadlines: StreamDeadlines,
    model: str,
    content: Callable[[T], bool],
) -> AsyncIterator[T]:
    """Async `timed`: a wait that passes its deadline is cancelled."""
    if not deadlines.bounded:
        return aiter(chunks)
    return _atimed(aiter(chunks), deadlines, model, content)


async def _atimed(
    chunks: AsyncIterator[T],
    deadlines: StreamDeadlines,
    model: str,
    content: Callable[[T], bool],
) -> AsyncIterator[T]:
    started, seen = time.monotonic(), False
    while True:
        wait, limit, what = deadlines.wait(started, time.monotonic(), seen)
        try:
            item = await _anext_within(chunks, wait)
        except StopAsyncIteration:
            return
        except _Expired:
            raise AttemptTimeoutError(model, limit, what) from None
        seen = seen or content(item)
        yield item


class _Expired(Exception):
    """Our own wait passed its deadline (not a timeout raised by the stream itself)."""


if sys.version_info >= (3, 11):

    async def _anext_within(chunks: AsyncIterator[T], seconds: float | None) -> T:
        if seconds is None:
            return await anext(chunks)
        scope = asyncio.timeout(seconds)  # no task per chunk, unlike wait_for before 3.12
        try:
            async with scope:
                return await anext(chunks)
        except TimeoutError:
            if scope.expired():
                raise _Expired from None
            raise

else:  # pragma: no cover - Python 3.10

    async def _anext_within(chunks: AsyncIterator[T], seconds: float | None) -> T:
        if seconds is None:
            return await anext(chunks)
        try:
            return await asyncio.wait_for(anext(chunks), seconds)
        except asyncio.TimeoutError:
            raise _Expired from None
