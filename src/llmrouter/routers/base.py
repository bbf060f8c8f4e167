"""The routing core: a chat model that ranks candidates, and the one executor.

A router implements only :meth:`BaseRouter.rank` (and optionally ``arank``).
Everything else -- trying candidates in order, falling back, streaming,
attaching and emitting the route record, tool binding, nesting -- happens here,
once, for every router.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr, ValidationError, field_validator, model_validator

from llmrouter._callbacks import PARENT_KEY, RunContext, with_parent
from llmrouter.errors import (
    AllModelsFailedError,
    ConfigurationError,
    NoEligibleModelError,
    StreamInterruptedError,
)
from llmrouter.record import ROUTE_EVENT, Attempt, RouteRecord, Usage
from llmrouter.spec import ModelSpec, _explain

#: Response metadata keys the router owns; a candidate's own values move into the record.
_OWNED_KEYS = ("model_name", "route")


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

    @property
    def text(self) -> str:
        """Text of the last human message (what classifiers look at)."""
        for message in reversed(self.messages):
            if isinstance(message, HumanMessage):
                return message.text
        return self.messages[-1].text if self.messages else ""


@dataclass
class Ranking:
    """A router's answer: candidates in the order to try them, and why."""

    candidates: list[ModelSpec]
    reason: str
    task: str | None = None
    task_source: str | None = None
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


