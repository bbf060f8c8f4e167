"""Spend limits: `Budget` (how much, over which window, what then) and `BudgetGuard`.

A windowed budget (``per="hour" | "day" | "month"``) is checked against spend
persisted in a ledger (`SpendLedger` in SQLite, or Redis through ``state=``), so a
restart does not reset it and several processes or machines share one limit.
`BudgetGuard` admits a request by checking and reserving its estimate in one
atomic ledger step, then settles the reservation to the actual cost or releases
it. A request is refused only when settled spend plus the reservations of calls
in flight plus its own estimate exceed the limit, so concurrent calls cannot spend
more than the limit unless a call costs more than its reservation (see docs/cost.md,
"How far over can spend go").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmrouter.errors import BudgetExceededError, ConfigurationError
from llmrouter.spec import explain_validation_error
from llmrouter.state._ledger_api import BaseLedger, SpendTotals, WindowCheck, calendar_window

__all__ = [
    "Admission",
    "Budget",
    "BudgetExceededError",
    "BudgetGuard",
    "BudgetStatus",
]

Period = Literal["request", "hour", "day", "month"]


class Budget(BaseModel):
    """A spend limit in USD per request or per calendar window (UTC).

    ``on_exceeded="refuse"`` raises `BudgetExceededError` when the model the
    router would pick does not fit the remaining budget; ``"downgrade"`` keeps
    only the models whose estimate fits (free models always fit), and raises
    only when none does. ``key="user"`` gives every user (the ``user=`` call
    keyword, or ``config["metadata"]["user"]``) a budget of their own.

    Examples:
        >>> from llmrouter.cost._budget import Budget
        >>> daily = Budget(usd=5.0, per="day", on_exceeded="downgrade")
        >>> daily.describe()
        '$5.00 per day'
        >>> Budget(usd=0.5, per="hour", key="user").describe(user="alice")
        "$0.50 per hour for user 'alice'"
        >>> start, end = daily.window(now=86_400 * 3 + 5)
        >>> (start, end)
        (259200.0, 345600.0)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    usd: float = Field(ge=0)
    """The limit, in US dollars."""
    per: Period = "day"
    """The window: each request alone, or a calendar hour, day or month in UTC."""
    on_exceeded: Literal["refuse", "downgrade"] = "refuse"
    """``refuse``: raise `BudgetExceededError`; ``downgrade``: use only models that fit."""
    key: Literal["user"] | None = None
    """``"user"``: a separate budget per user key; ``None``: one budget for all calls."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigurationError(explain_validation_error(exc, "Budget")) from exc

    @property
    def windowed(self) -> bool:
        """True if spend accumulates over a time window (persisted in the ledger)."""
        return self.per != "request"

    def window(self, now: float | None = None) -> tuple[float, float]:
        """The (start, end) unix times of the window holding ``now``.

        A ``per="request"`` budget has no window: it returns ``(now, now)``.
        """
        now = time.time() if now is None else now
        if self.per == "request":
            return now, now
        return calendar_window(self.per, now)

    def describe(self, user: str | None = None) -> str:
        """A short human description, e.g. ``"$5.00 per day for user 'alice'"``."""
        text = f"${self.usd:.2f} per {self.per}"
        if self.key == "user":
            text += f" for user {user!r}" if user else " for calls without a user"
        return text


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands in its current window: spent, and reserved by calls in flight."""

    budget: Budget
    user: str | None
    spent_usd: float
    """Settled spend in the window: actual costs of finished calls (0 for per-request
    budgets). A reservation left open longer than the reservation timeout (its process
    died) counts here at its estimate."""
    window_start: float
    window_end: float
    reserved_usd: float = 0.0
    """Estimates reserved by calls in flight (settled to their actual cost when they end)."""
    open_reservations: int = 0
    """Number of calls in flight holding a reservation."""

    @property
    def committed_usd(self) -> float:
        """Spent plus reserved: what a new request's estimate must fit on top of."""
        return self.spent_usd + self.reserved_usd

    @property
    def remaining_usd(self) -> float:
        """What a new request may still reserve (negative if calls cost more than reserved)."""
        return self.budget.usd - self.spent_usd - self.reserved_usd


@dataclass
class Admission:
    """What the budgets allow for one request."""

    allowed: list[str]
    """Candidate names that fit every budget, in the order given."""
    excluded: dict[str, str] = field(default_factory=dict)
    """Candidates that do not fit, with the budget they exceed."""
    reserved_usd: float = 0.0
    """Amount reserved: the estimate of the dearest allowed candidate (any may answer)."""
    reservation: int | None = None
    """Ledger row of the reservation (``None`` when nothing windowed was reserved)."""
    statuses: list[BudgetStatus] = field(default_factory=list)


