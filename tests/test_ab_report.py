"""llmrouter.ab._report: per-variant metrics, comparisons, report data and building from a store."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from llmrouter.ab._report import build_report, report_from_store
from llmrouter.ab._stats import (
    sample_size_proportions,
    two_proportion_test,
    welch_test,
    wilson_ci,
)
from llmrouter.ab._store import ExperimentEvent, ExperimentRecord, Feedback, SQLiteStore


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


def test_report_gives_its_data_as_dict_and_dataframe() -> None:
    records, feedback = make_records()
    events = [ExperimentEvent("e", "rollback", "candidate", {"reason": "error rate 50% > 10%"})]
    report = build_report("e", records, feedback, events, mode="canary")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["variants"][1]["errors"] == 6 and data["events"][0]["kind"] == "rollback"
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="pip install pandas"):
            report.to_dataframe()
    else:  # pragma: no cover - pandas is optional
        frame = report.to_dataframe()
        assert frame.loc["candidate", "errors"] == 6


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


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"alpha": 2}, r"alpha must be a number strictly between 0 and 1, got 2"),
        ({"alpha": 0}, r"alpha must be"),
        ({"power": 1.5}, r"power must be"),
        ({"feedback_effect": 0}, r"feedback_effect must be a non-zero finite number"),
        ({"feedback_effect": float("inf")}, r"feedback_effect must be"),
        ({"error_effect": 0}, r"error_effect must be a number in \(0, 1\]"),
        ({"error_effect": 3}, r"error_effect must be"),
    ],
)
def test_bad_report_options_are_configuration_errors(options: dict[str, float], match: str) -> None:
    from llmrouter.errors import ConfigurationError

    records, feedback = make_records()
    with pytest.raises(ConfigurationError, match=match):
        build_report("e", records, feedback, **options)


def test_ab_router_report_with_bad_alpha_is_a_configuration_error() -> None:
    from langchain_core.language_models import FakeListChatModel

    from llmrouter import ABRouter, ModelSpec
    from llmrouter.errors import ConfigurationError

    router = ABRouter(
        variants={
            "control": ModelSpec(name="a", model=FakeListChatModel(responses=["x"])),
            "candidate": ModelSpec(name="b", model=FakeListChatModel(responses=["y"])),
        },
        experiment="alpha-check",
        store=":memory:",
    )
    router.invoke("hi")
    with pytest.raises(ConfigurationError, match="alpha"):
        router.report(alpha=2)
