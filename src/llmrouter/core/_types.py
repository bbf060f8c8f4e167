"""What a router ranks and answers: the request, the ranking, bound tools.

Plain data with no imports from the rest of the core, so every feature package
(and the executor) can use them without touching the router base.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from langchain_core.caches import BaseCache
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import Runnable

from llmrouter.record import RouteRecord
from llmrouter.resilience import CircuitBreaker, RetryPolicy
from llmrouter.spec import ModelSpec


@dataclass
class RouteRequest:
    """What a router sees of one request when ranking candidates."""

    messages: list[BaseMessage]
    task: str | None = None
    task_source: str | None = None
    thread_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Router keywords of this call other than task/thread (e.g. ``user``)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The call's ``config["metadata"]``."""
    tools: ToolBinding | None = None
    """Tools bound with ``bind_tools``: only tool-capable candidates can answer."""
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    """The keywords passed on to the answering model (``max_tokens``, ``temperature``...)."""
    answer: str | None = None
    """Text of the answer, set before the finish hook runs (``None`` when all failed)."""
    stop: list[str] | None = None
    """The stop sequences in force (the call's, else the router's)."""

    @property
    def text(self) -> str:
        """Text of the last human message (what classifiers look at)."""
        for message in reversed(self.messages):
            if isinstance(message, HumanMessage):
                return message.text
        return self.messages[-1].text if self.messages else ""


@dataclass
class Ranking:
    """A router's answer: candidates in the order to try them, and why.

    ``task`` and ``task_source`` default to the request's: a router that does
    not decide the task itself keeps the caller's in the route record.

    Examples:
        >>> from llmrouter import ModelSpec
        >>> from langchain_core.language_models import FakeListChatModel
        >>> spec = ModelSpec(name="a", model=FakeListChatModel(responses=["hi"]))
        >>> Ranking([spec], reason="the only model").task is None
        True
    """

    candidates: list[ModelSpec]
    reason: str
    task: str | None = None
    """The task the router decided (``None``: the request's task, if any)."""
    task_source: str | None = None
    """How the task was decided (``None``: as the request says)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Router-specific details, copied into the record's ``extra``."""
    estimated_cost: dict[str, float] = field(default_factory=dict)
    """Pre-call cost estimate (USD) per candidate name, when the router made one."""


#: Call keyword that carries a `ToolBinding` from ``bind_tools`` to the executor.
TOOLS_KEY = "_llmrouter_tools"


@dataclass(eq=False)
class ToolBinding:
    """Tools bound with ``router.bind_tools``; bound onto each candidate on first use."""

    tools: list[Any]
    options: dict[str, Any]
    schemas: list[dict[str, Any]]
    """The tools in OpenAI format, shown in traces as the ``tools`` parameter."""
    bound: dict[str, Runnable[LanguageModelInput, BaseMessage]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"ToolBinding({[s['function']['name'] for s in self.schemas]})"


def runnable_for(
    spec: ModelSpec, tools: ToolBinding | None
) -> Runnable[LanguageModelInput, BaseMessage]:
    """``spec``'s chat model, with ``tools`` bound when there are any (bound once, reused)."""
    if tools is None:
        return spec.chat_model
    runnable = tools.bound.get(spec.name)
    if runnable is None:
        runnable = spec.chat_model.bind_tools(tools.tools, **tools.options)
        tools.bound[spec.name] = runnable
    return runnable


#: Class attribute that marks a router (the executor nests routers without importing them).
ROUTER_MARKER = "_llmrouter_is_router"


class RouterHost(Protocol):
    """What the executor needs of a router: its settings and its finish hooks.

    `BaseRouter` satisfies it; the executor never imports the router base.
    """

    circuit_breaker: CircuitBreaker | None
    timeout: float | None
    first_token_timeout: float | None
    idle_timeout: float | None
    stream_timeout: float | None
    stream_recovery: Literal["continue", "raise"]

    @property
    def router_name(self) -> str: ...

    @property
    def response_store(self) -> BaseCache | None: ...

    @property
    def retry_policy(self) -> RetryPolicy: ...

    def on_finish(self, request: RouteRequest, record: RouteRecord) -> None: ...

    async def aon_finish(self, request: RouteRequest, record: RouteRecord) -> None: ...
