"""ABRouter over real llm-katan servers: canary rollback on injected faults, real usage, shadow."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from llmrouter import ModelSpec, models, route_of
from llmrouter.ab._router import ABRouter, CanaryGuard


def remote(server: Any, name: str, **kwargs: Any) -> ModelSpec:
    return models.openai_compatible(
        server.model,
        base_url=server.base_url,
        api_key=server.api_key,
        name=name,
        max_retries=0,  # the client must not retry: every injected error reaches the router
        **kwargs,
    )


def canary(control: ModelSpec, candidate: ModelSpec, guard: CanaryGuard, **kwargs: Any) -> ABRouter:
    return ABRouter(
        variants={"control": control, "candidate": candidate},
        experiment="migrate-to-local",
        mode="canary",
        guard=guard,
        max_retries=0,  # one try per model: the guard sees every injected error
        **kwargs,
    )


def test_canary_rolls_back_when_the_candidate_returns_errors(
    katan_server: Any, katan_factory: Any, tmp_path: Path
) -> None:
    failing = katan_factory(["--error-rate", "1.0"])
    ab = canary(
        remote(katan_server, "gpt"),
        remote(failing, "local"),
        CanaryGuard(max_error_rate=0.2, min_requests=5, window=20),
        weights={"control": 0.7, "candidate": 0.3},
        store=f"sqlite:///{tmp_path}/canary.db",
    )
    answers = [ab.invoke(f"question {i}", user=f"user-{i}") for i in range(60)]
    # users never saw the candidate's errors: the control answered them
    assert all(route_of(a).model == "gpt" and "question" in a.text for a in answers)
    assert ab.rolled_back == {"candidate"} and ab.weights["candidate"] == 0.0
    records = ab.store.records("migrate-to-local")
    failed = [r for r in records if r.variant == "candidate"]
    assert len(failed) == 5 and all("500" in (r.error or "") for r in failed)
    assert all(r.model == "gpt" for r in failed)  # each fell back
    (event,) = ab.store.events("migrate-to-local")
    assert event.kind == "rollback" and "error rate 100% > 20%" in event.detail["reason"]
    report = ab.report()
    assert report.variant("candidate").error_rate == 1.0
    assert "rollback 'candidate'" in str(report)
    ab.close()


def test_canary_rolls_back_at_a_partial_error_rate(katan_server: Any, katan_factory: Any) -> None:
    flaky = katan_factory(["--error-rate", "0.5"])
    ab = canary(
        remote(katan_server, "gpt"),
        remote(flaky, "local"),
        CanaryGuard(max_error_rate=0.2, min_requests=10, window=20),
        circuit_breaker=None,  # let every request reach the flaky server
    )
    for i in range(400):
        ab.invoke("hello", user=f"user-{i}")
        if ab.rolled_back:
            break
    assert ab.rolled_back == {"candidate"}
    candidate = ab.report().variant("candidate")
    assert candidate.requests >= 10 and candidate.error_rate is not None
    assert candidate.error_rate > 0.2


@pytest.fixture(scope="module")
def slow_server(katan_factory: Any) -> Any:
    """llm-katan answering after 400 ms."""
    return katan_factory(["--latency-ms", "400"])


def test_canary_rolls_back_a_slow_candidate(katan_server: Any, slow_server: Any) -> None:
    ab = canary(
        remote(katan_server, "gpt"),
        remote(slow_server, "local"),
        CanaryGuard(max_error_rate=None, max_p95_latency_s=0.2, min_requests=3, window=10),
        weights={"candidate": 1.0},
    )
    for i in range(5):
        ab.invoke("hello", user=f"user-{i}")
    assert ab.rolled_back == {"candidate"}
    assert "p95 latency" in ab.store.events("migrate-to-local")[0].detail["reason"]
    assert route_of(ab.invoke("hello", user="user-0")).model == "gpt"


async def test_split_stores_real_usage_and_cost(katan_server: Any) -> None:
    ab = ABRouter(
        variants={
            "control": remote(katan_server, "gpt", input_cost=0.15, output_cost=0.6),
            "candidate": remote(katan_server, "local"),
        },
        experiment="usage",
    )
    for i in range(6):
        msg = await ab.ainvoke("How do routers pick models?", user=f"user-{i}")
        await ab.arecord_feedback(msg, score=1)
    records = ab.store.records("usage")
    assert len(records) == 6 and all(r.total_tokens and r.total_tokens > 0 for r in records)
    for r in records:
        expected = 0.0 if r.variant == "candidate" else None
        if expected is None:
            expected = ((r.input_tokens or 0) * 0.15 + (r.output_tokens or 0) * 0.6) / 1e6
        assert r.cost_usd == pytest.approx(expected)
    assert sum(v.feedback_n for v in ab.report().variants) == 6


def test_a_slow_real_shadow_never_slows_the_control(katan_server: Any, slow_server: Any) -> None:
    ab = ABRouter(
        variants={
            "control": remote(katan_server, "gpt"),
            "candidate": remote(slow_server, "local"),
        },
        experiment="shadow",
        mode="shadow",
    )
    latencies = []
    for i in range(6):
        started = time.perf_counter()
        msg = ab.invoke(f"question {i}", user=f"user-{i}")
        latencies.append(time.perf_counter() - started)
        assert route_of(msg).model == "gpt"
    assert statistics.median(latencies) < 0.2  # each shadow call takes > 0.4 s
    assert ab.wait_shadows(timeout=30)
    shadows = [r for r in ab.store.records("shadow") if r.shadow]
    assert len(shadows) == 6 and all((r.latency_s or 0) >= 0.4 for r in shadows)
    assert all(r.output and r.reference_output and "question" in r.output for r in shadows)
    ab.close()
