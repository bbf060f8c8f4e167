"""Experiment statistics and the report of an A/B experiment.

Per variant: requests, error rate (95% Wilson interval), latency p50/p95, mean
tokens and cost, mean feedback (95% t interval). Each candidate against the
control: Welch's t-test on feedback, a two-proportion z-test on error rate, and
the sample size per variant needed to detect a given effect (alpha 0.05, power
0.8 by default). The tests come from ``scipy.stats``; scipy, numpy and
matplotlib are imported on first use only (``pip install 'llmrouter[ab]'``).

Example:
    >>> from llmrouter.ab._report import sample_size_means
    >>> sample_size_means(0.5)  # per variant, to detect d = 0.5 at alpha 0.05, power 0.8
    64
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import io
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrouter.ab._store import ExperimentEvent, ExperimentRecord, ExperimentStore, Feedback

if TYPE_CHECKING:
    from rich.console import Group

_INSTALL = "pip install 'llmrouter[ab]'  (scipy and matplotlib)"


def _stats() -> Any:
    """``scipy.stats``, imported on first use (scipy ships no type information)."""
    try:
        return importlib.import_module("scipy.stats")
    except ImportError as exc:  # pragma: no cover - scipy is in the ab extra
        raise ImportError(f"experiment statistics need scipy: {_INSTALL}") from exc


# ------------------------------------------------------------------ statistics


@dataclass
class TestResult:
    """A two-sample test of a candidate against the control."""

    __test__ = False  # not a pytest test class

    method: str
    """``"welch_t"`` or ``"two_proportion_z"``."""
    difference: float
    """Candidate minus control (mean feedback, or error rate)."""
    statistic: float | None
    p_value: float | None
    """Two-sided; ``None`` when the test is undefined (e.g. no variance at all)."""
    ci: tuple[float, float] | None
    """Confidence interval of the difference (level ``1 - alpha``)."""
    significant: bool
    """``p_value < alpha``."""
    effect_size: float | None = None
    """Observed standardised effect: Cohen's d (feedback) or Cohen's h (error rate)."""


def welch_test(
    control: Sequence[float], candidate: Sequence[float], alpha: float = 0.05
) -> TestResult:
    """Welch's t-test of ``mean(candidate) - mean(control)`` (unequal variances).

    Raises:
        ValueError: with fewer than two values in a group.
    """
    if len(control) < 2 or len(candidate) < 2:
        raise ValueError("Welch's t-test needs at least two values per group")
    stats = _stats()
    import numpy as np

    a, b = np.asarray(control, dtype=float), np.asarray(candidate, dtype=float)
    difference = float(b.mean() - a.mean())
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    effect = difference / pooled if pooled > 0 else None
    if a.var() == 0 and b.var() == 0:  # the test is undefined; say so instead of a NaN
        return TestResult("welch_t", difference, None, None, None, False, effect)
    with _quiet():  # one constant group is fine for Welch; scipy warns about it anyway
        result = stats.ttest_ind(b, a, equal_var=False)
        ci = result.confidence_interval(confidence_level=1 - alpha)
    p_value = float(result.pvalue)
    return TestResult(
        "welch_t",
        difference,
        float(result.statistic),
        p_value,
        (float(ci.low), float(ci.high)),
        p_value < alpha,
        effect,
    )


def two_proportion_test(
    control_events: int,
    control_n: int,
    candidate_events: int,
    candidate_n: int,
    alpha: float = 0.05,
) -> TestResult:
    """Two-sided pooled two-proportion z-test of ``p_candidate - p_control``.

    Equivalent to the chi-square test of the 2x2 table without continuity
    correction (``z**2 == chi2``). The interval is the unpooled Wald interval.

    Raises:
        ValueError: if a group is empty or a count is out of range.
    """
    for events, n in ((control_events, control_n), (candidate_events, candidate_n)):
        if n <= 0 or not 0 <= events <= n:
            raise ValueError(f"need 0 <= events <= n and n > 0, got events={events}, n={n}")
    stats = _stats()
    p1, p2 = control_events / control_n, candidate_events / candidate_n
    difference = p2 - p1
    effect = 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))
    pooled = (control_events + candidate_events) / (control_n + candidate_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / control_n + 1 / candidate_n))
    z_crit = float(stats.norm.ppf(1 - alpha / 2))
    wald = math.sqrt(p1 * (1 - p1) / control_n + p2 * (1 - p2) / candidate_n)
    ci = (difference - z_crit * wald, difference + z_crit * wald)
    if se == 0:  # both groups all-or-nothing alike: no evidence of any difference
        return TestResult("two_proportion_z", difference, 0.0, 1.0, ci, False, effect)
    z = difference / se
    p_value = float(2 * stats.norm.sf(abs(z)))
    return TestResult("two_proportion_z", difference, z, p_value, ci, p_value < alpha, effect)


def sample_size_means(effect_size: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Requests per variant for a two-sided two-sample t-test to detect Cohen's d.

    Exact power from the noncentral t distribution (as in G*Power or
    statsmodels' ``TTestIndPower``): d = 0.2, 0.5, 0.8 need 394, 64, 26.
    """
    d = abs(effect_size)
    if d == 0 or not math.isfinite(d):
        raise ValueError(f"effect_size must be a non-zero finite number, got {effect_size}")
    stats = _stats()

    def achieved(n: int) -> float:
        df, nc = 2 * n - 2, d * math.sqrt(n / 2)
        crit = stats.t.ppf(1 - alpha / 2, df)
        return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))

    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    n: int = max(2, math.floor(2 * (z / d) ** 2))  # the normal approximation, from below
    while n > 2 and achieved(n - 1) >= power:
        n -= 1
    while achieved(n) < power:
        n += 1
    return n


