"""Statistics of A/B experiments: two-sample tests, sample sizes, confidence intervals.

A candidate against the control: Welch's t-test on feedback (`welch_test`), a
two-proportion z-test on error rate (`two_proportion_test`), and the requests
per variant needed to detect a given effect (`sample_size_means`,
`sample_size_proportions`); per variant: a t interval of the mean (`mean_ci`),
a Wilson interval of a proportion (`wilson_ci`) and percentiles. The tests come
from ``scipy.stats``; scipy and numpy are imported on first use only
(``pip install 'llmrouter[ab]'``).

Examples:
    >>> from llmrouter.ab._stats import sample_size_means
    >>> sample_size_means(0.5)  # per variant, to detect d = 0.5 at alpha 0.05, power 0.8
    64
"""

from __future__ import annotations

import contextlib
import importlib
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmrouter.errors import ConfigurationError

INSTALL_HINT = "pip install 'llmrouter[ab]'  (scipy and matplotlib)"
"""How to get the optional libraries of experiment statistics and plots."""


def check_level(name: str, value: object) -> float:
    """``value`` as a float strictly between 0 and 1 (a significance level, power, ...).

    Raises:
        ConfigurationError: for anything else (``alpha=2`` would otherwise overflow deep
            inside the sample-size search).
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value < 1
    ):
        raise ConfigurationError(
            f"{name} must be a number strictly between 0 and 1, got {value!r}; "
            f"e.g. alpha=0.05, power=0.8, confidence=0.95"
        )
    return float(value)


def _scipy_stats() -> Any:
    """``scipy.stats``, imported on first use (scipy ships no type information)."""
    try:
        return importlib.import_module("scipy.stats")
    except ImportError as exc:  # pragma: no cover - scipy is in the ab extra
        raise ImportError(f"experiment statistics need scipy: {INSTALL_HINT}") from exc


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
    alpha = check_level("alpha", alpha)
    if len(control) < 2 or len(candidate) < 2:
        raise ValueError("Welch's t-test needs at least two values per group")
    stats = _scipy_stats()
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
    alpha = check_level("alpha", alpha)
    for events, n in ((control_events, control_n), (candidate_events, candidate_n)):
        if n <= 0 or not 0 <= events <= n:
            raise ValueError(f"need 0 <= events <= n and n > 0, got events={events}, n={n}")
    stats = _scipy_stats()
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
    alpha, power = check_level("alpha", alpha), check_level("power", power)
    d = abs(effect_size)
    if d == 0 or not math.isfinite(d):
        raise ValueError(f"effect_size must be a non-zero finite number, got {effect_size}")
    stats = _scipy_stats()

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
    alpha, power = check_level("alpha", alpha), check_level("power", power)
    for p in (p_control, p_candidate):
        if not 0 <= p <= 1:
            raise ValueError(f"proportions must lie in [0, 1], got {p}")
    h = abs(2 * math.asin(math.sqrt(p_candidate)) - 2 * math.asin(math.sqrt(p_control)))
    if h == 0:
        raise ValueError("the two proportions are equal: there is no effect to detect")
    stats = _scipy_stats()
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    return math.ceil((z / h) ** 2)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student t interval of the mean; ``None`` with fewer than two values."""
    confidence = check_level("confidence", confidence)
    if len(values) < 2:
        return None
    stats = _scipy_stats()
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
    confidence = check_level("confidence", confidence)
    if n == 0:
        return None
    ci = (
        _scipy_stats()
        .binomtest(events, n)
        .proportion_ci(confidence_level=confidence, method="wilson")
    )
    return (float(ci.low), float(ci.high))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values`` (numpy's linear method); ``None`` if empty."""
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))
