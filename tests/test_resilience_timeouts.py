"""Attempt deadlines, sync and async: whole answers, and a stream's first content
chunk, the gaps between chunks and the whole stream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from llmrouter.errors import AttemptTimeoutError
from llmrouter.resilience._timeouts import (
    StreamDeadlines,
    acall_with_timeout,
    atimed,
    call_with_timeout,
    patience,
    timed,
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


def test_a_sync_call_knows_how_long_the_router_waits() -> None:
    """HTTP clients read `patience` to end an abandoned call soon after the deadline."""
    assert patience() is None
    assert call_with_timeout(patience, 0.5, "m") == 0.5
    assert patience() is None  # set in the helper thread's context only


async def test_async_deadlines_cancel() -> None:
    assert await acall_with_timeout(asyncio.sleep(0, result=7), 1.0, "m") == 7
    with pytest.raises(AttemptTimeoutError):
        await acall_with_timeout(asyncio.sleep(5), 0.05, "m")


# ------------------------------------------------------------------ streams


def test_stream_deadlines_choose_the_next_wait() -> None:
    d = StreamDeadlines(first=2.0, idle=0.5, total=10.0)
    assert d.bounded and d.longest_wait == 2.0
    assert d.wait(started=0.0, now=1.0, content=False) == (2.0, 2.0, "first chunk")
    assert d.wait(started=0.0, now=1.0, content=True) == (0.5, 0.5, "next chunk")
    assert d.wait(started=0.0, now=9.8, content=True) == (
        pytest.approx(0.2),
        10.0,
        "complete answer",
    )
    assert d.wait(started=0.0, now=11.0, content=True) == (0.0, 10.0, "complete answer")
    only_total = StreamDeadlines(total=3.0)
    assert only_total.wait(0.0, 1.0, False) == (2.0, 3.0, "complete answer")
    assert only_total.longest_wait == 3.0
    assert not StreamDeadlines().bounded and StreamDeadlines().longest_wait is None
    assert StreamDeadlines(first=1.0).longest_wait is None  # after it: no limit


def has_text(item: str) -> bool:
    return bool(item)


def paced(*pace: tuple[float, str], closed: threading.Event | None = None) -> Iterator[str]:
    try:
        for delay, item in pace:
            time.sleep(delay)
            yield item
    finally:
        if closed is not None:
            closed.set()


def test_unbounded_streams_pass_through_without_a_thread() -> None:
    source = iter(["a", "b"])
    assert timed(source, StreamDeadlines(), "m", has_text) is source


def test_reads_without_a_deadline_stay_in_the_callers_thread() -> None:
    """With only an idle deadline (the default) nothing bounds the wait for the first
    content chunk, so no thread stands between the stream and its first chunk; the
    reads after it, which the idle deadline bounds, run in the helper thread."""
    readers: list[int] = []

    def source() -> Iterator[str]:
        for item in ("", "a", "b", "c"):
            readers.append(threading.get_ident())
            yield item

    assert list(timed(source(), StreamDeadlines(idle=1), "m", has_text)) == ["", "a", "b", "c"]
    caller = threading.get_ident()
    assert readers[:2] == [caller, caller]
    assert caller not in readers[2:] and len(set(readers[2:])) == 1


def test_an_inline_stream_abandoned_before_any_deadline_is_closed() -> None:
    closed = threading.Event()
    chunks = timed(paced((0, ""), (30, "a"), closed=closed), StreamDeadlines(idle=5), "m", has_text)
    assert next(chunks) == ""
    chunks.close()  # type: ignore[attr-defined]
    assert closed.is_set()  # at once: the caller's thread held the source


def test_the_first_deadline_counts_content_not_empty_chunks() -> None:
    chunks = timed(paced((0, ""), (0, ""), (2, "late")), StreamDeadlines(first=0.2), "m", has_text)
    received = []
    started = time.monotonic()
    with pytest.raises(AttemptTimeoutError, match=r"no first chunk within 0\.2 s"):
        for chunk in chunks:
            received.append(chunk)
    assert received == ["", ""] and time.monotonic() - started < 1


def test_the_idle_deadline_applies_between_chunks() -> None:
    chunks = timed(
        paced((0.3, "a"), (0.3, "b"), (2, "c")), StreamDeadlines(first=1, idle=0.5), "m", has_text
    )
    received = []
    with pytest.raises(AttemptTimeoutError, match=r"no next chunk within 0\.5 s"):
        for chunk in chunks:
            received.append(chunk)
    assert received == ["a", "b"]


def test_the_total_deadline_cuts_a_trickle() -> None:
    chunks = timed(paced(*[(0.05, "x")] * 100), StreamDeadlines(idle=1, total=0.5), "m", has_text)
    received = []
    started = time.monotonic()
    with pytest.raises(AttemptTimeoutError, match=r"no complete answer within 0\.5 s"):
        for chunk in chunks:
            received.append(chunk)
    assert 3 < len(received) < 12 and time.monotonic() - started < 1


def test_a_timed_stream_ends_normally_and_passes_errors_on() -> None:
    assert list(timed(paced((0, "a"), (0, "b")), StreamDeadlines(idle=1), "m", has_text)) == [
        "a",
        "b",
    ]

    def broken() -> Iterator[str]:
        yield "a"
        raise ConnectionError("reset")

    with pytest.raises(ConnectionError):
        list(timed(broken(), StreamDeadlines(idle=1), "m", has_text))


def test_an_abandoned_stream_closes_its_source_after_the_next_chunk() -> None:
    """The reader thread stops reading (and closes the source, which releases its
    connection) as soon as it notices nobody waits any more."""
    closed = threading.Event()
    chunks = timed(
        paced((0, "a"), (0.3, "b"), (0.3, "c"), (30, "d"), closed=closed),
        StreamDeadlines(idle=5),
        "m",
        has_text,
    )
    assert next(chunks) == "a"
    chunks.close()  # type: ignore[attr-defined]
    assert closed.wait(2)


def test_the_reader_thread_knows_the_longest_wait() -> None:
    def source() -> Iterator[float | None]:
        yield patience()

    deadlines = StreamDeadlines(first=2, idle=0.5)
    assert list(timed(source(), deadlines, "m", lambda _: True)) == [2]


async def apaced(*pace: tuple[float, str]) -> AsyncIterator[str]:
    for delay, item in pace:
        await asyncio.sleep(delay)
        yield item


async def test_async_stream_deadlines() -> None:
    first = atimed(apaced((0, ""), (2, "late")), StreamDeadlines(first=0.1), "m", has_text)
    assert await anext(first) == ""
    with pytest.raises(AttemptTimeoutError, match="first chunk"):
        await anext(first)
    idle = atimed(apaced((0, "a"), (2, "b")), StreamDeadlines(first=1, idle=0.1), "m", has_text)
    assert await anext(idle) == "a"
    with pytest.raises(AttemptTimeoutError, match="next chunk"):
        await anext(idle)
    total = atimed(apaced(*[(0.05, "x")] * 100), StreamDeadlines(total=0.3), "m", has_text)
    received = []
    with pytest.raises(AttemptTimeoutError, match="complete answer"):
        async for item in total:
            received.append(item)
    assert 2 < len(received) < 8
    done = atimed(apaced((0, "a"), (0, "b")), StreamDeadlines(idle=1), "m", has_text)
    assert [x async for x in done] == ["a", "b"]


async def test_an_inner_timeout_error_is_not_taken_for_ours() -> None:
    async def inner() -> AsyncIterator[str]:
        yield "a"
        raise TimeoutError("the client's own")

    chunks = atimed(inner(), StreamDeadlines(idle=5), "m", has_text)
    assert await anext(chunks) == "a"
    with pytest.raises(TimeoutError, match="the client's own"):
        await anext(chunks)
