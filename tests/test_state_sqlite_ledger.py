"""The SQLite spend ledger: reserve, settle, release, sums by window, persistence."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from llmrouter.state._sqlite_ledger import SpendLedger, default_spend_db


def test_ledger_reserve_settle_release_and_sum_by_window() -> None:
    ledger = SpendLedger(":memory:")
    with ledger.transaction() as txn:
        a = txn.reserve("r", "alice", 0.5, at=100.0)
        b = txn.reserve("r", "bob", 0.25, at=200.0)
        c = txn.reserve("r", None, 1.0, at=300.0)
    assert ledger.spent("r", 0, 1000) == 1.75  # reservations count until settled
    ledger.settle(a, 0.4, model="m")
    ledger.release(c)
    assert ledger.spent("r", 0, 1000) == pytest.approx(0.65)
    assert ledger.spent("r", 0, 1000, "alice", any_user=False) == pytest.approx(0.4)
    assert ledger.spent("r", 150, 1000) == 0.25
    assert ledger.spent("other", 0, 1000) == 0
    states = {row["id"]: row["state"] for row in ledger.rows("r")}
    assert states == {a: "settled", b: "reserved", c: "released"}
    ledger.settle(None, 0.1, scope="r", at=500.0)  # spend without a reservation
    assert ledger.spent("r", 0, 1000) == pytest.approx(0.75)


def test_ledger_persists_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "spend.db"  # a file in an existing folder (see _sqlite.database_path)
    first = SpendLedger(path)
    with first.transaction() as txn:
        rid = txn.reserve("r", None, 0.3, at=10.0)
    first.settle(rid, 0.2)
    first.close()
    assert SpendLedger(path).spent("r", 0, 100) == pytest.approx(0.2)


def test_default_spend_db_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMROUTER_SPEND_DB", str(tmp_path / "x.db"))
    assert default_spend_db() == tmp_path / "x.db"
    monkeypatch.delenv("LLMROUTER_SPEND_DB")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_spend_db() == tmp_path / "llmrouter" / "spend.db"


def test_a_forked_process_books_into_the_same_ledger(tmp_path: Path) -> None:
    ledger = SpendLedger(tmp_path / "spend.db")
    with ledger.transaction() as txn:
        parent = txn.reserve("r", None, 0.25, at=10.0)

    def child() -> None:  # the parent's connection is not used: the child opens its own
        with ledger.transaction() as txn:
            assert txn.spent("r", 0, 100) == 0.25
            txn.reserve("r", "child", 0.5, at=20.0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 0
    ledger.settle(parent, 0.125)
    assert ledger.spent("r", 0, 100) == pytest.approx(0.625)
    assert [row["user"] for row in ledger.rows("r")] == ["", "child"]


def test_totals_split_settled_spend_from_open_reservations_and_expire_stale_ones() -> None:
    ledger = SpendLedger(":memory:")
    with ledger.transaction() as txn:
        settled = txn.reserve("r", None, 0.5, at=100.0)
        released = txn.reserve("r", None, 0.25, at=100.0)
        txn.reserve("r", None, 0.125, at=10.0)  # its process died: never settled
        txn.reserve("r", "bob", 0.0625, at=150.0)  # in flight
    ledger.settle(settled, 0.375, model="m")
    ledger.release(released)
    totals = ledger.totals("r", since=0.0, until=200.0, stale_before=50.0)
    # the stale reservation counts as spent at its estimate, not as in flight
    assert (totals.settled_usd, totals.reserved_usd, totals.open_reservations) == (0.5, 0.0625, 1)
    assert totals.committed_usd == ledger.spent("r", 0.0, 200.0) == 0.5625
    bob = ledger.totals("r", 0.0, 200.0, "bob", any_user=False, stale_before=50.0)
    assert (bob.settled_usd, bob.reserved_usd) == (0.0, 0.0625)
    with ledger.transaction() as txn:
        assert txn.totals("r", 0.0, 200.0, stale_before=0.0).reserved_usd == 0.1875
