"""``llmrouter report CONFIG``: what the config's routers spent, and how their experiments stand.

Cost routers with a windowed budget keep every request's spend in their SQLite
ledger; A/B routers keep their records in their store. The report reads both
(nothing is called) and prints them, with plots on request.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmrouter.config._cli import ConfigArg, RouterOpt, _console, _load
from llmrouter.core._router import BaseRouter
from llmrouter.cost._spend_report import ledger_rows, plot_spend, spend_by_day


def report_command(
    config: ConfigArg,
    router: RouterOpt = None,
    days: Annotated[int, typer.Option(min=1, help="How many days of spend to show.")] = 7,
    plot: Annotated[
        Path | None, typer.Option(help="Folder to write the plots to (PNG, needs matplotlib).")
    ] = None,
) -> None:
    """Cost (spend by model and day, budgets left) and A/B reports of a config's routers."""
    built = _load(config)
    chosen = {router: built.router(router)} if router else built.routers
    console = _console()
    shown = 0
    for name, each in chosen.items():
        if _cost_report(name, each, days, plot, console):
            shown += 1
        if _ab_report(name, each, plot, console):
            shown += 1
    if not shown:
        console.print(
            "nothing to report: no cost router with a windowed budget and no A/B router "
            f"among {', '.join(chosen)}"
        )


def _cost_report(
    name: str, router: BaseRouter, days: int, plot: Path | None, console: Console
) -> bool:
    statuses = getattr(router, "budget_status", None)
    if not callable(statuses) or not statuses():
        return False
    table = Table(title=f"{name}: budgets")
    for column in ("budget", "spent USD", "reserved USD", "left USD", "window ends (UTC)"):
        table.add_column(column)
    for status in statuses():
        ends = dt.datetime.fromtimestamp(status.window_end, tz=dt.timezone.utc)
        table.add_row(
            status.budget.describe(status.user),
            f"{status.spent_usd:.6f}",
            f"{status.reserved_usd:.6f}",
            f"{status.remaining_usd:.6f}",
            f"{ends:%Y-%m-%d %H:%M}" if status.budget.windowed else "-",
        )
    console.print(table)
    rows = ledger_rows(router)
    since = dt.datetime.now(tz=dt.timezone.utc).timestamp() - days * 86400
    by_day = spend_by_day(rows, since)
    models = sorted({m for spent in by_day.values() for m in spent})
    spend = Table(title=f"{name}: spend by day and model, last {days} days (USD)")
    spend.add_column("day")
    for model in models:
        spend.add_column(model, justify="right")
    spend.add_column("total", justify="right")
    for day, spent in by_day.items():
        cells = [f"{spent.get(m, 0.0):.6f}" for m in models]
        spend.add_row(day, *cells, f"{sum(spent.values()):.6f}")
    console.print(spend if by_day else f"{name}: no settled spend in the last {days} days")
    if plot is not None and by_day:
        plot.mkdir(parents=True, exist_ok=True)
        path = plot / f"{name}-spend.png"
        path.write_bytes(plot_spend(name, by_day))
        console.print(f"wrote {path}")
    return True


def _ab_report(name: str, router: BaseRouter, plot: Path | None, console: Console) -> bool:
    report_of = getattr(router, "report", None)
    if not callable(report_of) or not hasattr(router, "variants"):
        return False
    report = report_of()
    console.print(f"[bold]{name}[/bold]: experiment {getattr(router, 'experiment', '')}")
    console.print(str(report), highlight=False, markup=False)
    if plot is not None:
        plot.mkdir(parents=True, exist_ok=True)
        console.print(f"wrote {report.plot(plot / f'{name}-ab.png')}")
    return True
