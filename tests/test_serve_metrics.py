"""ServerMetrics: counters from route records, breaker and budget gauges read at scrape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _fixtures.fakes import Recorder
from langchain_core.language_models import FakeListChatModel
from prometheus_client.parser import text_string_to_metric_families

from llmrouter import Budget, CostAwareRouter, ModelRouter, ModelSpec
from llmrouter.record import Attempt, RouteRecord, Usage
from llmrouter.resilience import CircuitBreaker, MemoryBreakerBoard
from llmrouter.serve import ServerMetrics


def samples(metrics: ServerMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, by name and labels."""
    text = metrics.exposition().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: ServerMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def fake(name: str) -> ModelSpec:
    return ModelSpec(name=name, model=FakeListChatModel(responses=[f"from {name}"]))


def attempt(model: str, ok: bool) -> Attempt:
    return Attempt(model=model, ok=ok, latency_s=0.01)


def record(model: str | None, *attempts: Attempt, **fields: Any) -> dict[str, Any]:
    """A route record as the app gets it (``response_metadata["route"]``)."""
    fields.setdefault("router", "r")
    fields.setdefault("router_type", "ModelRouter")
    return RouteRecord(model=model, attempts=list(attempts), **fields).model_dump(mode="json")


# outer router: "by-task" failed twice (one retry), then "backup" answered (a fallback);
# the innermost record says which model really answered and what it cost
NESTED = record(
    "by-task",
    attempt("by-task", False),
    attempt("by-task", False),
    attempt("backup", True),
    router="outer",
    usage=Usage(input_tokens=10, output_tokens=5, total_tokens=15),
    inner=record("coder", attempt("coder", True), router="by-task", cost_usd=0.25),
)


def test_observe_counts_the_innermost_model_with_tokens_and_cost() -> None:
    metrics = ServerMetrics({})
    metrics.observe("outer", NESTED, 0.3)
    assert (
        value(metrics, "llmrouter_requests_total", router="outer", model="coder", status="ok") == 1
    )
    assert value(metrics, "llmrouter_requests_total", router="outer", model="by-task") is None
    labels = {"router": "outer", "model": "coder"}
    assert value(metrics, "llmrouter_tokens_total", direction="input", **labels) == 10
    assert value(metrics, "llmrouter_tokens_total", direction="output", **labels) == 5
    assert value(metrics, "llmrouter_cost_usd_total", **labels) == 0.25
    assert value(metrics, "llmrouter_request_duration_seconds_count", **labels) == 1
    assert value(metrics, "llmrouter_request_duration_seconds_sum", **labels) == 0.3
    assert value(metrics, "llmrouter_request_duration_seconds_bucket", le="0.25", **labels) == 0
    assert value(metrics, "llmrouter_request_duration_seconds_bucket", le="0.5", **labels) == 1
    assert value(metrics, "llmrouter_time_to_first_token_seconds_count", **labels) is None


def test_observe_counts_retries_of_the_same_model_and_the_fallback() -> None:
    metrics = ServerMetrics({})
    metrics.observe("outer", NESTED, 0.1)
    assert value(metrics, "llmrouter_retries_total", router="outer", model="by-task") == 1
    assert value(metrics, "llmrouter_retries_total", router="outer", model="backup") is None
    assert value(metrics, "llmrouter_fallbacks_total", router="outer") == 1


def test_a_wait_for_token_room_is_no_retry() -> None:
    metrics = ServerMetrics({})
    throttled = Attempt(model="a", ok=False, latency_s=0.0, kind="rate_limited")
    metrics.observe("main", record("a", throttled, attempt("a", True)), 0.2)
    assert value(metrics, "llmrouter_retries_total", router="main", model="a") is None
    # out of room for good: the next model answered, a fallback
    metrics.observe("main", record("b", throttled, attempt("b", True)), 0.2)
    assert value(metrics, "llmrouter_fallbacks_total", router="main") == 1


def test_a_first_try_answer_is_no_retry_and_no_fallback() -> None:
    metrics = ServerMetrics({})
    route = record("a", attempt("a", True))
    metrics.observe("main", route, 0.01, ttft=0.004)
    assert value(metrics, "llmrouter_requests_total", router="main", model="a", status="ok") == 1
    assert value(metrics, "llmrouter_fallbacks_total", router="main") is None
    assert value(metrics, "llmrouter_retries_total", router="main", model="a") is None
    assert (
        value(metrics, "llmrouter_tokens_total", router="main", model="a", direction="input")
        is None
    )
    assert (
        value(metrics, "llmrouter_time_to_first_token_seconds_count", router="main", model="a") == 1
    )
    assert (
        value(metrics, "llmrouter_time_to_first_token_seconds_sum", router="main", model="a")
        == 0.004
    )


def test_usage_of_the_inner_record_counts_when_the_outer_has_none() -> None:
    metrics = ServerMetrics({})
    inner = record("a", attempt("a", True), usage=Usage(input_tokens=7))
    route = record("inner", attempt("inner", True), inner=inner)
    metrics.observe("outer", route, 0.01)
    assert (
        value(metrics, "llmrouter_tokens_total", router="outer", model="a", direction="input") == 7
    )
    assert (
        value(metrics, "llmrouter_tokens_total", router="outer", model="a", direction="output")
        is None
    )


