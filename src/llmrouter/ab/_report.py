"""The report of an A/B experiment: per-variant metrics and tests against the control.

Per variant (`VariantStats`): requests, error rate (95% Wilson interval),
latency p50/p95, mean tokens and cost, mean feedback (95% t interval). Each
candidate against the control (`Comparison`): Welch's t-test on feedback, a
two-proportion z-test on error rate, and the sample size per variant needed to
detect a given effect (alpha 0.05, power 0.8 by default). `build_report`
computes an `ExperimentReport` from records, feedback and events,
`report_from_store` from what an `ExperimentStore` holds. The statistics live in
`llmrouter.ab._stats`, the tables and plots in `llmrouter.ab._render`.
"""

from __future__ import annotations

import importlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrouter.ab._render import plot_report, report_table, report_text
from llmrouter.ab._stats import (
    TestResult,
    check_level,
    mean_ci,
    percentile,
    sample_size_means,
    sample_size_proportions,
    two_proportion_test,
    welch_test,
    wilson_ci,
)
from llmrouter.ab._store import ExperimentEvent, ExperimentRecord, ExperimentStore, Feedback
from llmrouter.errors import ConfigurationError

if TYPE_CHECKING:
    from rich.console import Group


@dataclass
class VariantStats:
    """What one variant (or one variant's shadow runs) did."""

    variant: str
    shadow: bool
    """True for a candidate's shadow runs (it never answered users)."""
    share: float | None
    """Current share of traffic (live variants) or of mirrored requests (shadows)."""
    requests: int
    errors: int
    """Requests where this variant failed (counted even if the control then answered)."""
    fallbacks: int
    """Failed requests that another model answered."""
    error_rate: float | None
    error_rate_ci: tuple[float, float] | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    mean_tokens: float | None
    mean_cost_usd: float | None
    total_cost_usd: float
    feedback_n: int
    """Requests with feedback (scores of one request are averaged first)."""
    feedback_mean: float | None
    feedback_ci: tuple[float, float] | None

    @property
    def label(self) -> str:
        """The variant name, with ``(shadow)`` for shadow runs."""
        return f"{self.variant} (shadow)" if self.shadow else self.variant


@dataclass
class Comparison:
    """One candidate against the control."""

    variant: str
    shadow: bool
    control: str
    feedback: TestResult | None
    """Welch's t-test on per-request feedback (``None`` with < 2 scores per side)."""
    error_rate: TestResult | None
    """Two-proportion z-test on error rate (``None`` if a side has no requests)."""
    feedback_n_needed: int
    """Requests with feedback needed per variant to detect ``feedback_effect``."""
    error_n_needed: int
    """Requests needed per variant to detect ``error_effect`` above the control's rate."""

    @property
    def label(self) -> str:
        return f"{self.variant} (shadow)" if self.shadow else self.variant


