"""Budgets: windows, admission (refuse / downgrade), per-user limits, concurrency."""

from __future__ import annotations

import pickle
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from llmrouter import ConfigurationError
from llmrouter.cost._budget import Budget, BudgetGuard
from llmrouter.errors import BudgetExceededError
from llmrouter.state import RedisState
from llmrouter.state._sqlite_ledger import SpendLedger
from llmrouter.testing import RedisServer


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()  # type: ignore[misc]


def test_budget_validates_with_readable_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        Budget(usd=-1)
    assert "usd" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        Budget(usd=1, per="week")  # type: ignore[arg-type]
    assert "per" in str(info.value)
    with pytest.raises(ConfigurationError):
        Budget(usd=1, on_exceeded="warn")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("per", "now", "start", "end"),
    [
        ("hour", ts(2025, 3, 4, 10, 59, 59), ts(2025, 3, 4, 10), ts(2025, 3, 4, 11)),
        ("day", ts(2025, 3, 4, 23, 59), ts(2025, 3, 4), ts(2025, 3, 5)),
        ("month", ts(2025, 2, 28, 12), ts(2025, 2, 1), ts(2025, 3, 1)),
        ("month", ts(2025, 12, 31, 23), ts(2025, 12, 1), ts(2026, 1, 1)),
    ],
)
def test_calendar_windows_in_utc(per: str, now: float, start: float, end: float) -> None:
    assert Budget(usd=1, per=per).window(now) == (start, end)  # type: ignore[arg-type]


def guard(*budgets: Budget) -> BudgetGuard:
    return BudgetGuard(list(budgets), SpendLedger(":memory:"), scope="test")


def test_downgrade_keeps_models_that_fit_and_reserves_the_dearest_kept() -> None:
    g = guard(Budget(usd=0.1, per="day", on_exceeded="downgrade"))
    first = g.admit([("small", 0.06), ("big", 0.2), ("local", 0.0)], now=ts(2025, 1, 1, 1))
    assert first.allowed == ["small", "local"] and first.reserved_usd == 0.06
    assert "big" in first.excluded and "$0.10 per day" in first.excluded["big"]
    # the open reservation counts: 0.04 left, so small no longer fits
    second = g.admit([("small", 0.06), ("local", 0.0)], now=ts(2025, 1, 1, 2))
    assert second.allowed == ["local"] and second.reservation is None
    g.settle(first.reservation, 0.01, model="small")
    third = g.admit([("small", 0.06)], now=ts(2025, 1, 1, 3))
    assert third.allowed == ["small"]
    # a new day starts from zero
    assert g.status(now=ts(2025, 1, 2))[0].spent_usd == 0
    (status,) = g.status(now=ts(2025, 1, 1, 3))  # third is in flight: reserved, not spent
    assert (status.spent_usd, status.reserved_usd, status.open_reservations) == (0.01, 0.06, 1)
    assert g.status(now=ts(2025, 1, 1, 4))[0].spent_usd == pytest.approx(0.07)


def test_refuse_raises_when_the_first_choice_does_not_fit() -> None:
    g = guard(Budget(usd=0.05, per="hour", on_exceeded="refuse"))
    with pytest.raises(BudgetExceededError) as info:
        g.admit([("big", 0.08), ("small", 0.01)], now=ts(2025, 1, 1, 1, 30))
    err = info.value
    assert err.model == "big" and err.needed_usd == 0.08
    assert err.status.remaining_usd == 0.05
    message = str(err)
    assert "$0.080000" in message and "$0.05 per hour" in message and "2025-01-01 02:00" in message
    assert "on_exceeded='downgrade'" in message  # says what to do
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == message
    # a refused request reserved nothing; fallbacks that do not fit are dropped
    admitted = g.admit([("small", 0.01), ("big", 0.08)], now=ts(2025, 1, 1, 1, 31))
    assert admitted.allowed == ["small"] and list(admitted.excluded) == ["big"]


