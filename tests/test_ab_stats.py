"""llmrouter.ab._stats: tests, sample sizes and intervals, against scipy and published values."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from llmrouter.ab._stats import (
    mean_ci,
    percentile,
    sample_size_means,
    sample_size_proportions,
    two_proportion_test,
    welch_test,
    wilson_ci,
)

# Welch's example data (Wikipedia, "Welch's t-test", example 1): t = 2.46, p = 0.021
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_welch_test_matches_scipy_and_the_published_example() -> None:
    result = welch_test(A1, A2)
    reference = stats.ttest_ind(A2, A1, equal_var=False)
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert (result.statistic, result.p_value) == (
        pytest.approx(2.46, abs=0.005),
        pytest.approx(0.021, abs=0.0005),
    )
    assert result.difference == pytest.approx(np.mean(A2) - np.mean(A1))
    # the interval of the difference from the Welch-Satterthwaite degrees of freedom
    v1, v2 = np.var(A1, ddof=1) / len(A1), np.var(A2, ddof=1) / len(A2)
    df = (v1 + v2) ** 2 / (v1**2 / (len(A1) - 1) + v2**2 / (len(A2) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(v1 + v2)
    assert result.ci == pytest.approx((result.difference - half, result.difference + half))
    assert result.significant and result.method == "welch_t"
    pooled = math.sqrt((np.var(A1, ddof=1) + np.var(A2, ddof=1)) / 2)
    assert result.effect_size == pytest.approx(result.difference / pooled)


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on constant data
def test_welch_test_edge_cases() -> None:
    constant = welch_test([1.0, 1.0, 1.0], [1.0, 1.0])
    assert constant.p_value is None and not constant.significant and constant.difference == 0
    one_constant = welch_test([1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0])
    reference = stats.ttest_ind([0.0, 1.0, 0.0, 1.0], [1.0] * 4, equal_var=False)
    assert one_constant.p_value == pytest.approx(reference.pvalue)
    with pytest.raises(ValueError, match="at least two values"):
        welch_test([1.0], [1.0, 2.0])


def test_two_proportion_test_matches_the_chi_square_test_of_the_table() -> None:
    control, n1, candidate, n2 = 30, 500, 45, 500
    result = two_proportion_test(control, n1, candidate, n2)
    table = [[control, n1 - control], [candidate, n2 - candidate]]
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    assert result.statistic is not None and result.statistic**2 == pytest.approx(chi2)
    assert result.p_value == pytest.approx(p_value)
    pooled = (control + candidate) / (n1 + n2)
    z = (candidate / n2 - control / n1) / math.sqrt(pooled * (1 - pooled) * (2 / 500))
    assert result.statistic == pytest.approx(z) and z == pytest.approx(1.801, abs=1e-3)
    assert result.difference == pytest.approx(0.03) and not result.significant
    low, high = result.ci or (0, 0)
    assert low < 0.03 < high
    # no errors anywhere: no evidence of a difference, and no NaN
    assert two_proportion_test(0, 10, 0, 20).p_value == 1.0
    with pytest.raises(ValueError, match="events <= n"):
        two_proportion_test(3, 2, 0, 5)


def test_sample_sizes_match_the_published_tables() -> None:
    # two-sided t-test, alpha 0.05, power 0.8 (Cohen 1988; G*Power): small, medium, large
    assert [sample_size_means(d) for d in (0.2, 0.5, 0.8)] == [394, 64, 26]
    assert sample_size_means(-0.5) == 64
    assert sample_size_means(0.5, power=0.9) == 86
    # proportions with Cohen's h (normal approximation): 50% -> 60% needs 194 per group
    h = 2 * math.asin(math.sqrt(0.6)) - 2 * math.asin(math.sqrt(0.5))
    expected = math.ceil(((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / h) ** 2)
    assert sample_size_proportions(0.5, 0.6) == expected == 194
    with pytest.raises(ValueError, match="no effect"):
        sample_size_proportions(0.1, 0.1)
    with pytest.raises(ValueError, match="non-zero"):
        sample_size_means(0.0)


def test_confidence_intervals_match_scipy() -> None:
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean_ci(values) == pytest.approx(expected)
    assert mean_ci([1.0]) is None and mean_ci([2.0, 2.0]) == (2.0, 2.0)
    # Wilson interval of 0 of 10: upper bound z^2 / (n + z^2) = 0.2775
    assert wilson_ci(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_ci(0, 0) is None


def test_percentile_matches_numpy() -> None:
    values = [0.3, 0.1, 0.2, 0.5]
    assert percentile(values, 50) == pytest.approx(np.percentile(values, 50))
    assert percentile(values, 95) == pytest.approx(np.percentile(values, 95))
    assert percentile([], 50) is None


def test_statistics_libraries_load_lazily() -> None:
    code = (
        "import sys, json, llmrouter\n"
        "before = set(sys.modules)\n"
        "import llmrouter.ab._stats, llmrouter.ab._report, llmrouter.ab._render\n"
        "import llmrouter.ab._store, llmrouter.ab._router\n"
        "heavy = ('scipy', 'matplotlib', 'numpy', 'pandas')\n"
        "anywhere = sorted(m for m in ('scipy', 'matplotlib') if m in sys.modules)\n"
        "ours = sorted(m for m in heavy if m in set(sys.modules) - before)\n"
        "print(json.dumps({'anywhere': anywhere, 'ours': ours}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"anywhere": [], "ours": []}


@pytest.mark.parametrize("alpha", [0, 1, 2, -0.1, float("nan"), True, "0.05"])
def test_levels_outside_zero_one_are_configuration_errors(alpha: object) -> None:
    from llmrouter.errors import ConfigurationError

    calls = [
        lambda: welch_test(A1, A2, alpha=alpha),  # type: ignore[arg-type]
        lambda: two_proportion_test(1, 10, 2, 10, alpha=alpha),  # type: ignore[arg-type]
        lambda: sample_size_means(0.5, alpha=alpha),  # type: ignore[arg-type]
        lambda: sample_size_means(0.5, power=alpha),  # type: ignore[arg-type]
        lambda: sample_size_proportions(0.1, 0.2, alpha=alpha),  # type: ignore[arg-type]
        lambda: mean_ci([1.0, 2.0], confidence=alpha),  # type: ignore[arg-type]
        lambda: wilson_ci(1, 10, confidence=alpha),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(ConfigurationError, match=r"must be a number strictly between 0 and 1"):
            call()