def test_cost_is_what_the_record_charges_usage_else_the_estimate() -> None:
    metrics = ServerMetrics({})
    metrics.observe("main", record("a", attempt("a", True), cost_usd=0.5), 0.01)
    metrics.observe("main", record("b", attempt("b", True), estimated_cost_usd=0.2), 0.01)
    metrics.observe("main", record("c", attempt("c", True)), 0.01)
    assert value(metrics, "llmrouter_cost_usd_total", router="main", model="a") == 0.5
    assert value(metrics, "llmrouter_cost_usd_total", router="main", model="b") == 0.2
    assert value(metrics, "llmrouter_cost_usd_total", router="main", model="c") is None


def test_cache_hits_and_misses_are_counted_also_inside_a_nested_router() -> None:
    metrics = ServerMetrics({})
    inner = record("coder", attempt("coder", True), router="by-task", extra={"cache": "hit"})
    metrics.observe("outer", record("by-task", attempt("by-task", True), inner=inner), 0.01)
    metrics.observe("outer", record("a", attempt("a", True), extra={"cache": "miss"}), 0.01)
    metrics.observe("outer", record("a", attempt("a", True)), 0.01)  # no cache: not counted
    name = "llmrouter_cache_lookups_total"
    assert value(metrics, name, router="outer", model="coder", result="hit") == 1
    assert value(metrics, name, router="outer", model="a", result="miss") == 1
    assert value(metrics, name, router="outer", model="a", result="hit") is None


def test_requests_add_up() -> None:
    metrics = ServerMetrics({})
    for _ in range(3):
        metrics.observe("main", record("a", attempt("a", True)), 0.01)
    metrics.observe("main", record("b", attempt("b", True)), 0.01)
    assert value(metrics, "llmrouter_requests_total", router="main", model="a", status="ok") == 3
    assert value(metrics, "llmrouter_requests_total", router="main", model="b", status="ok") == 1


def test_failed_counts_the_error_and_the_retries_but_no_fallback() -> None:
    metrics = ServerMetrics({})
    route = record(None, attempt("a", False), attempt("a", False), attempt("b", False))
    metrics.failed("main", "AllModelsFailedError", route)
    metrics.failed("main", "BudgetExceededError")
    assert (
        value(metrics, "llmrouter_errors_total", router="main", error="AllModelsFailedError") == 1
    )
    assert value(metrics, "llmrouter_errors_total", router="main", error="BudgetExceededError") == 1
    assert value(metrics, "llmrouter_requests_total", router="main", model="", status="error") == 2
    assert value(metrics, "llmrouter_retries_total", router="main", model="a") == 1
    assert value(metrics, "llmrouter_fallbacks_total", router="main") is None


def test_two_servers_do_not_mix_their_numbers() -> None:
    one, two = ServerMetrics({}), ServerMetrics({})
    one.observe("main", record("a", attempt("a", True)), 0.01)
    assert value(one, "llmrouter_requests_total", router="main", model="a", status="ok") == 1
    assert value(two, "llmrouter_requests_total", router="main", model="a", status="ok") is None


def test_exposition_is_prometheus_text_with_labels() -> None:
    metrics = ServerMetrics({})
    metrics.observe("main", record("a", attempt("a", True)), 0.01)
    text = metrics.exposition().decode()
    assert "# TYPE llmrouter_requests_total counter" in text
    assert 'llmrouter_requests_total{model="a",router="main",status="ok"} 1.0' in text
    assert "# TYPE llmrouter_breaker_state gauge" in text
    assert "llmrouter_requests_total" in text and "_created" not in text  # no timestamp series


def test_breaker_gauge_shows_each_models_state_at_scrape() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown=15.0, board=MemoryBreakerBoard())
    router = ModelRouter(models=[fake("flaky"), fake("steady")], default="steady")
    router = router.model_copy(update={"circuit_breaker": breaker})
    metrics = ServerMetrics({"main": router})
    assert value(metrics, "llmrouter_breaker_state", router="main", model="flaky") == 0
    breaker.record_failure("flaky")
    assert value(metrics, "llmrouter_breaker_state", router="main", model="flaky") == 2
    assert value(metrics, "llmrouter_breaker_state", router="main", model="steady") == 0


def test_breaker_gauge_shows_half_open_as_1() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown=15.0, board=MemoryBreakerBoard())
    router = ModelRouter(models=[fake("flaky")], circuit_breaker=breaker)
    metrics = ServerMetrics({"main": router})
    breaker.record_failure("flaky", now=0.0)  # open since 1970: the cool-down is over
    assert breaker.allow("flaky")  # the one trial: half-open
    assert value(metrics, "llmrouter_breaker_state", router="main", model="flaky") == 1


def test_breaker_gauge_of_the_default_board() -> None:
    router = ModelRouter(models=[fake("flaky")])
    metrics = ServerMetrics({"main": router})
    assert router.circuit_breaker is not None
    for _ in range(router.circuit_breaker.failure_threshold):
        router.circuit_breaker.record_failure("flaky")
    assert value(metrics, "llmrouter_breaker_state", router="main", model="flaky") == 2


