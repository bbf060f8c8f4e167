"""Rendering of an `ExperimentReport`: rich tables, plain text and a matplotlib figure.

`report_table` lays the report out as rich renderables (variants, the tests
against the control, the experiment's events), `report_text` prints them as
plain text and `plot_report` draws error rate, latency, feedback and cost per
variant. rich is imported on first use, matplotlib only by `plot_report`
(``pip install 'llmrouter[ab]'``). `ExperimentReport.table`, ``str(report)``
and `ExperimentReport.plot` call these.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrouter.ab._stats import INSTALL_HINT

if TYPE_CHECKING:
    from rich.console import Group

    from llmrouter.ab._report import Comparison, ExperimentReport
    from llmrouter.ab._stats import TestResult
    from llmrouter.ab._store import ExperimentEvent


def report_table(report: ExperimentReport) -> Group:
    """``report`` as rich renderables: variants, comparisons, events."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    title = f"Experiment {report.experiment!r}" + (f" ({report.mode})" if report.mode else "")
    variants = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (
        ("variant", "left"),
        ("share", "right"),
        ("requests", "right"),
        ("error rate [95% CI]", "right"),
        ("p50", "right"),
        ("p95", "right"),
        ("tokens", "right"),
        ("cost/req", "right"),
        ("feedback n", "right"),
        ("feedback [95% CI]", "right"),
    ):
        variants.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in report.variants:
        variants.add_row(
            s.label + (" *" if s.variant == report.control and not s.shadow else ""),
            _pct(s.share, 0),
            str(s.requests),
            _rate(s.error_rate, s.error_rate_ci),
            _ms(s.latency_p50_s),
            _ms(s.latency_p95_s),
            _num(s.mean_tokens, 1),
            _usd(s.mean_cost_usd),
            str(s.feedback_n),
            _mean(s.feedback_mean, s.feedback_ci),
        )
    parts: list[Any] = [variants]
    if report.comparisons:
        tests = Table(
            title=f"vs control {report.control!r}: * p < {report.alpha:g}; n needed per variant "
            f"for feedback d={report.feedback_effect:g} | error rate +{report.error_effect:.0%} "
            f"at power {report.power:g}",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for name in (
            "variant",
            "Δ feedback [CI]",
            "p (Welch t)",
            "Δ error rate [CI]",
            "p (2-prop z)",
            "n needed",
            "verdict",
        ):
            tests.add_column(name, justify="left" if name in ("variant", "verdict") else "right")
        for c in report.comparisons:
            tests.add_row(
                c.label,
                _diff(c.feedback, percent=False),
                _p(c.feedback),
                _diff(c.error_rate, percent=True),
                _p(c.error_rate),
                f"{c.feedback_n_needed} | {c.error_n_needed}",
                _verdict(report, c),
            )
        parts.append(tests)
    for event in report.events:
        parts.append(Text(_event_line(event), style="bold red" if event.kind == "rollback" else ""))
    return Group(*parts)


def _verdict(report: ExperimentReport, c: Comparison) -> str:
    said = []
    if c.feedback is not None and c.feedback.significant:
        said.append("feedback " + ("better" if c.feedback.difference > 0 else "worse"))
    if c.error_rate is not None and c.error_rate.significant:
        said.append("errors " + ("higher" if c.error_rate.difference > 0 else "lower"))
    if said:
        return ", ".join(said)
    have = report.variant(c.variant, shadow=c.shadow).feedback_n
    control = report.variant(report.control).feedback_n
    return f"not significant (n {min(have, control)}/{c.feedback_n_needed})"


def report_text(report: ExperimentReport) -> str:
    """``report`` as plain text (rich's rendering, 160 columns, no colour)."""
    from rich.console import Console

    console = Console(
        record=True, width=160, file=io.StringIO(), color_system=None, force_jupyter=False
    )
    console.print(report_table(report))
    return console.export_text().rstrip()


def plot_report(report: ExperimentReport, path: str | Path) -> Path:
    """Draw error rate, latency, feedback and cost per variant of ``report`` into ``path``.

    Uses matplotlib's Agg backend (no display needed). Returns the path.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is in the ab extra
        raise ImportError(f"ExperimentReport.plot needs matplotlib: {INSTALL_HINT}") from exc
    path = Path(path)
    labels = [s.label for s in report.variants]
    x = list(range(len(labels)))
    fig = Figure(figsize=(11, 7), layout="constrained")  # no pyplot: no GUI, no global state
    (ax_err, ax_lat), (ax_fb, ax_cost) = fig.subplots(2, 2)
    colors = ["#4c72b0" if s.variant == report.control else "#dd8452" for s in report.variants]

    rates = [s.error_rate or 0.0 for s in report.variants]
    ax_err.bar(
        x,
        rates,
        color=colors,
        yerr=_yerr(rates, [s.error_rate_ci for s in report.variants]),
        capsize=4,
    )
    ax_err.set_title("error rate (95% Wilson CI)")
    ax_err.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")

    width = 0.38
    p50 = [(s.latency_p50_s or 0.0) * 1000 for s in report.variants]
    p95 = [(s.latency_p95_s or 0.0) * 1000 for s in report.variants]
    ax_lat.bar([i - width / 2 for i in x], p50, width, label="p50", color=colors)
    ax_lat.bar([i + width / 2 for i in x], p95, width, label="p95", color=colors, alpha=0.5)
    ax_lat.set_title("latency (ms)")
    ax_lat.legend()

    means = [s.feedback_mean or 0.0 for s in report.variants]
    ax_fb.bar(
        x,
        means,
        color=colors,
        yerr=_yerr(means, [s.feedback_ci for s in report.variants]),
        capsize=4,
    )
    ax_fb.set_title("mean feedback (95% CI)")

    costs = [s.mean_cost_usd or 0.0 for s in report.variants]
    ax_cost.bar(x, costs, color=colors)
    ax_cost.set_title("mean cost per request (USD)")

    for ax in (ax_err, ax_lat, ax_fb, ax_cost):
        ax.set_xticks(x, labels)
    fig.suptitle(_headline(report))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _headline(report: ExperimentReport) -> str:
    bits = [f"experiment {report.experiment!r}, control {report.control!r}"]
    for c in report.comparisons:
        if c.feedback is not None and c.feedback.p_value is not None:
            test = c.feedback
            bits.append(f"{c.label}: Δfeedback {test.difference:+.3f} (p={test.p_value:.3g})")
    return " | ".join(bits)


def _yerr(values: list[float], cis: list[tuple[float, float] | None]) -> list[list[float]]:
    low = [v - ci[0] if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    high = [ci[1] - v if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    return [[max(0.0, d) for d in low], [max(0.0, d) for d in high]]


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def _rate(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "")


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _mean(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _diff(test: TestResult | None, *, percent: bool) -> str:
    if test is None:
        return "-"
    fmt = "{:+.1%}" if percent else "{:+.3f}"
    text = fmt.format(test.difference)
    if test.ci is not None:
        text += " [" + fmt.format(test.ci[0]) + ", " + fmt.format(test.ci[1]) + "]"
    return text


def _p(test: TestResult | None) -> str:
    if test is None or test.p_value is None:
        return "-"
    return f"{test.p_value:.3g}" + (" *" if test.significant else "")


def _event_line(event: ExperimentEvent) -> str:
    when = dt.datetime.fromtimestamp(event.created_at, tz=dt.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
    detail = event.detail.get("reason") or ", ".join(f"{k}={v}" for k, v in event.detail.items())
    who = f" {event.variant!r}" if event.variant else ""
    return f"{when}  {event.kind}{who}: {detail}"
