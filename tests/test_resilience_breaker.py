"""Circuit breakers: open after N failures in a window, half-open trial, shared state."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from llmrouter.resilience import CircuitBreaker, MemoryBreakerBoard, SQLiteBreakerBoard


def breaker(**kwargs: float) -> CircuitBreaker:
    options = {"failure_threshold": 3, "window": 10.0, "cooldown": 5.0, **kwargs}
    return CircuitBreaker(board=MemoryBreakerBoard(), **options)  # type: ignore[arg-type]


def test_opens_after_threshold_failures_within_the_window() -> None:
    b = breaker()
    for t in (0.0, 1.0):
        b.record_failure("m", now=t)
    assert b.allow("m", now=2.0)
    b.record_failure("m", now=2.0)
    assert b.state("m") == "open" and not b.allow("m", now=3.0)


def test_old_failures_leave_the_window() -> None:
    b = breaker()
    b.record_failure("m", now=0.0)
    b.record_failure("m", now=1.0)
    b.record_failure("m", now=20.0)  # the first two are older than the 10 s window
    assert b.state("m") == "closed"


def test_half_open_allows_one_trial_and_closes_on_success() -> None:
    b = breaker(failure_threshold=1)
    b.record_failure("m", now=0.0)
    assert not b.allow("m", now=4.9)
    assert b.allow("m", now=5.0)  # the trial
    assert not b.allow("m", now=5.1)  # only one at a time
    b.record_success("m", now=5.2)
    assert b.state("m") == "closed" and b.allow("m", now=5.3)


def test_failed_trial_reopens_for_another_cooldown() -> None:
    b = breaker(failure_threshold=1)
    b.record_failure("m", now=0.0)
    assert b.allow("m", now=5.0)
    b.record_failure("m", now=5.5)
    assert b.state("m") == "open" and not b.allow("m", now=10.0) and b.allow("m", now=10.6)


def test_a_lost_trial_expires() -> None:
    b = breaker(failure_threshold=1)
    b.record_failure("m", now=0.0)
    assert b.allow("m", now=5.0)  # trial never reports back
    assert b.allow("m", now=10.1)


def test_models_are_independent_and_health_reports() -> None:
    b = breaker(failure_threshold=1)
    b.record_failure("a")
    health = b.health(["a", "b"])
    assert health["a"]["state"] == "open" and health["a"]["opens"] == 1
    assert 0 < health["a"]["open_for_s"] <= 5.0
    assert health["b"] == {"state": "closed", "recent_failures": 0, "open_for_s": 0.0, "opens": 0}


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)


def _fail_in_child(path: str) -> None:
    CircuitBreaker(board=SQLiteBreakerBoard(path), failure_threshold=2).record_failure("m")


def test_sqlite_board_is_shared_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "breakers.db")
    ctx = multiprocessing.get_context("spawn")
    for _ in range(2):
        child = ctx.Process(target=_fail_in_child, args=(path,))
        child.start()
        child.join(60)
        assert child.exitcode == 0
    here = CircuitBreaker(board=SQLiteBreakerBoard(path), failure_threshold=2)
    assert here.state("m") == "open" and not here.allow("m")