def sample_size_proportions(
    p_control: float, p_candidate: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Requests per variant for a two-sided two-proportion test (Cohen's h, normal)."""
    for p in (p_control, p_candidate):
        if not 0 <= p <= 1:
            raise ValueError(f"proportions must lie in [0, 1], got {p}")
    h = abs(2 * math.asin(math.sqrt(p_candidate)) - 2 * math.asin(math.sqrt(p_control)))
    if h == 0:
        raise ValueError("the two proportions are equal: there is no effect to detect")
    stats = _stats()
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    return math.ceil((z / h) ** 2)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student t interval of the mean; ``None`` with fewer than two values."""
    if len(values) < 2:
        return None
    stats = _stats()
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.var() == 0:
        return (float(data[0]), float(data[0]))
    with _quiet():
        ci = stats.ttest_1samp(data, 0.0).confidence_interval(confidence_level=confidence)
    return (float(ci.low), float(ci.high))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence scipy's precision warnings on near-constant data (handled by the callers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def wilson_ci(events: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion; ``None`` when ``n == 0``."""
    if n == 0:
        return None
    ci = _stats().binomtest(events, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


# ---------------------------------------------------------------------- report


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

    Example:
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
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        title = f"Experiment {self.experiment!r}" + (f" ({self.mode})" if self.mode else "")
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
        for s in self.variants:
            variants.add_row(
                s.label + (" *" if s.variant == self.control and not s.shadow else ""),
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
        if self.comparisons:
            tests = Table(
                title=f"vs control {self.control!r}: * p < {self.alpha:g}; n needed per variant "
                f"for feedback d={self.feedback_effect:g} | error rate +{self.error_effect:.0%} "
                f"at power {self.power:g}",
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
                tests.add_column(
                    name, justify="left" if name in ("variant", "verdict") else "right"
                )
            for c in self.comparisons:
                tests.add_row(
                    c.label,
                    _diff(c.feedback, percent=False),
                    _p(c.feedback),
                    _diff(c.error_rate, percent=True),
                    _p(c.error_rate),
                    f"{c.feedback_n_needed} | {c.error_n_needed}",
                    self._verdict(c),
                )
            parts.append(tests)
        for event in self.events:
            parts.append(
                Text(_event_line(event), style="bold red" if event.kind == "rollback" else "")
            )
        return Group(*parts)

    def _verdict(self, c: Comparison) -> str:
        said = []
        if c.feedback is not None and c.feedback.significant:
            said.append("feedback " + ("better" if c.feedback.difference > 0 else "worse"))
        if c.error_rate is not None and c.error_rate.significant:
            said.append("errors " + ("higher" if c.error_rate.difference > 0 else "lower"))
        if said:
            return ", ".join(said)
        have = self.variant(c.variant, shadow=c.shadow).feedback_n
        control = self.variant(self.control).feedback_n
        return f"not significant (n {min(have, control)}/{c.feedback_n_needed})"

    def __rich__(self) -> Group:
        return self.table()

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(
            record=True, width=160, file=io.StringIO(), color_system=None, force_jupyter=False
        )
        console.print(self.table())
        return console.export_text().rstrip()

    def plot(self, path: str | Path) -> Path:
        """Draw error rate, latency, feedback and cost per variant into ``path`` (PNG, SVG, ...).

        Uses matplotlib's Agg backend (no display needed). Returns the path.
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:  # pragma: no cover - matplotlib is in the ab extra
            raise ImportError(f"ExperimentReport.plot needs matplotlib: {_INSTALL}") from exc
        path = Path(path)
        labels = [s.label for s in self.variants]
        x = list(range(len(labels)))
        fig = Figure(figsize=(11, 7), layout="constrained")  # no pyplot: no GUI, no global state
        (ax_err, ax_lat), (ax_fb, ax_cost) = fig.subplots(2, 2)
        colors = ["#4c72b0" if s.variant == self.control else "#dd8452" for s in self.variants]

        rates = [s.error_rate or 0.0 for s in self.variants]
        ax_err.bar(
            x,
            rates,
            color=colors,
            yerr=_yerr(rates, [s.error_rate_ci for s in self.variants]),
            capsize=4,
        )
        ax_err.set_title("error rate (95% Wilson CI)")
        ax_err.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")

        width = 0.38
        p50 = [(s.latency_p50_s or 0.0) * 1000 for s in self.variants]
        p95 = [(s.latency_p95_s or 0.0) * 1000 for s in self.variants]
        ax_lat.bar([i - width / 2 for i in x], p50, width, label="p50", color=colors)
        ax_lat.bar([i + width / 2 for i in x], p95, width, label="p95", color=colors, alpha=0.5)
        ax_lat.set_title("latency (ms)")
        ax_lat.legend()

        means = [s.feedback_mean or 0.0 for s in self.variants]
        ax_fb.bar(
            x,
            means,
            color=colors,
            yerr=_yerr(means, [s.feedback_ci for s in self.variants]),
            capsize=4,
        )
        ax_fb.set_title("mean feedback (95% CI)")

        costs = [s.mean_cost_usd or 0.0 for s in self.variants]
        ax_cost.bar(x, costs, color=colors)
        ax_cost.set_title("mean cost per request (USD)")

        for ax in (ax_err, ax_lat, ax_fb, ax_cost):
            ax.set_xticks(x, labels)
        fig.suptitle(self._headline())
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        return path

    def _headline(self) -> str:
        bits = [f"experiment {self.experiment!r}, control {self.control!r}"]
        for c in self.comparisons:
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
    """
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
        latency_p50_s=_percentile(latencies, 50),
        latency_p95_s=_percentile(latencies, 95),
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
