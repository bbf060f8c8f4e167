"""Experiment statistics (checked against scipy and published values) and the report."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from llmrouter.ab._report import (
    build_report,
    mean_ci,
    report_from_store,
    sample_size_means,
    sample_size_proportions,
    two_proportion_test,
    welch_test,
    wilson_ci,
)
from llmrouter.ab._store import ExperimentEvent, ExperimentRecord, Feedback, SQLiteStore

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


def make_records() -> tuple[list[ExperimentRecord], list[Feedback]]:
    records, feedback = [], []
    for i in range(40):
        control = ExperimentRecord(
            request_id=f"c{i}",
            experiment="e",
            variant="control",
            model=None if i < 2 else "gpt",
            latency_s=0.1 + i / 1000,
            total_tokens=10,
            cost_usd=2e-5,
            error_type="TimeoutError" if i < 2 else None,
        )
        candidate = ExperimentRecord(
            request_id=f"k{i}",
            experiment="e",
            variant="candidate",
            # errors on 0-5: the control answered 0-3 (fallbacks), nobody answered 4-5
            model="gpt" if i < 4 else None if i < 6 else "local",
            latency_s=0.05 + i / 1000,
            total_tokens=12,
            cost_usd=0.0,
            error_type="ConnectionError" if i < 6 else None,
        )
        records += [control, candidate]
        feedback.append(Feedback(f"c{i}", "e", 1.0 if i % 4 else 0.0))
        feedback.append(Feedback(f"k{i}", "e", 1.0 if i % 2 else 0.0))
    feedback.append(Feedback("k1", "e", 0.0))  # a second score: k1 counts once, as 0.5
    return records, feedback


def test_report_computes_per_variant_metrics_and_tests() -> None:
    records, feedback = make_records()
    events = [ExperimentEvent("e", "rollback", "candidate", {"reason": "error rate 50% > 10%"})]
    report = build_report("e", records, feedback, events, shares={"control": 0.9}, mode="canary")
    control, candidate = report.variants
    assert (control.variant, control.share, candidate.share) == ("control", 0.9, None)
    assert (control.requests, control.errors, control.fallbacks) == (40, 2, 0)
    assert (candidate.requests, candidate.errors, candidate.fallbacks) == (40, 6, 4)
    assert candidate.error_rate == 0.15 and candidate.error_rate_ci == wilson_ci(6, 40)
    latencies = [0.1 + i / 1000 for i in range(40)]
    assert control.latency_p50_s == pytest.approx(np.percentile(latencies, 50))
    assert control.latency_p95_s == pytest.approx(np.percentile(latencies, 95))
    assert (control.mean_tokens, candidate.mean_tokens) == (10, 12)
    assert control.mean_cost_usd == pytest.approx(2e-5)
    assert control.total_cost_usd == pytest.approx(8e-4)

    per_request = [1.0 if i % 2 else 0.0 for i in range(40)]
    per_request[1] = 0.5
    assert candidate.feedback_n == 40 and candidate.feedback_mean == pytest.approx(
        np.mean(per_request)
    )
    (comparison,) = report.comparisons
    control_scores = [1.0 if i % 4 else 0.0 for i in range(40)]
    assert comparison.feedback == welch_test(control_scores, per_request)
    assert comparison.error_rate == two_proportion_test(2, 40, 6, 40)
    assert comparison.feedback_n_needed == 394
    assert comparison.error_n_needed == sample_size_proportions(0.05, 0.10)
    assert report.comparison("candidate") is comparison
    with pytest.raises(KeyError):
        report.variant("nope")


def test_report_groups_shadow_runs_and_handles_missing_data() -> None:
    records = [
        ExperimentRecord(request_id="c1", experiment="e", variant="control", latency_s=0.1),
        ExperimentRecord(
            request_id="s1", experiment="e", variant="cand", shadow=True, parent_id="c1"
        ),
    ]
    report = build_report("e", records, variants=["control", "cand"], shadow_rate=0.5)
    assert [v.label for v in report.variants] == ["control", "cand (shadow)"]
    shadow = report.variant("cand", shadow=True)
    assert shadow.share == 0.5 and shadow.latency_p50_s is None and shadow.feedback_mean is None
    (comparison,) = report.comparisons
    assert comparison.shadow and comparison.feedback is None
    assert comparison.error_rate is not None and comparison.error_rate.p_value == 1.0

    empty = build_report("e", [], variants=["a", "b"])
    assert [(v.variant, v.requests, v.error_rate) for v in empty.variants] == [
        ("a", 0, None),
        ("b", 0, None),
    ]
    assert empty.comparisons[0].error_rate is None
    with pytest.raises(ValueError, match="no records and no variants"):
        build_report("e", [])


def test_report_renders_as_text_rich_dict_and_dataframe() -> None:
    records, feedback = make_records()
    events = [ExperimentEvent("e", "rollback", "candidate", {"reason": "error rate 50% > 10%"})]
    report = build_report("e", records, feedback, events, mode="canary")
    text = str(report)
    assert "Experiment 'e' (canary)" in text and "vs control 'control'" in text
    assert "candidate" in text and "rollback 'candidate': error rate 50% > 10%" in text
    assert "15.0% [" in text  # the candidate's error rate and its interval
    assert report.__rich__() is not None
    data = json.loads(json.dumps(report.to_dict()))
    assert data["variants"][1]["errors"] == 6 and data["events"][0]["kind"] == "rollback"
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="pip install pandas"):
            report.to_dataframe()
    else:  # pragma: no cover - pandas is optional
        frame = report.to_dataframe()
        assert frame.loc["candidate", "errors"] == 6


def test_report_plots_a_png(tmp_path: Path) -> None:
    records, feedback = make_records()
    path = build_report("e", records, feedback).plot(tmp_path / "plots" / "ab.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_report_from_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e.db")
    records, feedback = make_records()
    for record in records:
        store.add_record(record)
    for item in feedback:
        store.add_feedback(item)
    report = report_from_store(store, "e", control="candidate", feedback_effect=0.5)
    assert report.control == "candidate" and report.variants[0].variant == "candidate"
    assert report.comparisons[0].feedback_n_needed == 64


def test_statistics_libraries_load_lazily() -> None:
    code = (
        "import sys, json, llmrouter\n"
        "before = set(sys.modules)\n"
        "import llmrouter.ab._report, llmrouter.ab._store, llmrouter.ab._router\n"
        "heavy = ('scipy', 'matplotlib', 'numpy', 'pandas')\n"
        "anywhere = sorted(m for m in ('scipy', 'matplotlib') if m in sys.modules)\n"
        "ours = sorted(m for m in heavy if m in set(sys.modules) - before)\n"
        "print(json.dumps({'anywhere': anywhere, 'ours': ours}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"anywhere": [], "ours": []}
