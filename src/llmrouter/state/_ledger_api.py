"""What every spend ledger offers budgets: `BaseLedger`, `WindowCheck`, `SpendTotals`.

A budget never reads spend and then writes a reservation in two steps another
process could slip between: `BaseLedger.reserve_within` checks every limit and
reserves in one atomic step (a SQLite ``BEGIN IMMEDIATE`` transaction, or one
Redis Lua script), and answers with fresh totals when the amount no longer fits.
`llmrouter.cost._budget.BudgetGuard` then decides again on those totals.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

__all__ = ["PERIODS", "BaseLedger", "SpendTotals", "WindowCheck", "calendar_window", "fits"]

Period = Literal["hour", "day", "month"]
PERIODS: tuple[Period, ...] = ("hour", "day", "month")


def calendar_window(per: Period, at: float) -> tuple[float, float]:
    """The (start, end) unix times of the UTC calendar hour, day or month holding ``at``.

    Examples:
        >>> calendar_window("day", 86_400 * 3 + 5)
        (259200.0, 345600.0)
    """
    when = datetime.fromtimestamp(at, tz=timezone.utc)
    if per == "hour":
        start = when.replace(minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 3600.0
    start = when.replace(hour=0, minute=0, second=0, microsecond=0)
    if per == "day":
        return start.timestamp(), start.timestamp() + 86400.0
    start = start.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start.timestamp(), end.timestamp()


@dataclass(frozen=True)
class SpendTotals:
    """Spend in a window, split into what calls cost and what calls in flight hold."""

    settled_usd: float
    """Actual cost of finished calls, plus the estimates of stale reservations."""
    reserved_usd: float
    """Estimates reserved by calls still in flight."""
    open_reservations: int
    """How many calls are in flight."""

    @property
    def committed_usd(self) -> float:
        """Settled plus reserved: what a new call's estimate is added to."""
        return self.settled_usd + self.reserved_usd


@dataclass(frozen=True)
class WindowCheck:
    """One budget's window, and the most it may hold once a reservation is added."""

    since: float
    until: float
    per_user: bool = False
    """Count only the calling user's spend (a per-user budget)."""
    limit_usd: float = math.inf
    """`BaseLedger.reserve_within` refuses when committed + amount exceeds this."""


class BaseLedger(ABC):
    """Spend per (scope, user) over time, shared by every router that names the scope.

    Rows move ``reserved`` -> ``settled`` (the actual cost) or ``released`` (the
    call spent nothing). A reservation older than ``stale_before`` belongs to a
    call whose process died: totals count it as settled at its estimate.
    """

    remote: bool = False
    """Each call is a network round trip (Redis): a budget then admits a request on
    the totals it last saw, when they leave room for every candidate, instead of
    reading them again first (see `llmrouter.cost._budget.BudgetGuard`)."""

    @abstractmethod
    def totals_many(
        self,
        scope: str,
        user: str | None,
        checks: Sequence[WindowCheck],
        *,
        stale_before: float = -math.inf,
    ) -> list[SpendTotals]:
        """Totals of each window in ``checks`` (limits are ignored here)."""

    @abstractmethod
    def reserve_within(
        self,
        scope: str,
        user: str | None,
        usd: float,
        *,
        at: float,
        checks: Sequence[WindowCheck],
        stale_before: float = -math.inf,
    ) -> int | list[SpendTotals]:
        """Atomically: if ``usd`` fits every check's limit, reserve it and return the
        reservation id; else reserve nothing and return the fresh totals of ``checks``."""

    @abstractmethod
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
        in the same step, set other open reservations (id, USD) to new amounts."""

    @abstractmethod
    def release(self, reservation: int, *, scope: str = "") -> None:
        """Drop ``scope``'s reservation: the call spent nothing (every attempt failed)."""

    @abstractmethod
    def resize(self, reservations: Sequence[tuple[int, float]], *, scope: str = "") -> None:
        """Set ``scope``'s open reservations (id, USD) to new amounts; settled ones stay."""

    @abstractmethod
    def rows(self, scope: str | None = None) -> list[dict[str, Any]]:
        """Every row (``id, scope, user, at, usd, state, model``), oldest first."""

    def close(self) -> None:  # noqa: B027 -- optional hook; most ledgers hold connections
        """Release connections (the ledger may not be used afterwards)."""

    def spent(
        self,
        scope: str,
        since: float,
        until: float,
        user: str | None = None,
        *,
        any_user: bool = True,
    ) -> float:
        """Settled spend plus open reservations in ``[since, until)``."""
        check = WindowCheck(since, until, per_user=not any_user)
        return self.totals_many(scope, user, [check])[0].committed_usd

    def totals(
        self,
        scope: str,
        since: float,
        until: float,
        user: str | None = None,
        *,
        any_user: bool = True,
        stale_before: float = -math.inf,
    ) -> SpendTotals:
        """Settled spend and open reservations in ``[since, until)``, apart.

        Reservations made before ``stale_before`` count as settled (at their estimate).
        """
        check = WindowCheck(since, until, per_user=not any_user)
        return self.totals_many(scope, user, [check], stale_before=stale_before)[0]


def fits(totals: Sequence[SpendTotals], checks: Sequence[WindowCheck], usd: float) -> bool:
    """True if ``usd`` more fits every check's limit (a free amount always fits)."""
    return usd <= 0 or all(
        t.committed_usd + usd <= c.limit_usd for t, c in zip(totals, checks, strict=True)
    )
