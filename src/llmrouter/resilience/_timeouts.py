"""Deadlines for one attempt: a whole answer, or a stream's first chunk.

Async deadlines cancel the call. A sync call cannot be cancelled from outside,
so a sync deadline runs the call in a helper thread and stops waiting for it;
the abandoned call ends on its own (bounded by the client's own timeout).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from llmrouter.errors import AttemptTimeoutError

T = TypeVar("T")
_END = object()


def call_with_timeout(fn: Callable[[], T], timeout: float | None, model: str) -> T:
    """``fn()``, or `AttemptTimeoutError` after ``timeout`` seconds."""
    if timeout is None:
        return fn()
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            box["value"] = context.run(fn)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"llmrouter-{model}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AttemptTimeoutError(model, timeout)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def first_item(iterator: Iterator[T], timeout: float | None, model: str) -> T | None:
    """The iterator's first item (``None`` if it is empty), within ``timeout`` seconds."""
    result = call_with_timeout(lambda: next(iterator, _END), timeout, model)
    return None if result is _END else result  # type: ignore[return-value]


async def acall_with_timeout(coro: Any, timeout: float | None, model: str) -> Any:
    """Await ``coro``, cancelling it after ``timeout`` seconds."""
    if timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise AttemptTimeoutError(model, timeout) from None


async def afirst_item(iterator: AsyncIterator[T], timeout: float | None, model: str) -> T | None:
    """The async iterator's first item (``None`` if empty), within ``timeout`` seconds."""
    try:
        return await acall_with_timeout(anext(iterator), timeout, model)  # type: ignore[no-any-return]
    except StopAsyncIteration:
        return None
    except AttemptTimeoutError as exc:
        raise AttemptTimeoutError(model, exc.seconds, "first chunk") from None