def test_budget_gauge_shows_the_usd_left(tmp_path: Path) -> None:
    priced = ModelSpec(
        name="priced",
        model=Recorder(reply="ok", usage=(1000, 1000)),
        input_cost=1.0,
        output_cost=2.0,
    )
    router = CostAwareRouter(
        models=[priced], budget=Budget(usd=5.0, per="day"), spend_db=tmp_path / "spend.sqlite"
    )
    metrics = ServerMetrics({"cheap": router})
    daily = {"router": "cheap", "budget": "$5.00 per day", "user": ""}
    assert value(metrics, "llmrouter_budget_remaining_usd", **daily) == 5.0
    router.invoke("hello")  # 1000 tokens in at $1/M + 1000 out at $2/M = $0.003
    left = value(metrics, "llmrouter_budget_remaining_usd", **daily)
    assert left is not None and abs(left - 4.997) < 1e-9


def test_per_user_budgets_have_a_gauge_per_known_user(tmp_path: Path) -> None:
    priced = ModelSpec(
        name="priced", model=Recorder(reply="ok", usage=(1000, 1000)), input_cost=1.0
    )
    per_user, shared = Budget(usd=1.0, per="day", key="user"), Budget(usd=9.0, per="day")
    router = CostAwareRouter(
        models=[priced], budget=[per_user, shared], spend_db=tmp_path / "spend.sqlite"
    )
    metrics = ServerMetrics({"r": router}, users=["alice", "bob"])
    router.invoke("hello", config={"metadata": {"user": "alice"}})  # $0.001
    gauges = {
        (labels["budget"], labels["user"]): v
        for (name, key), v in samples(metrics).items()
        if name == "llmrouter_budget_remaining_usd"
        for labels in [dict(key)]
    }
    alice = ("$1.00 per day for user 'alice'", "alice")
    assert gauges == {
        ("$1.00 per day for calls without a user", ""): 1.0,
        alice: gauges[alice],
        ("$1.00 per day for user 'bob'", "bob"): 1.0,
        ("$9.00 per day", ""): gauges[("$9.00 per day", "")],
    }
    assert abs(gauges[alice] - 0.999) < 1e-9
    assert abs(gauges[("$9.00 per day", "")] - 8.999) < 1e-9


def test_routers_without_budget_have_no_budget_gauge() -> None:
    metrics = ServerMetrics({"main": ModelRouter(models=[fake("a")])})
    assert not [k for k in samples(metrics) if k[0] == "llmrouter_budget_remaining_usd"]
    assert value(metrics, "llmrouter_breaker_state", router="main", model="a") == 0


def test_retries_and_fallbacks_inside_a_nested_router_are_counted() -> None:
    metrics = ServerMetrics({})
    inner = {
        "router": "by-task",
        "model": "local",
        "attempts": [
            {"model": "remote", "ok": False},
            {"model": "remote", "ok": False},
            {"model": "local", "ok": True},
        ],
    }
    outer = {"router": "front", "model": "by-task", "attempts": [{"model": "by-task", "ok": True}]}
    metrics.observe("front", {**outer, "inner": inner}, 0.5)
    text = metrics.exposition().decode()
    assert 'llmrouter_retries_total{model="remote",router="front"} 1.0' in text
    assert 'llmrouter_fallbacks_total{router="front"} 1.0' in text


def test_local_model_memory_gauge_follows_the_registry(tiny_model_dir: Path) -> None:
    from llmrouter.models import huggingface_pipeline, unload_models

    metrics = ServerMetrics({})
    name = f"text-generation:{tiny_model_dir}"
    huggingface_pipeline(str(tiny_model_dir), max_new_tokens=2).chat_model.invoke("hi")
    loaded = value(metrics, "llmrouter_local_model_bytes", model=name)
    assert loaded is not None and loaded > 100_000
    unload_models(str(tiny_model_dir))
    assert value(metrics, "llmrouter_local_model_bytes", model=name) is None


def test_a_scrape_with_redis_down_counts_the_errors_instead_of_failing() -> None:
    from llmrouter.testing import start_redis_server

    priced = ModelSpec(name="priced", model=Recorder(reply="ok", usage=(10, 10)))
    with start_redis_server() as server:
        router = CostAwareRouter(
            models=[priced], budget=Budget(usd=5.0, per="day"), state=server.url
        )
        metrics = ServerMetrics({"shared": router})
        gauge = {"router": "shared", "budget": "$5.00 per day", "user": ""}
        assert value(metrics, "llmrouter_budget_remaining_usd", **gauge) == 5.0
        before = value(metrics, "llmrouter_state_errors_total", backend="redis", concern="budgets")
        server.kill()
        assert value(metrics, "llmrouter_budget_remaining_usd", **gauge) is None  # no guess
        after = value(metrics, "llmrouter_state_errors_total", backend="redis", concern="budgets")
        assert after is not None and after >= (before or 0) + 1
        assert value(metrics, "llmrouter_breaker_state", router="shared", model="priced") == 0
