"""`SpendLedger`: spend per scope and user over time, persisted in SQLite.

Before a call, a router *reserves* its estimate inside one `SpendLedger.transaction`
(``BEGIN IMMEDIATE``: check and reserve are atomic across threads and
processes); after the call the reservation is *settled* to the actual cost, or
*released* when every attempt failed. A restart does not reset the spend, and
several processes can share one file.

`SpendLedger.totals` keeps the two apart: *settled* spend (what calls cost) and
*reserved* (estimates of calls still in flight). A reservation older than
``stale_before`` belongs to a call whose process died before settling it: it
counts as settled spend at its estimate, no longer as in flight.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmrouter._sqlite import SQLiteDatabase, database_path
from llmrouter.state._ledger_api import BaseLedger, SpendTotals, WindowCheck, fits

__all__ = ["LedgerTransaction", "SpendLedger", "SpendTotals", "default_spend_db"]


def default_spend_db() -> Path:
    """``$LLMROUTER_SPEND_DB``, else ``$XDG_CACHE_HOME/llmrouter/spend.db`` (``~/.cache``)."""
    explicit = os.environ.get("LLMROUTER_SPEND_DB")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "llmrouter" / "spend.db"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    user TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,
    usd REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'settled', 'released')),
    model TEXT
);
CREATE INDEX IF NOT EXISTS spend_scope_at ON spend (scope, at);
"""

_COLUMNS = ("id", "scope", "user", "at", "usd", "state", "model")


