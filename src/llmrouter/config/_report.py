"""``llmrouter report CONFIG``: what the config's routers spent, and how their experiments stand.

Cost routers with a windowed budget keep every request's spend in their SQLite
ledger; A/B routers keep their records in their store. The report reads both
(nothing is called) and prints them, with plots on request.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from llmrouter._cli_output import make_console
from llmrouter._router_report import RouterReport, router_report
from llmrouter.config._cli import ConfigArg, RouterOpt, _load
from llmrouter.cost._spend_report import plot_spend


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
    console = make_console()
    shown = 0
    for name, each in chosen.items():
        report = router_report(each, days)
        if report.budgets:
            _cost_report(name, report, days, plot, console)
            shown += 1
        if report.experiment is not None:
            _ab_report(name, report.experiment, plot, console)
            shown += 1
    if not shown:
        console.print(
            "nothing to report: no cost router with a windowed budget and no A/B router "
            f"among {', '.join(chosen)}"
        )


def _cost_report(
    name: str, report: RouterReport, days: int, plot: Path | None, console: Console
) -> None:
    table = Table(title=f"{name}: budgets")
    for column in ("budget", "spent USD", "reserved USD", "left USD", "window ends (UTC)"):
        table.add_column(column)
    for status in report.budgets:
        ends = dt.datetime.fromtimestamp(status.window_end, tz=dt.timezone.utc)
        table.add_row(
            status.budget.describe(status.user),
            f"{status.spent_usd:.6f}",
            f"{status.reserved_usd:.6f}",
            f"{status.remaining_usd:.6f}",
            f"{ends:%Y-%m-%d %H:%M}" if status.budget.windowed else "-",
        )
    console.print(table)
    by_day = report.spend_by_day
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


def _ab_report(name: str, report: Any, plot: Path | None, console: Console) -> None:
    console.print(f"[bold]{name}[/bold]: experiment {report.experiment}")
    console.print(str(report), highlight=False, markup=False)
    if plot is not None:
        plot.mkdir(parents=True, exist_ok=True)
        console.print(f"wrote {report.plot(plot / f'{name}-ab.png')}")