@dataclass
class ExperimentReport:
    """Per-variant metrics and significance tests of one experiment.

    Render it with rich (``rich.print(report)``) or ``print(report)``; get data
    with `to_dict` / `to_dataframe`; draw it with `plot`.

    Examples:
        >>> from llmrouter.ab._report import build_report
        >>> from llmrouter.ab._store import ExperimentRecord
        >>> records = [ExperimentRecord(request_id=str(i), experiment="e",
        ...                             variant="a" if i % 2 else "b", latency_s=0.1)
        ...            for i in range(10)]
        >>> report = build_report("e", records, control="a")
        >>> [(v.variant, v.requests, v.error_rate) for v in report.variants]
        [('a', 5, 0.0), ('b', 5, 0.0)]
    """

    experiment: str
    control: str
    mode: str | None
    variants: list[VariantStats]
    comparisons: list[Comparison]
    events: list[ExperimentEvent] = field(default_factory=list)
    alpha: float = 0.05
    power: float = 0.8
    feedback_effect: float = 0.2
    """Smallest feedback difference worth detecting, as Cohen's d."""
    error_effect: float = 0.05
    """Smallest error-rate increase worth detecting (absolute, over the control's rate)."""

    def variant(self, name: str, *, shadow: bool = False) -> VariantStats:
        """The stats of variant ``name`` (or of its shadow runs)."""
        for stats in self.variants:
            if stats.variant == name and stats.shadow == shadow:
                return stats
        kind = "shadow runs" if shadow else "requests"
        raise KeyError(f"the report has no {kind} of variant {name!r}")

    def comparison(self, name: str, *, shadow: bool = False) -> Comparison:
        """The test results of variant ``name`` against the control."""
        for comparison in self.comparisons:
            if comparison.variant == name and comparison.shadow == shadow:
                return comparison
        raise KeyError(f"the report has no comparison for variant {name!r}")

    # --------------------------------------------------------------- data

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable)."""
        return asdict(self)

    def to_dataframe(self) -> Any:
        """One row per variant, with its comparison against the control (needs pandas)."""
        try:
            pd = importlib.import_module("pandas")
        except ImportError as exc:
            raise ImportError(
                "ExperimentReport.to_dataframe needs pandas (pip install pandas); "
                "to_dict() gives the same data without it"
            ) from exc
        rows = []
        for stats in self.variants:
            row: dict[str, Any] = asdict(stats)
            comparison = next(
                (
                    c
                    for c in self.comparisons
                    if c.variant == stats.variant and c.shadow == stats.shadow
                ),
                None,
            )
            if comparison is not None:
                for name in ("feedback", "error_rate"):
                    test = getattr(comparison, name)
                    row[f"{name}_difference"] = test.difference if test else None
                    row[f"{name}_p_value"] = test.p_value if test else None
                row["feedback_n_needed"] = comparison.feedback_n_needed
                row["error_n_needed"] = comparison.error_n_needed
            rows.append(row)
        return pd.DataFrame(rows).set_index("variant")

    # ------------------------------------------------------------ rendering

    def table(self) -> Group:
        """The report as rich renderables: variants, comparisons, events."""
        return report_table(self)

    def __rich__(self) -> Group:
        return self.table()

    def __str__(self) -> str:
        return report_text(self)

    def plot(self, path: str | Path) -> Path:
        """Draw error rate, latency, feedback and cost per variant into ``path`` (PNG, SVG, ...).

        Uses matplotlib's Agg backend (no display needed). Returns the path.
        """
        return plot_report(self, path)


# ----------------------------------------------------------------- building


def build_report(
    experiment: str,
    records: Iterable[ExperimentRecord],
    feedback: Iterable[Feedback] = (),
    events: Iterable[ExperimentEvent] = (),
    *,
    control: str | None = None,
    variants: Sequence[str] | None = None,
    shares: Mapping[str, float] | None = None,
    shadow_rate: float | None = None,
    mode: str | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    feedback_effect: float = 0.2,
    error_effect: float = 0.05,
) -> ExperimentReport:
    """Compute the report of ``experiment`` from its records, feedback and events.

    ``control`` defaults to the first variant (of ``variants``, else of the
    records) and comes first; ``variants`` fixes the order of the others;
    ``shares`` and ``shadow_rate`` fill the share column. Scores given to one
    request are averaged first, so each request counts once in the feedback
    statistics.

    Raises:
        ConfigurationError: if ``alpha`` or ``power`` is not strictly between 0 and 1,
            ``feedback_effect`` is zero or not finite, or ``error_effect`` is not in (0, 1].
    """
    alpha, power = check_level("alpha", alpha), check_level("power", power)
    if (
        isinstance(feedback_effect, bool)
        or not isinstance(feedback_effect, (int, float))
        or feedback_effect == 0
        or not math.isfinite(feedback_effect)
    ):
        raise ConfigurationError(
            f"feedback_effect must be a non-zero finite number (Cohen's d to detect), got "
            f"{feedback_effect!r}; e.g. feedback_effect=0.2"
        )
    if (
        isinstance(error_effect, bool)
        or not isinstance(error_effect, (int, float))
        or not 0 < error_effect <= 1
    ):
        raise ConfigurationError(
            f"error_effect must be a number in (0, 1] (the error-rate increase to detect), "
            f"got {error_effect!r}; e.g. error_effect=0.05"
        )
    records = list(records)
    order = list(variants or [])
    for record in records:
        if record.variant not in order:
            order.append(record.variant)
    if control is None:
        if not order:
            raise ValueError(f"experiment {experiment!r} has no records and no variants")
        control = order[0]
    order = [control, *(name for name in order if name != control)]  # the control first

    scores: dict[str, list[float]] = defaultdict(list)
    for item in feedback:
        scores[item.request_id].append(item.score)
    groups: dict[tuple[str, bool], list[ExperimentRecord]] = defaultdict(list)
    for record in records:
        groups[(record.variant, record.shadow)].append(record)
    shadowed = [name for name in order if (name, True) in groups]
    # a candidate that only ran in shadow has no live row (it answered nobody)
    keys = [(n, False) for n in order if n == control or (n, False) in groups or n not in shadowed]
    keys += [(name, True) for name in shadowed]

    stats_by_key: dict[tuple[str, bool], VariantStats] = {}
    per_request: dict[tuple[str, bool], list[float]] = {}
    for key in keys:
        rows = groups.get(key, [])
        values = [
            sum(scores[r.request_id]) / len(scores[r.request_id])
            for r in rows
            if r.request_id in scores
        ]
        per_request[key] = values
        share = shadow_rate if key[1] else (shares or {}).get(key[0])
        stats_by_key[key] = _variant_stats(key[0], key[1], share, rows, values)

    comparisons = []
    base_key = (control, False)
    base = stats_by_key[base_key]
    p_control = base.error_rate or 0.0
    error_n = sample_size_proportions(p_control, min(1.0, p_control + error_effect), alpha, power)
    feedback_n = sample_size_means(feedback_effect, alpha, power)
    for key in keys:
        if key == base_key:
            continue
        other = stats_by_key[key]
        fb = per_request[key]
        comparisons.append(
            Comparison(
                variant=key[0],
                shadow=key[1],
                control=control,
                feedback=(
                    welch_test(per_request[base_key], fb, alpha)
                    if len(fb) >= 2 and len(per_request[base_key]) >= 2
                    else None
                ),
                error_rate=(
                    two_proportion_test(
                        base.errors, base.requests, other.errors, other.requests, alpha
                    )
                    if base.requests and other.requests
                    else None
                ),
                feedback_n_needed=feedback_n,
                error_n_needed=error_n,
            )
        )
    return ExperimentReport(
        experiment=experiment,
        control=control,
        mode=mode,
        variants=[stats_by_key[k] for k in keys],
        comparisons=comparisons,
        events=list(events),
        alpha=alpha,
        power=power,
        feedback_effect=feedback_effect,
        error_effect=error_effect,
    )


def _variant_stats(
    name: str,
    shadow: bool,
    share: float | None,
    rows: list[ExperimentRecord],
    feedback: list[float],
) -> VariantStats:
    n = len(rows)
    errors = sum(1 for r in rows if not r.ok)
    latencies = [r.latency_s for r in rows if r.latency_s is not None]
    tokens = [r.total_tokens for r in rows if r.total_tokens is not None]
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    return VariantStats(
        variant=name,
        shadow=shadow,
        share=share,
        requests=n,
        errors=errors,
        fallbacks=sum(1 for r in rows if not r.ok and r.model is not None),
        error_rate=errors / n if n else None,
        error_rate_ci=wilson_ci(errors, n),
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        mean_tokens=sum(tokens) / len(tokens) if tokens else None,
        mean_cost_usd=sum(costs) / len(costs) if costs else None,
        total_cost_usd=sum(costs),
        feedback_n=len(feedback),
        feedback_mean=sum(feedback) / len(feedback) if feedback else None,
        feedback_ci=mean_ci(feedback),
    )


def report_from_store(store: ExperimentStore, experiment: str, **options: Any) -> ExperimentReport:
    """`build_report` over everything ``store`` holds for ``experiment``.

    For analysis outside the serving process, e.g. in a notebook:
    ``report_from_store(SQLiteStore("experiments.db"), "migrate-to-local")``.
    """
    return build_report(
        experiment,
        store.records(experiment),
        store.feedback(experiment),
        store.events(experiment),
        **options,
    )