class SpendLedger(BaseLedger):
    """Spend per (scope, user) over time, in SQLite (WAL); safe across threads and processes.

    ``path`` is a file in an existing folder, ``":memory:"`` for a
    process-local ledger, or ``None`` for `default_spend_db`. A reserved amount
    counts against a budget until it is settled or released, so an abandoned call
    (e.g. a process killed mid-request) is charged its estimate, never less;
    `totals` reports it as in flight until it is older than ``stale_before``.

    Examples:
        >>> from llmrouter.state._sqlite_ledger import SpendLedger
        >>> ledger = SpendLedger(":memory:")
        >>> with ledger.transaction() as txn:
        ...     rid = txn.reserve("router", None, 0.02, at=1000.0)
        >>> ledger.settle(rid, 0.015, model="small")
        >>> ledger.spent("router", since=0.0, until=2000.0)
        0.015
    """

    def __init__(self, path: str | Path | None = None, *, timeout: float = 30.0) -> None:
        if path is None:  # our own default location: its folders are ours to create
            self.path = database_path(default_spend_db(), "spend_db", create_parent=True)
        else:
            self.path = database_path(path, "spend_db")
        self._db = SQLiteDatabase(self.path, _SCHEMA, timeout=timeout)

    def __repr__(self) -> str:
        return f"SpendLedger({self.path!r})"

    @contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """An exclusive write transaction: read spend and reserve atomically."""
        with self._db.transaction() as conn:
            yield LedgerTransaction(conn)

    def totals_many(
        self,
        scope: str,
        user: str | None,
        checks: Sequence[WindowCheck],
        *,
        stale_before: float = float("-inf"),
    ) -> list[SpendTotals]:
        with self.transaction() as txn:
            return txn.totals_many(scope, user, checks, stale_before)

    def reserve_within(
        self,
        scope: str,
        user: str | None,
        usd: float,
        *,
        at: float,
        checks: Sequence[WindowCheck],
        stale_before: float = float("-inf"),
    ) -> int | list[SpendTotals]:
        with self.transaction() as txn:  # BEGIN IMMEDIATE: no writer slips in between
            totals = txn.totals_many(scope, user, checks, stale_before)
            if not fits(totals, checks, usd):
                return totals
            return txn.reserve(scope, user, usd, at=at)

    def settle(
        self,
        reservation: int | None,
        usd: float,
        *,
        model: str | None = None,
        scope: str = "",
        user: str | None = None,
        at: float | None = None,
        resize: Sequence[tuple[int, float]] = (),
    ) -> None:
        """Replace a reservation by the actual cost (or record spend with no reservation);
        in the same transaction, set other open reservations (row id, USD) to new amounts."""
        if reservation is None and usd <= 0 and not resize:
            return
        with self._db.transaction() as conn:
            LedgerTransaction(conn).resize(resize)
            if reservation is None and usd <= 0:
                return
            if reservation is not None:
                conn.execute(
                    "UPDATE spend SET usd = ?, state = 'settled', model = ? WHERE id = ?",
                    (usd, model, reservation),
                )
            else:
                conn.execute(
                    "INSERT INTO spend (scope, user, at, usd, state, model) "
                    "VALUES (?, ?, ?, ?, 'settled', ?)",
                    (scope, user or "", time.time() if at is None else at, usd, model),
                )

    def release(self, reservation: int, *, scope: str = "") -> None:
        """Drop a reservation: the call spent nothing (every attempt failed)."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE spend SET usd = 0, state = 'released' WHERE id = ? AND state = 'reserved'",
                (reservation,),
            )

    def resize(self, reservations: Sequence[tuple[int, float]], *, scope: str = "") -> None:
        if reservations:
            with self.transaction() as txn:
                txn.resize(reservations)

    def rows(self, scope: str | None = None) -> list[dict[str, Any]]:
        query = f"SELECT {', '.join(_COLUMNS)} FROM spend"
        args: tuple[Any, ...] = ()
        if scope is not None:
            query, args = query + " WHERE scope = ?", (scope,)
        rows = self._db.fetch(query + " ORDER BY id", args)
        return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]

    def close(self) -> None:
        self._db.close()


class LedgerTransaction:
    """Reads and reservations inside `SpendLedger.transaction`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def spent(
        self,
        scope: str,
        since: float,
        until: float,
        user: str | None = None,
        *,
        any_user: bool = True,
    ) -> float:
        """Settled spend plus open reservations in ``[since, until)``, as of this transaction."""
        query, args = _spent_query(scope, since, until, user, any_user=any_user)
        return float(self._conn.execute(query, args).fetchone()[0])

    def totals(
        self,
        scope: str,
        since: float,
        until: float,
        user: str | None = None,
        *,
        any_user: bool = True,
        stale_before: float = float("-inf"),
    ) -> SpendTotals:
        """`SpendLedger.totals`, as of this transaction."""
        query, args = _totals_query(scope, since, until, user, any_user, stale_before)
        return _totals(self._conn.execute(query, args).fetchone())

    def totals_many(
        self,
        scope: str,
        user: str | None,
        checks: Sequence[WindowCheck],
        stale_before: float = float("-inf"),
    ) -> list[SpendTotals]:
        """`SpendLedger.totals_many`, as of this transaction."""
        return [
            self.totals(
                scope, c.since, c.until, user, any_user=not c.per_user, stale_before=stale_before
            )
            for c in checks
        ]

    def resize(self, reservations: Sequence[tuple[int, float]]) -> None:
        """Set open reservations (row id, USD) to new amounts; settled ones are left alone."""
        self._conn.executemany(
            "UPDATE spend SET usd = ? WHERE id = ? AND state = 'reserved'",
            [(usd, rid) for rid, usd in reservations],
        )

    def reserve(self, scope: str, user: str | None, usd: float, *, at: float) -> int:
        """Reserve ``usd`` at time ``at``; returns the reservation's row id."""
        cursor = self._conn.execute(
            "INSERT INTO spend (scope, user, at, usd, state) VALUES (?, ?, ?, ?, 'reserved')",
            (scope, user or "", at, usd),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid


def _spent_query(
    scope: str, since: float, until: float, user: str | None, *, any_user: bool
) -> tuple[str, tuple[Any, ...]]:
    query = (
        "SELECT COALESCE(SUM(usd), 0) FROM spend WHERE scope = ? AND at >= ? AND at < ? "
        "AND state != 'released'"
    )
    args: tuple[Any, ...] = (scope, since, until)
    if not any_user:
        query, args = query + " AND user = ?", (*args, user or "")
    return query, args


def _totals_query(
    scope: str,
    since: float,
    until: float,
    user: str | None,
    any_user: bool,
    stale_before: float,
) -> tuple[str, tuple[Any, ...]]:
    in_flight = "state = 'reserved' AND at >= ?"
    query = (
        f"SELECT COALESCE(SUM(CASE WHEN {in_flight} THEN 0 ELSE usd END), 0), "
        f"COALESCE(SUM(CASE WHEN {in_flight} THEN usd ELSE 0 END), 0), "
        f"COUNT(CASE WHEN {in_flight} THEN 1 END) "
        "FROM spend WHERE scope = ? AND at >= ? AND at < ? AND state != 'released'"
    )
    args: tuple[Any, ...] = (stale_before, stale_before, stale_before, scope, since, until)
    if not any_user:
        query, args = query + " AND user = ?", (*args, user or "")
    return query, args


def _totals(row: tuple[Any, ...]) -> SpendTotals:
    return SpendTotals(float(row[0]), float(row[1]), int(row[2]))