class BaseRouter(BaseChatModel, ABC):
    """Base class of every router: a `BaseChatModel` that ranks candidate models.

    Subclasses implement :meth:`rank`; the shared executor tries the ranked
    candidates in order, falls back to the next on error, and attaches a
    `RouteRecord` to the response (``response_metadata["route"]``) which is also
    emitted as the custom event ``"llmrouter.route"``.

    The router-level ``temperature``, ``max_tokens`` and ``stop`` are defaults
    passed to whichever model answers; per-call values win.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    models: list[ModelSpec]
    """Candidate models; names must be unique."""
    temperature: float | None = None
    """Default sampling temperature passed to the answering model."""
    max_tokens: int | None = None
    """Default output token limit passed to the answering model."""
    stop: list[str] | None = None
    """Default stop sequences passed to the answering model."""
    timeout: float | None = None
    """Reserved for per-attempt deadlines (resilience policy); not enforced yet."""
    max_retries: int = 0
    """Reserved for the retry policy; the router currently falls back instead."""
    streaming: bool = False
    """If True, ``invoke`` streams from the answering model under the hood and
    returns the joined answer (the route record says ``streamed``)."""

    #: Call keywords the router consumes itself (never passed to models).
    route_keywords: ClassVar[frozenset[str]] = frozenset({"task", "thread_id"})

    _by_name: dict[str, ModelSpec] = PrivateAttr(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigurationError(_explain(exc, type(self).__name__)) from exc

    @field_validator("models", mode="before")
    @classmethod
    def _models_are_specs(cls, value: Any) -> Any:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ValueError("models must be a list of ModelSpec")
        for i, item in enumerate(value):
            if not isinstance(item, ModelSpec):
                raise ValueError(
                    f"models[{i}] is a {type(item).__name__}, not a ModelSpec; wrap it as "
                    "ModelSpec(name=..., model=...) or build it with llmrouter.models.*"
                )
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> BaseRouter:
        if not self.models:
            raise ValueError("models is empty: give the router at least one ModelSpec")
        names = [s.name for s in self.models]
        dupes = sorted({name for name in names if names.count(name) > 1})
        if dupes:
            raise ValueError(f"duplicate model names {dupes}: give each ModelSpec a unique name")
        self._by_name = {s.name: s for s in self.models}
        return self

    # ------------------------------------------------------------------ ranking

    @abstractmethod
    def rank(self, request: RouteRequest) -> Ranking:
        """Return the candidates for ``request``, best first, with the reason."""

    async def arank(self, request: RouteRequest) -> Ranking:
        """Async ranking; override when ranking does I/O (e.g. an LLM classifier)."""
        return self.rank(request)

    def spec(self, name: str) -> ModelSpec:
        """The `ModelSpec` called ``name``.

        Raises:
            ConfigurationError: if the router has no such model.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigurationError(
                f"{type(self).__name__} has no model {name!r}; models are {sorted(self._by_name)}"
            ) from None

    @property
    def router_name(self) -> str:
        """The name used in route records (``name=`` or the class name)."""
        return self.name or type(self).__name__

    # ------------------------------------------------------------ tool binding

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind ``tools`` to whichever candidate answers.

        Only candidates whose chat model implements ``bind_tools`` are considered;
        if none does, calls raise `NoEligibleModelError`. ``tool_choice`` and other
        keywords go to each candidate's ``bind_tools``.
        """
        options = dict(kwargs)
        if tool_choice is not None:
            options["tool_choice"] = tool_choice
        schemas = [convert_to_openai_tool(tool) for tool in tools]
        call: dict[str, Any] = {TOOLS_KEY: ToolBinding(list(tools), options, schemas)}
        if "ls_structured_output_format" in options:  # so the router's own trace shows it
            call["ls_structured_output_format"] = options["ls_structured_output_format"]
        return self.bind(**call)

    @staticmethod
    def _runnable(
        spec: ModelSpec, tools: ToolBinding | None
    ) -> Runnable[LanguageModelInput, BaseMessage]:
        if tools is None:
            return spec.chat_model
        runnable = tools.bound.get(spec.name)
        if runnable is None:
            runnable = spec.chat_model.bind_tools(tools.tools, **tools.options)
            tools.bound[spec.name] = runnable
        return runnable

    def _eligible(self, ranking: Ranking, tools: ToolBinding | None) -> list[ModelSpec]:
        if tools is None:
            candidates = ranking.candidates
        else:
            candidates = [s for s in ranking.candidates if s.supports_tools]
            if not candidates:
                raise NoEligibleModelError(
                    f"{self.router_name}: tools are bound but no candidate supports tool calling",
                    {s.name: "chat model has no bind_tools" for s in ranking.candidates},
                )
        if not candidates:
            raise NoEligibleModelError(f"{self.router_name}: the router ranked no candidate")
        return candidates

    # ------------------------------------------------------- request plumbing

    def _request(
        self, messages: list[BaseMessage], ctx: RunContext, kwargs: dict[str, Any]
    ) -> tuple[RouteRequest, dict[str, Any]]:
        """Split router keywords from model keywords and read the task."""
        metadata = ctx.metadata
        tools = kwargs.pop(TOOLS_KEY, None)
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in self.route_keywords}
        task, source = options.pop("task", None), "explicit"
        if task is None and metadata.get("task") is not None:
            task, source = str(metadata["task"]), "config"
        thread_id = options.pop("thread_id", None) or metadata.get("thread_id")
        for key, default in (("temperature", self.temperature), ("max_tokens", self.max_tokens)):
            if default is not None:
                kwargs.setdefault(key, default)
        request = RouteRequest(
            messages=messages,
            task=task,
            task_source=source if task is not None else None,
            thread_id=str(thread_id) if thread_id is not None else None,
            options=options,
            metadata=metadata,
            tools=tools,
        )
        return request, kwargs

    def _start(self, request: RouteRequest, ranking: Ranking) -> RouteRecord:
        return RouteRecord(
            router=self.router_name,
            router_type=type(self).__name__,
            task=ranking.task,
            task_source=ranking.task_source,
            reason=ranking.reason,
            candidates=[s.name for s in ranking.candidates],
            extra=dict(ranking.extra),
            estimates=dict(ranking.estimated_cost),
        )

    def _failed(
        self, record: RouteRecord, spec: ModelSpec, started: float, exc: BaseException
    ) -> None:
        record.attempts.append(
            Attempt(
                model=spec.name,
                ok=False,
                latency_s=time.perf_counter() - started,
                error_type=type(exc).__name__,
                error=str(exc)[:500],
            )
        )

    def _succeeded(
        self,
        record: RouteRecord,
        spec: ModelSpec,
        started: float,
        t0: float,
        usage: UsageMetadata | None,
        upstream: dict[str, Any],
    ) -> None:
        now = time.perf_counter()
        record.attempts.append(Attempt(model=spec.name, ok=True, latency_s=now - started))
        record.model = spec.name
        record.latency_s = now - t0
        record.estimated_cost_usd = record.estimates.get(spec.name)
        if upstream.get("model_name") is not None:
            record.backend_model = str(upstream["model_name"])
        if isinstance(upstream.get("route"), dict):
            record.inner = upstream["route"]
        if usage is not None:
            record.usage = Usage(
                input_tokens=usage.get("input_tokens", 0),
                output_tokens=usage.get("output_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            )
            cached = (usage.get("input_token_details") or {}).get("cache_read", 0) or 0
            record.cost_usd = spec.cost(
                record.usage.input_tokens, record.usage.output_tokens, cached
            )

    def _finished(self, request: RouteRequest, record: RouteRecord) -> None:
        """Hook called once per request after the last attempt, success or not.

        Subclasses persist what they must here (experiment records, spend); the
        record of a failed request has ``model=None`` and every failed attempt.
        """

    async def _afinished(self, request: RouteRequest, record: RouteRecord) -> None:
        """Async `_finished` (async paths); the default calls `_finished`."""
        self._finished(request, record)

    @staticmethod
    def _metadata(upstream: dict[str, Any], route: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in upstream.items() if k not in _OWNED_KEYS}
        return {**kept, "model_name": route["model"], "route": route}

    # --------------------------------------------------------------- execution

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return super().invoke(input, config, stop=stop, **_thread_from(config, kwargs))

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return await super().ainvoke(input, config, stop=stop, **_thread_from(config, kwargs))

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        config = with_parent(ensure_config(config), kwargs)
        yield from super().stream(input, config, stop=stop, **_thread_from(config, kwargs))

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        config = with_parent(ensure_config(config), kwargs)
        kwargs = _thread_from(config, kwargs)
        async for chunk in super().astream(input, config, stop=stop, **kwargs):
            yield chunk

    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        # invoke() keeps to the generate path, where the run manager is at hand;
        # the answering model still streams to any streaming handler itself.
        if run_manager is not None:
            return False
        return super()._should_stream(async_api=async_api, **kwargs)

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        kwargs.pop(PARENT_KEY, None)
        tools = kwargs.pop(TOOLS_KEY, None)
        if isinstance(tools, ToolBinding):
            kwargs["tools"] = tools.schemas
        return super()._get_invocation_params(stop=stop, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        ctx = RunContext(run_manager, kwargs.pop(PARENT_KEY, None))
        request, kwargs = self._request(messages, ctx, kwargs)
        ranking = self.rank(request)
        record, t0 = self._start(request, ranking), time.perf_counter()
        stop = stop if stop is not None else self.stop
        error: BaseException | None = None
        for spec in self._eligible(ranking, request.tools):
            started = time.perf_counter()
            try:
                message = self._runnable(spec, request.tools).invoke(
                    messages, config=ctx.child_config(), stop=stop, **kwargs
                )
            except Exception as exc:  # any model error: fall back to the next candidate
                self._failed(record, spec, started, exc)
                error = exc
                continue
            usage = getattr(message, "usage_metadata", None)
            self._succeeded(record, spec, started, t0, usage, message.response_metadata)
            route = self._emit(request, record, ctx)
            message.response_metadata = self._metadata(message.response_metadata, route)
            return ChatResult(generations=[ChatGeneration(message=message)])
        self._emit(request, record, ctx)
        raise AllModelsFailedError(record, error) from error

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        ctx = RunContext(run_manager, kwargs.pop(PARENT_KEY, None))
        request, kwargs = self._request(messages, ctx, kwargs)
        ranking = await self.arank(request)
        record, t0 = self._start(request, ranking), time.perf_counter()
        stop = stop if stop is not None else self.stop
        error: BaseException | None = None
        for spec in self._eligible(ranking, request.tools):
            started = time.perf_counter()
            try:
                message = await self._runnable(spec, request.tools).ainvoke(
                    messages, config=ctx.child_config(), stop=stop, **kwargs
                )
            except Exception as exc:
                self._failed(record, spec, started, exc)
                error = exc
                continue
            usage = getattr(message, "usage_metadata", None)
            self._succeeded(record, spec, started, t0, usage, message.response_metadata)
            route = await self._aemit(request, record, ctx)
            message.response_metadata = self._metadata(message.response_metadata, route)
            return ChatResult(generations=[ChatGeneration(message=message)])
        await self._aemit(request, record, ctx)
        raise AllModelsFailedError(record, error) from error

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        ctx = RunContext(run_manager, kwargs.pop(PARENT_KEY, None))
        request, kwargs = self._request(messages, ctx, kwargs)
        ranking = self.rank(request)
        record, t0 = self._start(request, ranking), time.perf_counter()
        record.streamed = True
        stop = stop if stop is not None else self.stop
        error: BaseException | None = None
        for spec in self._eligible(ranking, request.tools):
            started, relay = time.perf_counter(), _Relay()
            try:
                stream = self._runnable(spec, request.tools).stream(
                    messages, config=ctx.child_config(), stop=stop, **kwargs
                )
                for chunk in stream:
                    yield relay.pass_on(chunk)
            except Exception as exc:
                self._failed(record, spec, started, exc)
                if relay.sent:  # the caller already has part of this answer
                    self._emit(request, record, ctx)
                    raise StreamInterruptedError(record, exc) from exc
                error = exc
                continue
            self._succeeded(record, spec, started, t0, relay.usage, relay.upstream)
            route = self._emit(request, record, ctx)
            yield relay.last(self._metadata(relay.upstream, route))
            return
        self._emit(request, record, ctx)
        raise AllModelsFailedError(record, error) from error

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        ctx = RunContext(run_manager, kwargs.pop(PARENT_KEY, None))
        request, kwargs = self._request(messages, ctx, kwargs)
        ranking = await self.arank(request)
        record, t0 = self._start(request, ranking), time.perf_counter()
        record.streamed = True
        stop = stop if stop is not None else self.stop
        error: BaseException | None = None
        for spec in self._eligible(ranking, request.tools):
            started, relay = time.perf_counter(), _Relay()
            try:
                stream = self._runnable(spec, request.tools).astream(
                    messages, config=ctx.child_config(), stop=stop, **kwargs
                )
                async for chunk in stream:
                    yield relay.pass_on(chunk)
            except Exception as exc:
                self._failed(record, spec, started, exc)
                if relay.sent:
                    await self._aemit(request, record, ctx)
                    raise StreamInterruptedError(record, exc) from exc
                error = exc
                continue
            self._succeeded(record, spec, started, t0, relay.usage, relay.upstream)
            route = await self._aemit(request, record, ctx)
            yield relay.last(self._metadata(relay.upstream, route))
            return
        await self._aemit(request, record, ctx)
        raise AllModelsFailedError(record, error) from error

    # ------------------------------------------------------------------ events

    def _emit(self, request: RouteRequest, record: RouteRecord, ctx: RunContext) -> dict[str, Any]:
        """Close the request: run the hook, dispatch the event; return the record as a dict."""
        self._finished(request, record)
        data = record.model_dump()
        if ctx.listening:  # dispatching to nobody still costs LangChain a callback setup
            dispatch_custom_event(ROUTE_EVENT, data, config=ctx.child_config())
        return data

    async def _aemit(
        self, request: RouteRequest, record: RouteRecord, ctx: RunContext
    ) -> dict[str, Any]:
        await self._afinished(request, record)
        data = record.model_dump()
        if ctx.listening:
            await adispatch_custom_event(ROUTE_EVENT, data, config=ctx.child_config())
        return data

    # ---------------------------------------------------------- identification

    @property
    def _llm_type(self) -> str:
        return f"llmrouter-{type(self).__name__}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"router": self.router_name, "models": [s.name for s in self.models]}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="llmrouter",
            ls_model_name=model if isinstance(model, str) else self.router_name,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, (int, float)):
            params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params


def _thread_from(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Adopt ``config["configurable"]["thread_id"]`` (LangGraph's convention).

    With no explicit config, the one inherited from an enclosing runnable counts.
    """
    if config is None:
        config = var_child_runnable_config.get() or {}
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if thread_id is not None and "thread_id" not in kwargs:
        kwargs["thread_id"] = thread_id
    return kwargs


