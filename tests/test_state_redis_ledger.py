"""RedisSpendLedger against a real redis-server: atomic reserve, settle once, outages."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from llmrouter.cost import Budget
from llmrouter.errors import ConfigurationError, StateUnavailableError
from llmrouter.state import RedisState, WindowCheck, state_errors
from llmrouter.state._redis_ledger import RedisSpendLedger
from llmrouter.testing import RedisServer, start_redis_server

DAY = Budget(usd=1.0, per="day")


def ledger_on(server: RedisServer, **options: object) -> RedisSpendLedger:
    """A ledger in a namespace of its own: tests sharing the server stay apart."""
    state = RedisState(server.url, namespace=f"t{uuid.uuid4().hex[:8]}", **options)  # type: ignore[arg-type]
    ledger = state.ledger()
    assert isinstance(ledger, RedisSpendLedger)
    return ledger


def day(limit: float = 1.0, *, per_user: bool = False, now: float | None = None) -> WindowCheck:
    return WindowCheck(*DAY.window(now), per_user=per_user, limit_usd=limit)


def test_a_reservation_is_made_only_if_it_fits(redis_server: RedisServer) -> None:
    ledger, now = ledger_on(redis_server), time.time()
    first = ledger.reserve_within("r", None, 0.6, at=now, checks=[day()])
    assert isinstance(first, int)
    refused = ledger.reserve_within("r", None, 0.6, at=now, checks=[day()])
    assert isinstance(refused, list)  # the fresh totals, for the next decision
    assert refused[0].reserved_usd == pytest.approx(0.6) and refused[0].open_reservations == 1
    assert [r["state"] for r in ledger.rows("r")] == ["reserved"]  # nothing reserved twice
    assert isinstance(ledger.reserve_within("r", None, 0.4, at=now, checks=[day()]), int)


def test_settle_happens_once_and_release_frees_the_amount(redis_server: RedisServer) -> None:
    ledger, now = ledger_on(redis_server), time.time()
    a = ledger.reserve_within("r", "ann", 0.5, at=now, checks=[day()])
    b = ledger.reserve_within("r", "bob", 0.3, at=now, checks=[day()])
    assert isinstance(a, int) and isinstance(b, int)
    ledger.settle(a, 0.2, model="small", scope="r")
    ledger.settle(a, 0.2, model="small", scope="r")  # a second settle changes nothing
    ledger.release(b, scope="r")
    ledger.release(b, scope="r")
    (totals,) = ledger.totals_many("r", None, [day()])
    assert totals.settled_usd == pytest.approx(0.2)
    assert totals.reserved_usd == 0 and totals.open_reservations == 0
    rows = ledger.rows("r")
    assert [(r["id"], r["user"], r["state"], r["model"]) for r in rows] == [
        (a, "ann", "settled", "small"),
        (b, "bob", "released", None),
    ]
    assert rows[0]["usd"] == pytest.approx(0.2) and rows[1]["usd"] == 0


def test_spend_without_a_reservation_and_per_user_windows(redis_server: RedisServer) -> None:
    ledger = ledger_on(redis_server)
    ledger.settle(None, 0.25, model="m", scope="r", user="ann")
    ledger.settle(None, 0.5, model="m", scope="r", user="bob")
    ledger.settle(None, 0.0, scope="r")  # nothing spent: no row
    checks = [day(per_user=True), day()]
    ann, everyone = ledger.totals_many("r", "ann", checks)
    assert ann.settled_usd == pytest.approx(0.25) and everyone.settled_usd == pytest.approx(0.75)
    assert len(ledger.rows("r")) == 2
    # every calendar window of the spend holds it: an hour budget sees it too
    hour = Budget(usd=1, per="hour")
    assert ledger.spent("r", *hour.window()) == pytest.approx(0.75)
    assert ledger.spent("other", *hour.window()) == 0


def test_stale_reservations_count_as_spent_and_resize_raises_open_ones(
    redis_server: RedisServer,
) -> None:
    ledger, now = ledger_on(redis_server), time.time()
    old = ledger.reserve_within("r", None, 0.1, at=now - 1000, checks=[day(now=now - 1000)])
    new = ledger.reserve_within("r", None, 0.2, at=now, checks=[day()])
    assert isinstance(old, int) and isinstance(new, int)
    ledger.resize([(new, 0.3)], scope="r")
    (totals,) = ledger.totals_many("r", None, [day()], stale_before=now - 500)
    if DAY.window(now - 1000) == DAY.window(now):  # both in today's window
        assert totals.settled_usd == pytest.approx(0.1)
    assert totals.reserved_usd == pytest.approx(0.3) and totals.open_reservations == 1


def test_reservations_abandoned_long_ago_are_closed_at_their_estimate(
    redis_server: RedisServer,
) -> None:
    ledger, now = ledger_on(redis_server), time.time()
    then = now - 41 * 86400
    old = ledger.reserve_within("r", None, 0.1, at=then, checks=[day(now=then)])
    ledger.reserve_within("r", None, 0.1, at=now, checks=[day()])  # sweeps the old one
    rows = {r["id"]: r for r in ledger.rows("r")}
    assert rows[old]["state"] == "settled" and rows[old]["usd"] == pytest.approx(0.1)


def test_only_calendar_windows_can_be_asked(redis_server: RedisServer) -> None:
    ledger = ledger_on(redis_server)
    with pytest.raises(ConfigurationError, match="calendar hour, day and month"):
        ledger.spent("r", 0.0, 2000.0)


def test_sixteen_threads_never_reserve_past_the_limit(redis_server: RedisServer) -> None:
    ledger, now = ledger_on(redis_server), time.time()
    granted: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(5):
            got = ledger.reserve_within("r", None, 0.1, at=now, checks=[day()])
            if isinstance(got, int):
                with lock:
                    granted.append(got)

    threads = [threading.Thread(target=take) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 10 and len(set(granted)) == 10  # 10 x 0.1 = the 1.0 limit


def test_redis_down_fails_closed_and_keeps_settlements_until_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with start_redis_server() as server:
        ledger, now = ledger_on(server), time.time()
        rid = ledger.reserve_within("r", None, 0.5, at=now, checks=[day()])
        assert isinstance(rid, int)
        server.kill()
        before = state_errors().get(("redis", "budgets"), 0)
        started = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger="llmrouter"):
            with pytest.raises(StateUnavailableError, match="did not answer for budgets"):
                ledger.reserve_within("r", None, 0.1, at=now, checks=[day()])
            ledger.settle(rid, 0.4, model="m", scope="r")  # kept, not lost
            with pytest.raises(StateUnavailableError):
                ledger.totals_many("r", None, [day()])
        assert time.perf_counter() - started < 5  # timeouts, no hang
        assert ledger.pending() == 1
        assert state_errors()[("redis", "budgets")] >= before + 3
        warnings = [r for r in caplog.records if "did not answer for budgets" in r.message]
        assert len(warnings) == 1 and "budgets refuse calls" in warnings[0].message
        server.start()
        assert ledger.flush() and ledger.pending() == 0
        (row,) = ledger.rows("r")
        assert row["state"] == "settled" and row["usd"] == pytest.approx(0.4)
        assert ledger.totals_many("r", None, [day()])[0].settled_usd == pytest.approx(0.4)


def test_redis_down_fails_open_when_told_and_writes_the_spend_later() -> None:
    with start_redis_server() as server:
        ledger, now = ledger_on(server, budgets="open"), time.time()
        server.kill()
        assert ledger.totals_many("r", None, [day()])[0].committed_usd == 0
        rid = ledger.reserve_within("r", "ann", 0.5, at=now, checks=[day()])
        assert isinstance(rid, int) and rid < 0  # a local id: nothing was checked
        ledger.settle(rid, 0.3, model="m", scope="r")
        assert ledger.pending() == 1
        server.start()
        assert ledger.flush()
        (row,) = ledger.rows("r")
        assert (row["user"], row["state"], row["model"]) == ("ann", "settled", "m")
        assert row["usd"] == pytest.approx(0.3)
