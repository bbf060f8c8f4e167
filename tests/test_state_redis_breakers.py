"""RedisBreakerBoard against a real redis-server: one view of each model, local fallback."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from llmrouter import CircuitBreaker
from llmrouter.state import RedisState, state_errors
from llmrouter.state._outage import RETRY_S
from llmrouter.testing import RedisServer, start_redis_server


def boards(server: RedisServer, n: int = 2) -> list[CircuitBreaker]:
    """``n`` breakers on separate clients (as in separate processes), one namespace."""
    namespace = f"b{uuid.uuid4().hex[:8]}"
    return [
        CircuitBreaker(
            failure_threshold=2,
            window=60,
            cooldown=30,
            board=RedisState(server.url, namespace=namespace).breaker_board(),
        )
        for _ in range(n)
    ]


def test_a_breaker_opened_through_one_client_is_open_for_the_other(
    redis_server: RedisServer,
) -> None:
    mine, theirs = boards(redis_server)
    assert theirs.allow("m") and theirs.board.quiet("m")
    mine.record_failure("m", now=100.0)
    assert not theirs.board.quiet("m")  # a recent failure is shared at once
    mine.record_failure("m", now=101.0)
    assert theirs.state("m") == "open"
    assert not theirs.allow("m", now=102.0)
    assert theirs.health(["m"])["m"]["opens"] == 1
    # after the cool-down exactly one trial goes through, whichever client asks
    assert theirs.allow("m", now=131.5)
    assert not mine.allow("m", now=131.6)
    theirs.record_success("m", now=132.0)
    assert mine.state("m") == "closed" and mine.allow("m", now=133.0)


def test_concurrent_failures_are_all_counted(redis_server: RedisServer) -> None:
    breakers = boards(redis_server, 8)
    wide = [CircuitBreaker(failure_threshold=100, window=600, board=b.board) for b in breakers]
    now = time.time()
    threads = [
        threading.Thread(target=lambda b=b: [b.record_failure("m", now=now) for _ in range(5)])
        for b in wide
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 40 read-modify-writes from 8 clients: the transactions lost none
    assert len(wide[0].board.snapshot()["m"].failures) == 40


def test_snapshot_and_reset(redis_server: RedisServer) -> None:
    mine, theirs = boards(redis_server)
    mine.record_failure("a")
    mine.record_failure("b")
    assert sorted(theirs.board.snapshot()) == ["a", "b"]
    theirs.board.reset()
    assert mine.board.snapshot() == {} and mine.state("a") == "closed"


def test_redis_down_falls_back_to_local_breakers_and_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with start_redis_server() as server:
        (breaker,) = boards(server, 1)
        breaker.record_failure("shared", now=1.0)
        server.kill()
        before = state_errors().get(("redis", "breakers"), 0)
        started = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger="llmrouter"):
            assert breaker.allow("m")  # fails open: this process's own breakers
            breaker.record_failure("m", now=1.0)
            breaker.record_failure("m", now=2.0)
            assert not breaker.allow("m", now=3.0)  # and they still work
            server.start()
            time.sleep(RETRY_S)  # during an outage Redis is asked again once a second
            assert breaker.allow("m", now=3.0)  # the shared state again: m never failed there
        assert time.perf_counter() - started < 10
        assert state_errors()[("redis", "breakers")] >= before + 3
        messages = [r.message for r in caplog.records]
        assert sum("did not answer for breakers" in m for m in messages) == 1
        assert any("each process keeps its own breakers" in m for m in messages)
        assert any("answers again for breakers" in m for m in messages)
        assert len(breaker.board.snapshot()["shared"].failures) == 1  # kept across the restart
