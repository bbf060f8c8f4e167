"""The routing core: a chat model that ranks candidates.

A router implements only :meth:`BaseRouter.rank` (and optionally ``arank``).
Everything else happens once, for every router: request parsing, tool binding,
nesting and LangChain plumbing here; trying candidates, retries, fallbacks,
streaming recovery and the route record in the executor: decisions in
`llmrouter.core._execution`, I/O in the sync and async drivers of
`llmrouter.core._drivers`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal

from langchain_core.caches import BaseCache
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from llmrouter._callbacks import PARENT_KEY, RunContext, with_parent
from llmrouter.core import _drivers
from llmrouter.core._binding import RouterBinding
from llmrouter.core._execution import Execution
from llmrouter.core._keywords import check_call, check_options, normalise_stop
from llmrouter.core._types import TOOLS_KEY, Ranking, RouteRequest, ToolBinding
from llmrouter.errors import ConfigurationError, InvalidRequestError
from llmrouter.record import RouteRecord
from llmrouter.resilience._breaker import DEFAULT_BOARD, CircuitBreaker, MemoryBreakerBoard
from llmrouter.resilience._retry import RetryPolicy
from llmrouter.spec import ModelSpec, explain_validation_error


class BaseRouter(BaseChatModel, ABC):
    """Base class of every router: a `BaseChatModel` that ranks candidate models.

    Subclasses implement :meth:`rank`; the shared executor tries the ranked
    candidates in order, falls back to the next on error, and attaches a
    `RouteRecord` to the response (``response_metadata["route"]``) which is also
    emitted as the custom event ``"llmrouter.route"``.

    The router-level ``temperature``, ``max_tokens`` and ``stop`` are defaults
    passed to whichever model answers; per-call values win.
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", use_attribute_docstrings=True
    )

    models: list[ModelSpec]
    """Candidate models; names must be unique."""
    temperature: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Default sampling temperature passed to the answering model."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Default output token limit passed to the answering model."""
    stop: list[str] | None = None
    """Default stop sequences passed to the answering model (a lone string is one sequence)."""
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds one attempt on one model may take (a model's ``attempt_timeout`` wins)."""
    first_token_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds a stream may take to its first chunk with content: text or a tool
    call, not an empty role chunk (a model's own setting wins)."""
    idle_timeout: float | None = Field(default=60.0, gt=0, allow_inf_nan=False)
    """Seconds a stream may go without a chunk once its answer began (a model's own
    setting wins; ``None``: no limit)."""
    stream_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds a whole streamed attempt may take, first chunk to last (a model's own
    setting wins). ``None``: the attempt timeout (``timeout`` or the model's
    ``attempt_timeout``) bounds it, if there is one."""
    max_retries: int = Field(default=2, ge=0)
    """Retries per model on retryable errors, when ``retry`` is not given."""
    retry: RetryPolicy | None = None
    """Retry policy for models without their own (default: ``max_retries`` retries with
    exponential backoff and jitter, within 30 s)."""
    circuit_breaker: CircuitBreaker | None = Field(default_factory=CircuitBreaker)
    """Skips models that keep failing; ``None`` turns breaking off."""
    state: Any = None
    """Where breakers and budgets keep shared state: a URL (``"memory://"``,
    ``"sqlite:///state.db"``, ``"redis://127.0.0.1:6379/0"``) or a
    `llmrouter.state.SharedState`. ``None``: breakers in this process, spend in
    ``spend_db``. A breaker given its own ``board`` keeps it."""
    stream_recovery: Literal["continue", "raise"] = "continue"
    """After a stream failed mid-answer: ``continue`` on the next model (it gets the
    partial answer to complete), or ``raise`` `StreamInterruptedError`."""
    streaming: bool = False
    """If True, ``invoke`` streams from the answering model under the hood and
    returns the joined answer (the route record says ``streamed``)."""
    cache: BaseCache | bool | None = Field(default=False, exclude=True)
    """Always off for the router itself: a cached router answer would repeat an old
    route record (request id, cost). Use ``response_cache`` to cache the models'
    answers; without it the models use LangChain's cache as configured
    (``set_llm_cache`` or their own ``cache=``), a hit recorded with cost 0 and
    ``extra["cache_hit"]``."""
    response_cache: BaseCache | bool = False
    """Cache the answers of the models this router calls, per model actually chosen
    (the router still ranks; on a hit no model is called, the record says
    ``extra["cache"] == "hit"`` at cost 0, and a stream replays the answer).
    ``True``: the ``state``'s cache (Redis, SQLite, or this process), entries kept a
    day; or any LangChain `BaseCache`, e.g. ``llmrouter.state.RedisResponseCache``
    with its own ``ttl``. While it is on, the models skip LangChain's cache (one
    answer is cached once). See docs/caching.md."""

    _llmrouter_is_router: ClassVar[bool] = True  # ROUTER_MARKER: nested routers share runs

    #: Call keywords the router consumes itself (never passed to models).
    route_keywords: ClassVar[frozenset[str]] = frozenset({"task", "thread_id"})
    #: Call keywords the router reads into ``request.options`` but still passes to models.
    peek_keywords: ClassVar[frozenset[str]] = frozenset()

    _by_name: dict[str, ModelSpec] = PrivateAttr(default_factory=dict)
    _response_store: BaseCache | None = PrivateAttr(default=None)
    _call_keywords: tuple[frozenset[str] | None] | None = PrivateAttr(default=None)
    """Cache of `llmrouter.core._keywords.accepted_keywords` (computed on first need)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _pin_signatures(cls)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigurationError(
                explain_validation_error(exc, type(self).__name__, self._keywords())
            ) from exc

    @classmethod
    def _keywords(cls) -> set[str]:
        """The keywords the constructor takes (a typo is named with the closest)."""
        return set(cls.model_fields)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its settings: unpickling builds the router again (locks, caches
        # and in-memory breaker state are per process).
        return (_rebuild, (type(self), self._init_kwargs()))

    def _init_kwargs(self) -> dict[str, Any]:
        """Constructor keywords that build this router again (for pickling)."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # stop="END" means ["END"]

    @field_validator("cache", mode="before")
    @classmethod
    def _no_router_cache(cls, value: Any) -> bool:
        if value is None or value is False:
            return False
        raise ValueError(
            "a router does not cache its own answers (a cached answer would repeat an old "
            "route record); give the cache to the models instead (set_llm_cache(...) or "
            "their own cache=), and the router records each hit at cost 0"
        )

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

    @model_validator(mode="after")
    def _attach_state(self) -> BaseRouter:
        cache = self.response_cache
        if cache is True:
            from llmrouter.state._backends import response_cache_for

            self._response_store = response_cache_for(self.state)
        elif cache is not False:
            self._response_store = cache
        if self.state is None:
            return self
        from llmrouter.state import open_state

        shared = open_state(self.state)
        breaker = self.circuit_breaker
        if breaker is not None and breaker.board is DEFAULT_BOARD:
            # Not an assignment through pydantic: the field stays as the user set it
            # (pickling rebuilds the router from its settings, state URL included).
            self.__dict__["circuit_breaker"] = replace(breaker, board=shared.breaker_board())
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
    def retry_policy(self) -> RetryPolicy:
        """The policy for models without their own."""
        return self.retry or RetryPolicy.attempts(self.max_retries + 1)

    @property
    def response_store(self) -> BaseCache | None:
        """Where this router caches its models' answers (``None``: nowhere)."""
        return self._response_store

    def health(self) -> dict[str, dict[str, Any]]:
        """Circuit-breaker state per model and per replica of a model with replicas:
        ``state``, ``recent_failures``, ``open_for_s``, ``opens`` (all ``closed`` when
        breaking is off)."""
        breaker = self.circuit_breaker or CircuitBreaker(board=MemoryBreakerBoard())
        names = [n for s in self.models for n in (s.name, *(r.name for r in s.replicas))]
        return breaker.health(list(dict.fromkeys(names)))

    @property
    def router_name(self) -> str:
        """The name used in route records (``name=`` or the class name)."""
        return self.name or type(self).__name__

    # ------------------------------------------------------------ tool binding

    def bind(self, **kwargs: Any) -> RouterBinding:
        """Bind call keywords (``task=``, ``max_tokens=``, ...) to the router.

        The result is a `RouterBinding`: unlike a plain `RunnableBinding`, its
        ``bind_tools`` and ``with_structured_output`` keep the bound keywords, so
        ``create_agent(router.bind(task="x"), tools)`` still routes by task.
        """
        return RouterBinding(bound=self, kwargs=kwargs, config={})

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

    # ------------------------------------------------------- request plumbing

    def _request(
        self, messages: list[BaseMessage], ctx: RunContext, kwargs: dict[str, Any]
    ) -> tuple[RouteRequest, dict[str, Any]]:
        """Split router keywords from model keywords and read the task."""
        metadata = ctx.metadata
        tools = kwargs.pop(TOOLS_KEY, None)
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in self.route_keywords}
        check_options(options, metadata, self.route_keywords)
        check_call(self, kwargs)  # caller mistakes: refused before any model is tried
        task, source = options.pop("task", None), "explicit"
        if task is None and metadata.get("task") is not None:
            task, source = str(metadata["task"]), "config"
        thread_id = options.pop("thread_id", None) or metadata.get("thread_id")
        for key, default in (("temperature", self.temperature), ("max_tokens", self.max_tokens)):
            if default is not None:
                kwargs.setdefault(key, default)
        options.update({k: kwargs[k] for k in self.peek_keywords if kwargs.get(k) is not None})
        request = RouteRequest(
            messages=messages,
            task=task,
            task_source=source if task is not None else None,
            thread_id=str(thread_id) if thread_id is not None else None,
            options=options,
            metadata=metadata,
            tools=tools,
            model_kwargs=kwargs,
        )
        return request, kwargs

    def on_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        """Hook called once per request after its last attempt: answered, failed or
        abandoned mid-stream (``record.extra["abandoned"]``).

        Override it to learn from results or persist them (experiment records,
        spend, observed latency). The record of a failed request has
        ``model=None`` and every failed attempt; ``request.answer`` holds the
        answer's text. It runs on the caller's thread before the response is
        returned, so keep it quick; an exception in it reaches the caller.
        """

    async def aon_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        """`on_finish` for async calls; the default runs `on_finish`. Override it when
        the hook does I/O that should not block the event loop."""
        self.on_finish(request, record)

    # ------------------------------------------------------------ conveniences

    def route(self, task: str, prompt: Any, **kwargs: Any) -> AIMessage:
        """Seed-style convenience: ``route(task, prompt)`` is ``invoke(prompt, task=task)``."""
        return self.invoke(prompt, task=task, **kwargs)

    async def aroute(self, task: str, prompt: Any, **kwargs: Any) -> AIMessage:
        """Async `route`."""
        return await self.ainvoke(prompt, task=task, **kwargs)

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
        # the answering model streams into the router's run (core._calls).
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
        # what BaseChatModel returns, without its deprecated dict() detour (hot path)
        return {**self._identifying_params, "_type": self._llm_type, "stop": stop, **kwargs}

    def _prepare(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> tuple[RouteRequest, RunContext, dict[str, Any]]:
        _check_messages(messages)
        ctx = RunContext(run_manager, kwargs.pop(PARENT_KEY, None))
        request, kwargs = self._request(messages, ctx, kwargs)
        request.stop = self.stop if stop is None else normalise_stop(stop)
        return request, ctx, kwargs

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = self._stream(messages, stop, run_manager, **kwargs)
            return generate_from_stream(_reported(chunks, run_manager))
        request, ctx, kwargs = self._prepare(messages, stop, run_manager, kwargs)
        return _drivers.run(Execution(self, request, self.rank(request), ctx, kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = self._astream(messages, stop, run_manager, **kwargs)
            return await agenerate_from_stream(_areported(chunks, run_manager))
        request, ctx, kwargs = self._prepare(messages, stop, run_manager, kwargs)
        ranking = await self.arank(request)
        return await _drivers.arun(Execution(self, request, ranking, ctx, kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request, ctx, kwargs = self._prepare(messages, stop, run_manager, kwargs)
        yield from _drivers.stream(
            Execution(self, request, self.rank(request), ctx, kwargs, streamed=True)
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request, ctx, kwargs = self._prepare(messages, stop, run_manager, kwargs)
        ranking = await self.arank(request)
        async for chunk in _drivers.astream(
            Execution(self, request, ranking, ctx, kwargs, streamed=True)
        ):
            yield chunk

    def _convert_input(self, model_input: LanguageModelInput) -> PromptValue:
        if isinstance(model_input, (bytes, bytearray)):
            try:
                model_input = bytes(model_input).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRequestError(
                    f"the input is bytes that are not UTF-8 ({exc.reason} at byte {exc.start}); "
                    "decode it yourself (e.g. data.decode('latin-1')) and pass a str"
                ) from None
        try:
            return super()._convert_input(model_input)
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise InvalidRequestError(
                f"cannot read a {type(model_input).__name__} as chat input ({exc}); pass a "
                "str, a list of messages, or a PromptValue"
            ) from exc

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


def _rebuild(cls: type[BaseRouter], kwargs: dict[str, Any]) -> BaseRouter:
    return cls(**kwargs)


def _reported(
    chunks: Iterator[ChatGenerationChunk], run_manager: CallbackManagerForLLMRun | None
) -> Iterator[ChatGenerationChunk]:
    """Stream-backed ``invoke``: the router's run reports the tokens (models have no run)."""
    for chunk in chunks:
        if run_manager is not None:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk


async def _areported(
    chunks: AsyncIterator[ChatGenerationChunk],
    run_manager: AsyncCallbackManagerForLLMRun | None,
) -> AsyncIterator[ChatGenerationChunk]:
    async for chunk in chunks:
        if run_manager is not None:
            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk


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


def _check_messages(messages: list[BaseMessage]) -> None:
    """Refuse requests every model would refuse, before trying any."""
    if not messages:
        raise InvalidRequestError("the request has no messages; pass at least one message")
    if all(not m.content and not getattr(m, "tool_calls", None) for m in messages):
        raise InvalidRequestError(
            "every message of the request is empty; give the model something to answer"
        )
    for message in messages:
        if isinstance(message.content, str):
            try:
                message.content.encode("utf-8")
            except UnicodeEncodeError as exc:  # lone surrogates: no model can read them
                raise InvalidRequestError(
                    f"a {message.type} message holds text that is not valid Unicode "
                    f"({exc.reason} at index {exc.start}); clean it, e.g. "
                    "text.encode('utf-8', 'replace').decode()"
                ) from None


def _pin_signatures(cls: type) -> None:
    """Pin ``_generate``/``_agenerate``'s signatures: LangChain inspects them on every
    call (does it take ``run_manager``?), and a pinned ``__signature__`` turns ~8 µs of
    `inspect` work per routed call into a lookup."""
    for name in ("_generate", "_agenerate"):
        method = cls.__dict__.get(name)
        if callable(method) and "__signature__" not in vars(method):
            method.__signature__ = inspect.signature(method)


_pin_signatures(BaseRouter)
