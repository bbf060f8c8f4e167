"""Prometheus metrics of a server, from the route record of every request.

Counters and histograms are updated as requests finish; breaker states and the
budget left are read from the routers when Prometheus scrapes, so they are
never stale. Each app has its own registry (two servers in one process, as in
tests, do not mix their numbers).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from llmrouter.core._router import BaseRouter
from llmrouter.errors import StateUnavailableError
from llmrouter.record import RouteRecord, route_chain

if TYPE_CHECKING:
    from llmrouter.cost import BudgetStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BREAKER = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class ServerMetrics:
    """Request, error, latency, token, cost, retry and fallback metrics per router and model."""

    def __init__(self, routers: Mapping[str, BaseRouter], users: Sequence[str] = ()) -> None:
        """``users``: the budget users whose per-user budgets get a gauge of their own
        (the API keys' ``user``; a request body's ``user`` would make the series
        unbounded)."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmrouter_requests", "Requests answered, by outcome.",
            ["router", "model", "status"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "llmrouter_errors", "Requests that failed, by error class.",
            ["router", "error"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "llmrouter_request_duration_seconds", "Time to the whole answer.",
            ["router", "model"], buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "llmrouter_time_to_first_token_seconds", "Time to the first streamed content.",
            ["router", "model"], buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "llmrouter_tokens", "Tokens, by direction (input/output).",
            ["router", "model", "direction"], registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "llmrouter_cost_usd", "Cost in US dollars of the models that answered.",
            ["router", "model"], registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "llmrouter_retries", "Retries of the same model.", ["router", "model"], registry=r
        )
        self.fallbacks = Counter(
            "llmrouter_fallbacks", "Requests answered by a model other than the first tried.",
            ["router"], registry=r,
        )  # fmt: skip
        self.cache = Counter(
            "llmrouter_cache_lookups", "Response cache lookups, by result (hit or miss).",
            ["router", "model", "result"], registry=r,
        )  # fmt: skip
        self.registry.register(_StateCollector(routers, users))

    def observe(
        self, router: str, route: Mapping[str, Any], seconds: float, ttft: float | None = None
    ) -> None:
        """Count one answered request from its route record."""
        model, inner = _innermost(route)
        self.requests.labels(router, model, "ok").inc()
        self.latency.labels(router, model).observe(seconds)
        if ttft is not None:
            self.ttft.labels(router, model).observe(ttft)
        usage = route.get("usage") or inner.get("usage") or {}
        for direction in ("input", "output"):
            n = usage.get(f"{direction}_tokens") or 0
            if n:
                self.tokens.labels(router, model, direction).inc(n)
        cost = _charged(route, inner)
        if cost:
            self.cost.labels(router, model).inc(cost)
        self._attempts(router, route)
        for step in route_chain(route):  # the cache of whichever router called the model
            result = (step.get("extra") or {}).get("cache")
            if result in ("hit", "miss"):
                self.cache.labels(router, str(step.get("model")), result).inc()

    def failed(self, router: str, error: str, route: Mapping[str, Any] | None = None) -> None:
        """Count one failed request (``error``: the error's class name)."""
        self.errors.labels(router, error).inc()
        self.requests.labels(router, "", "error").inc()
        if route:
            self._attempts(router, route)

    def _attempts(self, router: str, route: Mapping[str, Any]) -> None:
        """Retries and fallbacks of the record and of every nested router's record."""
        fell_back = False
        for record in route_chain(route):
            attempts = record.get("attempts") or []
            tried = [a.get("model") for a in attempts]
            asked = [a.get("model") for a in attempts if a.get("kind") != "rate_limited"]
            for model in set(asked):  # a wait for a token limit's room is no retry
                extra = asked.count(model) - 1
                if extra:
                    self.retries.labels(router, str(model)).inc(extra)
            fell_back |= len(set(tried)) > 1 and bool(attempts) and bool(attempts[-1].get("ok"))
        if fell_back:
            self.fallbacks.labels(router).inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes, without prometheus-client's ``_created``
        series (one creation timestamp per counter and histogram child: a second series
        for each, which no query here reads)."""
        return generate_latest(_WithoutCreated(self.registry))


class _WithoutCreated(Collector):
    """``registry``'s metric families without their ``*_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():  # fresh objects on every scrape
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


def _innermost(route: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The model that really answered (through nested routers) and its record."""
    record = route_chain(route)[-1]
    return str(record.get("model") or route.get("model") or ""), record


def _charged(route: Mapping[str, Any], inner: Mapping[str, Any]) -> float:
    """What budgets charge for the request (`RouteRecord.total_cost`)."""
    try:
        return RouteRecord.model_validate(route).total_cost()[0]
    except ValidationError:  # not a whole record: its innermost priced cost, if any
        return float(inner.get("cost_usd") or 0.0)


class _StateCollector(Collector):
    def __init__(self, routers: Mapping[str, BaseRouter], users: Sequence[str]) -> None:
        self.routers = routers
        self.users = users

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        breaker = GaugeMetricFamily(
            "llmrouter_breaker_state",
            "Circuit breaker per model: 0 closed, 1 half-open, 2 open.",
            labels=["router", "model"],
        )
        budget = GaugeMetricFamily(
            "llmrouter_budget_remaining_usd",
            "US dollars left in each budget's current window (per-user budgets: per API "
            'key user; user "" is calls without one).',
            labels=["router", "budget", "user"],
        )
        for name, router in self.routers.items():
            for model, state in router.health().items():
                breaker.add_metric([name, model], _BREAKER.get(str(state.get("state")), 0.0))
            for status in self._budgets(router):
                labels = [name, status.budget.describe(status.user), status.user or ""]
                budget.add_metric(labels, status.remaining_usd)
        local = GaugeMetricFamily(
            "llmrouter_local_model_bytes",
            "Tensor memory of each local model loaded in this process now.",
            labels=["model"],
        )
        from llmrouter.models._registry import loaded_models

        for loaded in loaded_models():
            local.add_metric([loaded.name], float(loaded.bytes))
        errors = CounterMetricFamily(
            "llmrouter_state_errors",
            "Calls that could not use the shared state (Redis down or slow), by concern.",
            labels=["backend", "concern"],
        )
        from llmrouter.state import state_errors

        for (backend, concern), count in sorted(state_errors().items()):
            errors.add_metric([backend, concern], float(count))
        yield breaker
        yield budget
        yield local
        yield errors

    def _budgets(self, router: BaseRouter) -> list[BudgetStatus]:
        """The router's budgets: shared ones once, per-user ones for each known user."""
        status_of = getattr(router, "budget_status", None)
        if not callable(status_of):
            return []
        try:
            statuses: list[BudgetStatus] = status_of()
            if any(status.budget.key == "user" for status in statuses):
                for user in self.users:
                    statuses += [s for s in status_of(user) if s.budget.key == "user"]
        except StateUnavailableError:  # shared state down: counted in llmrouter_state_errors
            return []
        return statuses