def test_downgrade_with_nothing_that_fits_raises() -> None:
    g = guard(Budget(usd=0.01, per="month", on_exceeded="downgrade"))
    with pytest.raises(BudgetExceededError) as info:
        g.admit([("big", 0.08), ("small", 0.02)])
    assert info.value.model == "small"  # the cheapest candidate is named


def test_free_models_always_fit_even_over_budget() -> None:
    g = guard(Budget(usd=0.01, per="day", on_exceeded="refuse"))
    g.settle(None, 0.05, model="x")  # actual cost exceeded the estimate earlier
    assert g.status()[0].remaining_usd == pytest.approx(-0.04)
    assert g.admit([("local", 0.0)]).allowed == ["local"]
    with pytest.raises(BudgetExceededError):
        g.admit([("small", 0.001)])


def test_per_user_budgets_are_separate_and_global_ones_sum_all_users() -> None:
    g = guard(
        Budget(usd=0.1, per="day", key="user", on_exceeded="refuse"),
        Budget(usd=0.15, per="day", on_exceeded="refuse"),
    )
    now = ts(2025, 5, 5, 5)
    g.settle(g.admit([("m", 0.08)], user="alice", now=now).reservation, 0.08, user="alice")
    with pytest.raises(BudgetExceededError) as info:
        g.admit([("m", 0.05)], user="alice", now=now)
    assert "for user 'alice'" in str(info.value)
    g.settle(g.admit([("m", 0.05)], user="bob", now=now).reservation, 0.05, user="bob")
    with pytest.raises(BudgetExceededError) as info:  # bob has room, the team does not
        g.admit([("m", 0.05)], user="bob", now=now)
    assert "$0.15 per day" in str(info.value)
    statuses = g.status(user="alice", now=now)
    assert [round(s.spent_usd, 6) for s in statuses] == [0.08, 0.13]


def test_per_request_budget_needs_no_ledger() -> None:
    g = BudgetGuard([Budget(usd=0.01, per="request", on_exceeded="downgrade")], None, "r")
    admission = g.admit([("big", 0.02), ("small", 0.005)])
    assert admission.allowed == ["small"] and admission.reservation is None
    assert not g.windowed
    with pytest.raises(ConfigurationError):
        BudgetGuard([Budget(usd=1, per="day")], None, "r")


def test_concurrent_admissions_never_overspend(tmp_path: Path) -> None:
    """32 threads on two ledger connections (as two processes would) reserve atomically."""
    path = tmp_path / "spend.db"
    budget = Budget(usd=0.1, per="day", on_exceeded="refuse")
    guards = [BudgetGuard([budget], SpendLedger(path), scope="r") for _ in range(2)]
    admitted: list[int | None] = []
    refused: list[BudgetExceededError] = []
    start = threading.Barrier(32)

    def call(i: int) -> None:
        g = guards[i % 2]
        start.wait()
        try:
            admission = g.admit([("m", 0.007)])
        except BudgetExceededError as exc:
            refused.append(exc)
            return
        admitted.append(admission.reservation)
        g.settle(admission.reservation, 0.007)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 14 and len(refused) == 18  # floor(0.1 / 0.007)
    assert guards[0].status()[0].spent_usd == pytest.approx(0.098)


def test_refusal_reports_spent_and_reserved_separately() -> None:
    g = guard(Budget(usd=0.01, per="day", on_exceeded="refuse"))
    now = ts(2025, 3, 3, 3)
    g.settle(g.admit([("m", 0.004)], now=now).reservation, 0.003, model="m")
    g.admit([("m", 0.002)], now=now)  # two calls in flight
    g.admit([("m", 0.002)], now=now)
    (status,) = g.status(now=now)
    assert status.spent_usd == pytest.approx(0.003)
    assert status.reserved_usd == pytest.approx(0.004) and status.open_reservations == 2
    assert status.committed_usd == pytest.approx(0.007)
    assert status.remaining_usd == pytest.approx(0.003)
    # spent + reserved + this estimate == the limit: it fits (no refusal on a rounding error)
    assert g.admit([("m", 0.003)], now=now).allowed == ["m"]
    with pytest.raises(BudgetExceededError) as info:
        g.admit([("m", 0.0005)], now=now)
    err = info.value
    assert err.spent_usd == pytest.approx(0.003) and err.reserved_usd == pytest.approx(0.007)
    message = str(err)
    assert "spent $0.003000" in message
    assert "$0.007000 reserved by 3 calls in flight" in message
    assert "$0.000000 left" in message
    assert str(pickle.loads(pickle.dumps(err))) == message


