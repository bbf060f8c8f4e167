"""What a router's reports say, read once for ``llmrouter report`` and the playground:
budgets and spend by day (a cost router with budgets), the experiment (an A/B router)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RouterReport:
    """The reportable state of one router; empty parts for routers that have none."""

    budgets: list[Any] = field(default_factory=list)
    """`BudgetStatus` of each budget of a cost router."""
    spend_by_day: dict[str, dict[str, float]] = field(default_factory=dict)
    """Settled USD per day (UTC) per model, from the router's ledger."""
    experiment: Any = None
    """The `ExperimentReport` of an A/B router."""

    @property
    def empty(self) -> bool:
        return not self.budgets and self.experiment is None


def router_report(router: Any, days: int = 7) -> RouterReport:
    """Read ``router``'s budgets, its spend over the last ``days`` days and its experiment."""
    report = RouterReport()
    statuses = getattr(router, "budget_status", None)
    if callable(statuses):
        report.budgets = list(statuses())
    if report.budgets:
        from llmrouter.cost._spend_report import ledger_rows, spend_by_day

        since = dt.datetime.now(tz=dt.timezone.utc).timestamp() - days * 86400
        report.spend_by_day = spend_by_day(ledger_rows(router), since)
    experiment = getattr(router, "report", None)
    if callable(experiment) and hasattr(router, "variants"):  # an ABRouter
        report.experiment = experiment()
    return report
