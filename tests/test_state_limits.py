"""Shared rate limits: one GCRA per model in SQLite or Redis, local fallback when down."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.rate_limiters import InMemoryRateLimiter

from llmrouter.resilience import TokenRateLimiter
from llmrouter.state import MemoryState, RedisState, SQLiteState
from llmrouter.state._limits import SharedRateLimiter, SharedTokenRateLimiter
from llmrouter.testing import RedisServer, start_redis_server


def test_memory_state_limits_each_process_alone() -> None:
    assert isinstance(MemoryState().rate_limiter("m", 5.0), InMemoryRateLimiter)


def test_two_limiters_on_one_sqlite_file_share_the_bucket(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    one = SQLiteState(path).rate_limiter("m", requests_per_second=1, max_bucket_size=3)
    two = SQLiteState(path).rate_limiter("m", requests_per_second=1, max_bucket_size=3)
    other = SQLiteState(path).rate_limiter("other", requests_per_second=1, max_bucket_size=1)
    taken = [one.acquire(blocking=False), two.acquire(blocking=False), one.acquire(blocking=False)]
    assert taken == [True, True, True]
    assert not two.acquire(blocking=False) and not one.acquire(blocking=False)
    assert other.acquire(blocking=False)  # a model of its own
    started = time.perf_counter()
    assert two.acquire(blocking=True)  # waits for the next token, about a second
    assert 0.5 < time.perf_counter() - started < 3


def _hammer(url: str, key: str, start: float, deadline: float, out: Any) -> None:
    """Acquire as fast as the limit allows from ``start`` to ``deadline`` (one clock
    for all processes: a forked process that starts late does not stretch the window)."""
    limiter = RedisState(url, namespace=key).rate_limiter("m", 20, max_bucket_size=5)
    count = 0
    time.sleep(max(0.0, start - time.monotonic()))
    while time.monotonic() < deadline:
        limiter.acquire(blocking=True)
        if time.monotonic() < deadline:
            count += 1
    out.put(count)


def test_four_processes_share_one_redis_rate(redis_server: RedisServer) -> None:
    """20 requests/s with a burst of 5, over 1.5 s: at most 5 + 20 x 1.5 = 35 in all."""
    key = f"l{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.monotonic() + 1.0  # all four are running by then
    window = (redis_server.url, key, start, start + 1.5, out)
    processes = [ctx.Process(target=_hammer, args=window) for _ in range(4)]
    for p in processes:
        p.start()
    counts = [out.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(30)
    print(f"\n4 processes at 20 requests/s (burst 5) for 1.5 s: {counts}, {sum(counts)} in all")
    assert 25 <= sum(counts) <= 36  # 4 separate limits would let about 4 x 35 through
    # several processes took from one bucket (on a loaded machine one may start after
    # the window and take nothing; the bound above is what matters)
    assert sum(c > 0 for c in counts) >= 2


def test_redis_down_limits_fall_back_to_this_process(caplog: pytest.LogCaptureFixture) -> None:
    with start_redis_server() as server:
        limiter = RedisState(server.url, namespace="down").rate_limiter("m", 1, 2)
        assert isinstance(limiter, SharedRateLimiter)
        server.kill()
        with caplog.at_level(logging.WARNING, logger="llmrouter"):
            started = time.perf_counter()
            # the local bucket starts empty (LangChain's): the first token after 1 s
            assert limiter.acquire(blocking=True)
            assert time.perf_counter() - started < 3
            assert not limiter.acquire(blocking=False)
        assert any("each process limits its own calls" in r.message for r in caplog.records)


async def test_async_acquire_waits_without_blocking_the_loop(redis_server: RedisServer) -> None:
    limiter = RedisState(redis_server.url, namespace=f"a{uuid.uuid4().hex[:6]}").rate_limiter(
        "m", 10, 1
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    for _ in range(4):
        assert await limiter.aacquire()
    elapsed = time.perf_counter() - started
    task.cancel()
    assert 0.25 < elapsed < 2  # 1 at once, then one every 0.1 s
    assert ticks >= 10  # the loop kept running while it waited


# ------------------------------------------------------------------ tokens per minute


def test_memory_state_counts_tokens_in_this_process() -> None:
    limiter = MemoryState().token_limiter("m", 100)
    assert type(limiter) is TokenRateLimiter and limiter.tokens_per_minute == 100


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_two_processes_share_one_token_minute(
    backend: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two states (as two processes would open them) on one file or server: one minute
    of tokens between them, estimates settled to usage on the shared count."""

    def state() -> Any:
        if backend == "sqlite":
            return SQLiteState(tmp_path / "state.db")
        return RedisState(redis_server.url, namespace=f"t{uuid.uuid4().hex[:6]}")

    first = state()
    one = first.token_limiter("m", 1_000)
    two = (SQLiteState(tmp_path / "state.db") if backend == "sqlite" else first).token_limiter(
        "m", 1_000
    )
    if backend == "redis":  # another client on the same namespace, as another process
        two = RedisState(redis_server.url, namespace=first.namespace).token_limiter("m", 1_000)
    assert isinstance(one, SharedTokenRateLimiter)
    assert one.try_take(600) == 0.0
    wait = two.try_take(600)  # only 400 left: 200 more come back in 12 s
    assert 11 < wait < 13
    two.adjust(0)  # nothing taken by a refused take, nothing to settle
    one.adjust(-500)  # the call used 100 of its 600: 500 back for everyone
    assert two.try_take(600) == 0.0
    assert one.try_take(2_000) == float("inf")  # more than a minute's worth
    other = first.token_limiter("other", 1_000)
    assert other.try_take(1_000) == 0.0  # a model of its own


def _spend_tokens(url: str, key: str, start: float, deadline: float, out: Any) -> None:
    limiter = RedisState(url, namespace=key).token_limiter("m", 6_000)  # 100 a second
    taken = 0
    time.sleep(max(0.0, start - time.monotonic()))
    while time.monotonic() < deadline:
        wait = limiter.try_take(50)
        if wait == 0.0:
            taken += 50
            limiter.adjust(-10)  # each "call" used 40 of its 50
            taken -= 10
        else:
            time.sleep(min(wait, 0.05))
    out.put(taken)


def test_four_processes_share_one_redis_token_limit(redis_server: RedisServer) -> None:
    """6,000 tokens a minute (a full minute to start with, 100 more a second) over
    1.5 s: at most 6,000 + 150 used by four processes together."""
    key = f"t{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.monotonic() + 1.0
    window = (redis_server.url, key, start, start + 1.5, out)
    processes = [ctx.Process(target=_spend_tokens, args=window) for _ in range(4)]
    for p in processes:
        p.start()
    used = [out.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(30)
    print(f"\n4 processes at 6,000 tokens/min for 1.5 s used {used}, {sum(used)} in all")
    assert 5_900 <= sum(used) <= 6_150 + 40  # 4 separate limits would allow ~4 x 6,150
    assert sum(u > 0 for u in used) >= 2


def test_redis_down_token_limits_fall_back_to_this_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with start_redis_server() as server:
        limiter = RedisState(server.url, namespace="tdown").token_limiter("m", 100)
        assert limiter.try_take(100) == 0.0
        server.kill()
        with caplog.at_level(logging.WARNING, logger="llmrouter"):
            started = time.perf_counter()
            assert limiter.try_take(80) == 0.0  # this process's own minute (it starts full)
            assert limiter.try_take(80) > 0
            limiter.adjust(-80)
            assert limiter.try_take(80) == 0.0
            assert time.perf_counter() - started < 3  # never a hang
        assert any("each process limits its own calls" in r.message for r in caplog.records)