def test_reservations_older_than_the_timeout_count_as_spent_not_in_flight() -> None:
    g = BudgetGuard(
        [Budget(usd=1.0, per="day")], SpendLedger(":memory:"), "t", reservation_timeout=60.0
    )
    now = ts(2025, 3, 3, 3)
    g.admit([("m", 0.25)], now=now - 120)  # never settled: its process died
    g.admit([("m", 0.125)], now=now - 10)  # in flight
    (status,) = g.status(now=now)
    assert (status.spent_usd, status.reserved_usd, status.open_reservations) == (0.25, 0.125, 1)
    assert status.remaining_usd == 0.625  # a crashed call is still charged its estimate


# ------------------------------------------- a remote ledger: no read before most admissions


def redis_guard(server: RedisServer, namespace: str, usd: float) -> tuple[BudgetGuard, Any]:
    ledger = RedisState(server.url, namespace=namespace).ledger()
    assert ledger.remote
    budget = Budget(usd=usd, per="day", on_exceeded="downgrade")
    return BudgetGuard([budget], ledger, scope="r"), ledger


def counting_reads(ledger: Any) -> list[int]:
    reads: list[int] = []
    read = ledger.totals_many

    def totals_many(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return read(*args, **kwargs)

    ledger.totals_many = totals_many
    return reads


def test_on_redis_an_admission_with_room_for_every_candidate_reads_nothing_first(
    redis_server: RedisServer,
) -> None:
    guard, ledger = redis_guard(redis_server, f"b{uuid.uuid4().hex[:6]}", 10.0)
    reads = counting_reads(ledger)
    for _ in range(5):
        admission = guard.admit([("big", 0.5), ("small", 0.1)])
        assert admission.allowed == ["big", "small"] and admission.reservation is not None
    assert len(reads) == 1  # only the first admission read the totals
    (status,) = guard.status()
    assert status.reserved_usd == pytest.approx(2.5) and status.open_reservations == 5
    assert SpendLedger(":memory:").remote is False  # local ledgers read every time


def test_stale_totals_never_let_a_process_overspend(redis_server: RedisServer) -> None:
    namespace = f"b{uuid.uuid4().hex[:6]}"
    one, _ = redis_guard(redis_server, namespace, 1.2)
    two, _ = redis_guard(redis_server, namespace, 1.2)  # another process, same budget
    assert one.admit([("big", 0.5), ("small", 0.1)]).allowed == ["big", "small"]
    assert two.admit([("big", 0.5), ("small", 0.1)]).allowed == ["big", "small"]
    # one still remembers 0.5 committed, and big would fit that; the reservation sees
    # the real 1.0, refuses, and one decides again on the fresh totals: small only
    admission = one.admit([("big", 0.5), ("small", 0.1)])
    assert admission.allowed == ["small"] and admission.reserved_usd == 0.1
    (status,) = one.status()
    assert status.committed_usd == pytest.approx(1.1)  # within the 1.2


def test_totals_that_would_leave_a_candidate_out_are_read_again(
    redis_server: RedisServer,
) -> None:
    guard, ledger = redis_guard(redis_server, f"b{uuid.uuid4().hex[:6]}", 1.0)
    first = guard.admit([("big", 0.6), ("small", 0.1)])
    guard.settle(first.reservation, 0.01, model="big")  # it cost far less than reserved
    reads = counting_reads(ledger)
    # remembered: 0.6 committed, so big would not fit; read: 0.01 spent, it does
    assert guard.admit([("big", 0.6), ("small", 0.1)]).allowed == ["big", "small"]
    assert len(reads) == 1
