"""Attempt deadlines, sync and async, whole answers and first chunks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from llmrouter.errors import AttemptTimeoutError
from llmrouter.resilience._timeouts import (
    acall_with_timeout,
    afirst_item,
    call_with_timeout,
    first_item,
)


def test_sync_call_within_and_past_its_deadline() -> None:
    assert call_with_timeout(lambda: 42, 1.0, "m") == 42
    assert call_with_timeout(lambda: 42, None, "m") == 42
    started = time.monotonic()
    with pytest.raises(AttemptTimeoutError, match=r"'slow' gave no answer within 0\.1 s"):
        call_with_timeout(lambda: time.sleep(2), 0.1, "slow")
    assert time.monotonic() - started < 1


def test_sync_errors_pass_through() -> None:
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        call_with_timeout(boom, 1.0, "m")


def test_first_item_deadline() -> None:
    def slow() -> Iterator[int]:
        time.sleep(2)
        yield 1

    assert first_item(iter([1, 2]), 1.0, "m") == 1
    assert first_item(iter([]), 1.0, "m") is None
    with pytest.raises(AttemptTimeoutError):
        first_item(slow(), 0.1, "m")


async def test_async_deadlines_cancel() -> None:
    assert await acall_with_timeout(asyncio.sleep(0, result=7), 1.0, "m") == 7
    with pytest.raises(AttemptTimeoutError):
        await acall_with_timeout(asyncio.sleep(5), 0.05, "m")

    async def slow() -> AsyncIterator[int]:
        await asyncio.sleep(5)
        yield 1

    async def empty() -> AsyncIterator[int]:
        return
        yield

    with pytest.raises(AttemptTimeoutError, match="first chunk"):
        await afirst_item(aiter(slow()), 0.05, "m")
    assert await afirst_item(aiter(empty()), 1.0, "m") is None
