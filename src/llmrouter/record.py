"""The route record: what a router decided, and what happened when it ran."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import BaseModel, Field

_PROCESS_PREFIX = uuid.uuid4().hex[:16]
_COUNTER = itertools.count(1)


def _new_prefix() -> None:
    # A forked child (gunicorn, Celery, multiprocessing) must not repeat its parent's
    # ids: records of both would collide in a shared store.
    global _PROCESS_PREFIX, _COUNTER
    _PROCESS_PREFIX, _COUNTER = uuid.uuid4().hex[:16], itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix)


def _new_request_id() -> str:
    # unique across processes (random prefix, new in a forked child) and cheap
    return f"{_PROCESS_PREFIX}{next(_COUNTER):016x}"


ROUTE_EVENT = "llmrouter.route"
"""Name of the LangChain custom event that carries the route record."""


class Attempt(BaseModel):
    """One try of one candidate model."""

    model: str
    """Name of the `ModelSpec` that was tried."""
    replica: str | None = None
    """For a model with ``replicas``: the replica this try went to."""
    ok: bool
    latency_s: float
    """Wall time of this attempt, in seconds."""
    error_type: str | None = None
    error: str | None = None
    kind: str | None = None
    """For failures: ``retryable``, ``context_length``, ``fatal``, ``circuit_open``, or
    ``rate_limited`` (the model's token limit had no room: not asked, not a failure of
    the model); ``cache_hit`` for an answer from the router's response cache."""
    partial: bool = False
    """True when the model failed mid-stream, after sending part of the answer."""


class Usage(BaseModel):
    """Token usage reported by the answering model (`usage_metadata`)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class RouteRecord(BaseModel):
    """Everything a router decided for one request.

    Attached to every response as ``response_metadata["route"]`` (as a plain dict,
    so it serialises and shows in traces) and emitted as the custom event
    ``"llmrouter.route"``.

    Examples:
        >>> from llmrouter import route_of
        >>> record = route_of(message)  # doctest: +SKIP
        >>> record.model, record.reason, record.latency_s  # doctest: +SKIP
    """

    request_id: str = Field(default_factory=lambda: _new_request_id())
    """Unique id of the request (a random per-process prefix plus a counter)."""
    router: str
    """Name of the router (its class name unless ``name=`` was given)."""
    router_type: str
    task: str | None = None
    task_source: str | None = None
    """How the task was decided: ``explicit``, ``config``, ``classifier:<kind>``, ``none``."""
    model: str | None = None
    """Name of the model that answered (``None`` when all failed)."""
    reason: str = ""
    backend_model: str | None = None
    """The answering backend's own model name, when it reported one."""
    candidates: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    latency_s: float = 0.0
    streamed: bool = False
    usage: Usage | None = None
    cost_usd: float | None = None
    """Actual cost from reported usage and the model's prices (``None`` if unknown)."""
    estimated_cost_usd: float | None = None
    """The router's pre-call estimate for the model that answered, if it made one."""
    estimates: dict[str, float] = Field(default_factory=dict)
    """Pre-call cost estimates (USD) per candidate, if the router made them."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Router-specific details (classifier confidence, thread stickiness, ...)."""
    inner: dict[str, Any] | None = None
    """The route record of a nested router that answered, if any."""

    def total_cost(self) -> tuple[float, str]:
        """What the request cost, and how that is known: the innermost priced usage
        (a nested router's record priced the model that really answered), else the
        estimate; models that failed mid-stream sent tokens without usage, so their
        estimates are added (spend is never under-counted). Budgets charge this.

        Examples:
            >>> RouteRecord(router="r", router_type="T", cost_usd=0.5).total_cost()
            (0.5, 'usage')
            >>> RouteRecord(router="r", router_type="T", estimated_cost_usd=0.2).total_cost()
            (0.2, 'estimate')
        """
        cost = self.cost_usd
        for inner in route_chain(self.inner) if self.inner else []:
            if inner.get("cost_usd") is not None:
                cost = float(inner["cost_usd"])
        source = "usage"
        if cost is None:
            cost, source = self.estimated_cost_usd or 0.0, "estimate"
        partial = [self.estimates.get(a.model, 0.0) for a in self.attempts if a.partial]
        if partial:
            cost, source = cost + sum(partial), source + " + estimate of interrupted streams"
        return cost, source


def route_chain(route: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A route record (as a dict) and those of the nested routers that answered for it,
    outermost first; the last one names the model that really answered.

    Examples:
        >>> chain = route_chain({"model": "by-task", "inner": {"model": "local"}})
        >>> [r["model"] for r in chain]
        ['by-task', 'local']
        >>> route_chain({"model": "m"})[-1]["model"]
        'm'
    """
    chain: list[Mapping[str, Any]] = [route]
    while isinstance(chain[-1].get("inner"), Mapping):
        chain.append(chain[-1]["inner"])
    return chain


def route_of(message: BaseMessage) -> RouteRecord:
    """Return the `RouteRecord` attached to a router's response.

    Raises:
        KeyError: if the message did not come from an llmrouter router.
    """
    raw = message.response_metadata.get("route")
    if raw is None:
        raise KeyError(
            "this message carries no route record: it did not come from an llmrouter router"
        )
    return RouteRecord.model_validate(raw)