class BudgetGuard:
    """Applies a router's budgets: admit (check and reserve), then settle or release.

    ``reservation_timeout`` (seconds): an open reservation older than this belongs to
    a call whose process died; it is reported as spent at its estimate, not in flight.

    Examples:
        >>> from llmrouter.cost._budget import Budget, BudgetGuard
        >>> from llmrouter.state._sqlite_ledger import SpendLedger
        >>> guard = BudgetGuard([Budget(usd=0.05, per="day", on_exceeded="downgrade")],
        ...                     SpendLedger(":memory:"), scope="demo")
        >>> a = guard.admit([("big", 0.08), ("small", 0.01), ("local", 0.0)])
        >>> a.allowed, a.reserved_usd
        (['small', 'local'], 0.01)
        >>> guard.settle(a.reservation, 0.008, model="small")
        >>> round(guard.status()[0].spent_usd, 6)
        0.008
    """

    def __init__(
        self,
        budgets: Sequence[Budget],
        ledger: BaseLedger | None,
        scope: str,
        *,
        reservation_timeout: float = 900.0,
    ) -> None:
        self.budgets = list(budgets)
        self.scope = scope
        self.reservation_timeout = reservation_timeout
        if ledger is None and any(b.windowed for b in self.budgets):
            raise ConfigurationError("a windowed budget needs a SpendLedger to persist spend")
        self.ledger = ledger
        self._seen: dict[tuple[str | None, tuple[float, ...]], tuple[float, list[SpendTotals]]] = {}

    @property
    def windowed(self) -> bool:
        """True if any budget is persisted over a window (admission does I/O)."""
        return any(b.windowed for b in self.budgets)

    def admit(
        self,
        candidates: Sequence[tuple[str, float]],
        user: str | None = None,
        now: float | None = None,
    ) -> Admission:
        """Keep the candidates (name, estimated USD) that fit; reserve for the dearest kept.

        Raises:
            BudgetExceededError: a ``refuse`` budget cannot take the first candidate,
                or no candidate fits at all.
        """
        now = time.time() if now is None else now
        if not self.windowed:
            return self._decide(candidates, self._statuses(None, user, now))
        assert self.ledger is not None
        checks, stale = self._checks(user, now), now - self.reservation_timeout
        seen = (user, tuple(c.since for c in checks))
        totals = self._recent(seen, candidates, user, now)
        if totals is None:
            totals = self.ledger.totals_many(self.scope, user, checks, stale_before=stale)
        for _ in range(_MAX_RACES):
            admission = self._decide(candidates, self._statuses(totals, user, now))
            if admission.reserved_usd <= 0:
                return admission
            got = self.ledger.reserve_within(
                self.scope, user, admission.reserved_usd, at=now, checks=checks, stale_before=stale
            )
            if not isinstance(got, list):
                admission.reservation = got
                self._remember(seen, totals, admission.reserved_usd, now)
                return admission
            totals = got  # others reserved since we read: decide again on their totals
        # Still racing after that many rounds: refuse rather than overspend.
        statuses = self._statuses(totals, user, now)
        raise BudgetExceededError(statuses[0], admission.reserved_usd, admission.allowed[0])

    def settle(
        self,
        reservation: int | None,
        usd: float,
        *,
        model: str | None = None,
        user: str | None = None,
        resize: Sequence[tuple[int, float]] = (),
    ) -> None:
        """Record the actual cost of an admitted request (and, atomically with it, raise
        open reservations (row id, USD) of calls of a model seen to cost more)."""
        if self.ledger is not None and self.windowed:
            self.ledger.settle(
                reservation, usd, model=model, scope=self.scope, user=user, resize=resize
            )

    def release(self, reservation: int | None) -> None:
        """Free the reservation of a request that spent nothing."""
        if self.ledger is not None and reservation is not None:
            self.ledger.release(reservation, scope=self.scope)

    def resize(self, reservations: Sequence[tuple[int, float]]) -> None:
        """Raise open reservations (row id, USD): their model was seen to cost more."""
        if self.ledger is not None and reservations:
            self.ledger.resize(reservations, scope=self.scope)

    def status(self, user: str | None = None, now: float | None = None) -> list[BudgetStatus]:
        """Spend so far against each budget (for ``user`` where a budget is per user)."""
        now = time.time() if now is None else now
        if self.ledger is None or not self.windowed:
            return self._statuses(None, user, now)
        checks, stale = self._checks(user, now), now - self.reservation_timeout
        totals = self.ledger.totals_many(self.scope, user, checks, stale_before=stale)
        return self._statuses(totals, user, now)

    # ------------------------------------------------------------------ internals

    def _recent(
        self,
        seen: tuple[str | None, tuple[float, ...]],
        candidates: Sequence[tuple[str, float]],
        user: str | None,
        now: float,
    ) -> list[SpendTotals] | None:
        """On a remote ledger, the totals this guard saw at its last admission in the
        same windows, at most `_RECENT_S` ago -- if every candidate fits them.

        Deciding on them needs no read: the reservation itself checks every limit
        atomically, and if the dearest candidate's estimate fits the fresh totals,
        every candidate does, which is what was decided. When it does not fit, the
        reservation answers with the fresh totals and the guard decides again. So
        only a decision that could differ (a candidate left out) reads first.
        """
        known = self._seen.get(seen)
        if known is None or now - known[0] > _RECENT_S:
            return None
        statuses = self._statuses(known[1], user, now)
        if any(_exceeded(statuses, estimate) for _, estimate in candidates):
            return None
        return known[1]

    def _remember(
        self,
        seen: tuple[str | None, tuple[float, ...]],
        totals: list[SpendTotals],
        usd: float,
        now: float,
    ) -> None:
        """Keep ``totals`` plus this reservation for the next admission (remote ledgers)."""
        if self.ledger is None or not self.ledger.remote:
            return
        mine = [
            replace(t, reserved_usd=t.reserved_usd + usd, open_reservations=t.open_reservations + 1)
            for t in totals
        ]
        if len(self._seen) >= 1024 and seen not in self._seen:  # per-user budgets: bounded
            # another thread may be at it too: then one entry fewer goes, no harm
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                self._seen.pop(next(iter(self._seen)))
        self._seen[seen] = (now, mine)

    def _checks(self, user: str | None, now: float) -> list[WindowCheck]:
        """The windowed budgets' windows, each with its limit (plus float slack)."""
        return [
            WindowCheck(*b.window(now), per_user=b.key == "user", limit_usd=b.usd + _EPSILON_USD)
            for b in self.budgets
            if b.windowed
        ]

    def _statuses(
        self, totals: list[SpendTotals] | None, user: str | None, now: float
    ) -> list[BudgetStatus]:
        """Each budget's status; ``totals`` are the windowed budgets' (in order), if read."""
        statuses = []
        windowed = iter(totals or ())
        for budget in self.budgets:
            start, end = budget.window(now)
            who = user if budget.key == "user" else None
            if not (budget.windowed and totals is not None):
                statuses.append(BudgetStatus(budget, who, 0.0, start, end))
                continue
            t = next(windowed)
            statuses.append(
                BudgetStatus(
                    budget, who, t.settled_usd, start, end, t.reserved_usd, t.open_reservations
                )
            )
        return statuses

    def _decide(
        self, candidates: Sequence[tuple[str, float]], statuses: list[BudgetStatus]
    ) -> Admission:
        """Which candidates fit, and how much to reserve (raises if none may answer)."""
        admission = Admission(allowed=[], statuses=statuses)
        if not candidates:
            return admission
        for index, (name, estimate) in enumerate(candidates):
            over = _exceeded(statuses, estimate)
            if not over:
                admission.allowed.append(name)
                continue
            refusing = [s for s in over if s.budget.on_exceeded == "refuse"]
            if index == 0 and refusing:
                raise BudgetExceededError(refusing[0], estimate, name)
            admission.excluded[name] = (
                f"estimated ${estimate:.6f} exceeds the remaining "
                f"${max(over[0].remaining_usd, 0.0):.6f} of {over[0].budget.describe(over[0].user)}"
            )
        if not admission.allowed:
            name, estimate = min(candidates, key=lambda c: c[1])
            raise BudgetExceededError(_exceeded(statuses, estimate)[0], estimate, name)
        estimates = dict(candidates)
        admission.reserved_usd = max(estimates[name] for name in admission.allowed)
        return admission


_RECENT_S = 1.0
"""How long a remote ledger's totals, as an admission saw them, stand in for a read
(they also show in the route record's budget numbers)."""

_MAX_RACES = 50
"""Rounds of decide-then-reserve a request may lose to other processes before it is
refused (each lost round means others reserved in between: the budget is filling)."""

_EPSILON_USD = 1e-12
"""Float sums of prices are inexact: an estimate that fits to a billionth of a cent fits."""


def _exceeded(statuses: list[BudgetStatus], estimate: float) -> list[BudgetStatus]:
    """The budgets that ``estimate`` does not fit: spent + reserved + estimate > limit
    (a free call fits every budget)."""
    if estimate <= 0:
        return []
    return [
        s
        for s in statuses
        if estimate > (s.remaining_usd if s.budget.windowed else s.budget.usd) + _EPSILON_USD
    ]