class _Relay:
    """Passes a candidate's stream through, keeping what the record needs.

    Router-owned metadata keys are stripped from the chunks (merging them would
    concatenate model names); the final chunk carries the router's values.
    """

    def __init__(self) -> None:
        self.sent = False
        self.usage: UsageMetadata | None = None
        self.upstream: dict[str, Any] = {}
        self._list_content = False

    def pass_on(self, chunk: BaseMessage) -> ChatGenerationChunk:
        message = (
            chunk if isinstance(chunk, AIMessageChunk) else AIMessageChunk(content=chunk.content)
        )
        metadata = message.response_metadata
        if any(key in metadata for key in _OWNED_KEYS):
            self.upstream.update({k: metadata[k] for k in _OWNED_KEYS if k in metadata})
            message = message.model_copy(
                update={
                    "response_metadata": {k: v for k, v in metadata.items() if k not in _OWNED_KEYS}
                }
            )
        if message.usage_metadata:
            self.usage = add_usage(self.usage, message.usage_metadata)
        if message.chunk_position == "last":
            message = message.model_copy(update={"chunk_position": None})
        self._list_content = isinstance(message.content, list)
        self.sent = True
        return ChatGenerationChunk(message=message)

    def last(self, response_metadata: dict[str, Any]) -> ChatGenerationChunk:
        content: str | list[str | dict[str, Any]] = [] if self._list_content else ""
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=content, response_metadata=response_metadata, chunk_position="last"
            )
        )
