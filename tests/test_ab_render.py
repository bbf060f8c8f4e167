"""llmrouter.ab._render: an experiment report as rich tables, plain text and a plot."""

from __future__ import annotations

from pathlib import Path

from llmrouter.ab._render import plot_report, report_table, report_text
from llmrouter.ab._report import ExperimentReport, build_report
from llmrouter.ab._store import ExperimentEvent, ExperimentRecord, Feedback


def make_report(mode: str | None = None, candidate_zeros_every: int = 2) -> ExperimentReport:
    """40 requests per variant: 2 control errors, 6 candidate errors, a 0/1 score for each.

    The control scores 0 on every 4th request, the candidate on every
    ``candidate_zeros_every``-th.
    """
    records, feedback = [], []
    for variant, errors, every in (("control", 2, 4), ("candidate", 6, candidate_zeros_every)):
        for i in range(40):
            request_id = f"{variant}-{i}"
            records.append(
                ExperimentRecord(
                    request_id=request_id,
                    experiment="e",
                    variant=variant,
                    model=None if i < errors else "m",
                    latency_s=0.1 + i / 1000,
                    total_tokens=10,
                    cost_usd=2e-5,
                    error_type="TimeoutError" if i < errors else None,
                )
            )
            feedback.append(Feedback(request_id, "e", 1.0 if i % every else 0.0))
    events = [ExperimentEvent("e", "rollback", "candidate", {"reason": "error rate 50% > 10%"})]
    return build_report("e", records, feedback, events, mode=mode)


def test_report_renders_as_text_and_rich() -> None:
    report = make_report(mode="canary")
    text = str(report)
    assert text == report_text(report)
    assert "Experiment 'e' (canary)" in text and "vs control 'control'" in text
    assert "candidate" in text and "rollback 'candidate': error rate 50% > 10%" in text
    assert "15.0% [" in text  # the candidate's error rate and its interval
    assert "-0.250 [" in text and "0.0208 *" in text and "feedback worse" in text
    assert report.__rich__() is not None and report_table(report) is not None


def test_verdict_says_how_much_data_is_missing() -> None:
    text = report_text(make_report(candidate_zeros_every=4))
    assert "not significant (n 40/394)" in text  # 40 scores per side of the 394 needed


def test_report_plots_a_png(tmp_path: Path) -> None:
    report = make_report()
    path = report.plot(tmp_path / "plots" / "ab.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    svg = plot_report(report, tmp_path / "ab.svg")
    assert svg.read_text().lstrip().startswith("<?xml")
