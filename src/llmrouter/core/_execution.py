"""The one execution path every router shares.

An `Execution` carries one request through its ranked candidates: breaker
check, concurrency slot, rate limit, retries with backoff (tenacity), attempt
deadline, fallback to the next candidate (to a larger context window after a
context-length error), and -- for streams -- continuation on the next model
after a mid-stream failure. It fills the `RouteRecord` as it goes and closes
the request exactly once (router hook, custom event), success or failure.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from llmrouter.core._callbacks import RunContext
from llmrouter.core._types import runnable_for
from llmrouter.errors import AllModelsFailedError, StreamInterruptedError
from llmrouter.record import ROUTE_EVENT, Attempt, RouteRecord, Usage
from llmrouter.resilience._classify import ErrorKind, classify_error
from llmrouter.resilience._retry import RetryPolicy
from llmrouter.resilience._timeouts import (
    acall_with_timeout,
    afirst_item,
    call_with_timeout,
    first_item,
)
from llmrouter.spec import ModelSpec

if TYPE_CHECKING:
    from llmrouter.core import BaseRouter
    from llmrouter.core._types import Ranking, RouteRequest

#: Response metadata keys the router owns; a candidate's own values move into the record.
OWNED_KEYS = ("model_name", "route")

CONTINUE_PROMPT = (
    "Your previous answer was cut off. Continue it exactly where it stopped, "
    "without repeating anything already written."
)
"""What the next model is told when it completes an interrupted stream."""


class Execution:
    """One request's way through its candidates (see module docstring)."""

    def __init__(
        self,
        router: BaseRouter,
        request: RouteRequest,
        ranking: Ranking,
        ctx: RunContext,
        kwargs: dict[str, Any],
    ) -> None:
        self.router = router
        self.request = request
        self.ctx = ctx
        self.stop = request.stop
        self.kwargs = kwargs
        self.queue: deque[ModelSpec] = deque(router._eligible(ranking, request.tools))
        self.started = time.perf_counter()
        self.error: BaseException | None = None
        self.record = RouteRecord(
            router=router.router_name,
            router_type=type(router).__name__,
            task=ranking.task,
            task_source=ranking.task_source,
            reason=ranking.reason,
            candidates=[s.name for s in ranking.candidates],
            extra=dict(ranking.extra),
            estimates=dict(ranking.estimated_cost),
        )

    # ----------------------------------------------------------- candidates

    def _next(self) -> ModelSpec | None:
        """The next candidate whose circuit breaker lets a request through."""
        breaker = self.router.circuit_breaker
        while self.queue:
            spec = self.queue.popleft()
            if breaker is None or breaker.allow(spec.name):
                return spec
            self.record.attempts.append(
                Attempt(
                    model=spec.name,
                    ok=False,
                    latency_s=0.0,
                    kind="circuit_open",
                    error_type="CircuitOpen",
                    error="skipped: circuit breaker open after repeated failures",
                )
            )
        return None

    def _policy(self, spec: ModelSpec) -> RetryPolicy:
        return spec.retry or self.router.retry_policy

    def _timeout(self, spec: ModelSpec) -> float | None:
        return spec.attempt_timeout or self.router.timeout

    def _first_token_timeout(self, spec: ModelSpec) -> float | None:
        return spec.first_token_timeout or self.router.first_token_timeout

    def _slot(self, spec: ModelSpec) -> AbstractContextManager[None]:
        limit = spec.limit
        return limit.slot() if limit is not None else nullcontext()

    # -------------------------------------------------------------- outcomes

    def _failed(
        self, spec: ModelSpec, began: float, exc: BaseException, partial: bool = False
    ) -> None:
        self.record.attempts.append(
            Attempt(
                model=spec.name,
                ok=False,
                latency_s=time.perf_counter() - began,
                error_type=type(exc).__name__,
                error=str(exc)[:500],
                kind=classify_error(exc).kind.value,
                partial=partial,
            )
        )

    def _gave_up_on(self, spec: ModelSpec, exc: BaseException) -> None:
        """After ``spec``'s last try failed: breaker bookkeeping and what to try next."""
        self.error = exc
        info = classify_error(exc)
        breaker = self.router.circuit_breaker
        if breaker is not None:
            if info.counts_against_model:
                breaker.record_failure(spec.name)
            else:  # the model answered; the request was at fault
                breaker.record_success(spec.name)
        if info.kind is ErrorKind.CONTEXT_LENGTH:
            window = spec.context_window
            larger = [
                s
                for s in self.queue
                if window is None or s.context_window is None or s.context_window > window
            ]
            self.record.extra["context_fallback"] = [s.name for s in larger]
            self.queue = deque(larger)

    def _succeeded(
        self, spec: ModelSpec, began: float, usage: UsageMetadata | None, upstream: dict[str, Any]
    ) -> None:
        if self.router.circuit_breaker is not None:
            self.router.circuit_breaker.record_success(spec.name)
        now, record = time.perf_counter(), self.record
        record.attempts.append(Attempt(model=spec.name, ok=True, latency_s=now - began))
        record.model = spec.name
        record.latency_s = now - self.started
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

    def _metadata(self, upstream: dict[str, Any], route: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in upstream.items() if k not in OWNED_KEYS}
        return {**kept, "model_name": route["model"], "route": route}

    def _close(self) -> dict[str, Any]:
        """Run the router's hook and emit the record (once per request)."""
        self.router._finished(self.request, self.record)
        data = self.record.model_dump()
        if self.ctx.listening:  # dispatching to nobody still costs a callback setup
            dispatch_custom_event(ROUTE_EVENT, data, config=self.ctx.child_config())
        return data

    async def _aclose(self) -> dict[str, Any]:
        await self.router._afinished(self.request, self.record)
        data = self.record.model_dump()
        if self.ctx.listening:
            await adispatch_custom_event(ROUTE_EVENT, data, config=self.ctx.child_config())
        return data

    def _all_failed(self) -> AllModelsFailedError:
        return AllModelsFailedError(self.record, self.error)

    def _stream_failed(self, relay: Relay) -> Exception:
        """No model left: a typed error that says whether output was already sent."""
        if relay.text and self.error is not None:
            return StreamInterruptedError(self.record, self.error)
        return self._all_failed()

    # ------------------------------------------------------------- generate

    def _invoke(self, spec: ModelSpec, messages: list[BaseMessage]) -> tuple[BaseMessage, float]:
        """One model, with its retry policy, limits and deadline."""
        runnable = runnable_for(spec, self.request.tools)
        config, timeout = self.ctx.child_config(), self._timeout(spec)

        def once() -> tuple[BaseMessage, float]:
            began = time.perf_counter()
            try:
                with self._slot(spec):
                    if spec.rate_limiter is not None:
                        spec.rate_limiter.acquire(blocking=True)
                    message = call_with_timeout(
                        lambda: runnable.invoke(
                            messages, config=config, stop=self.stop, **self.kwargs
                        ),
                        timeout,
                        spec.name,
                    )
            except Exception as exc:
                self._failed(spec, began, exc)
                raise
            return message, began

        try:  # the first try skips tenacity: most calls succeed, and they should be cheap
            return once()
        except Exception as exc:
            first: list[BaseException] = [exc]
        for attempt in self._policy(spec).retrying():
            with attempt:
                if first:  # replay the first failure so the policy counts and waits for it
                    raise first.pop()
                return once()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _ainvoke(
        self, spec: ModelSpec, messages: list[BaseMessage]
    ) -> tuple[BaseMessage, float]:
        runnable = runnable_for(spec, self.request.tools)
        config, timeout = self.ctx.child_config(), self._timeout(spec)

        plain = spec.limit is None and spec.rate_limiter is None and timeout is None

        async def once() -> tuple[BaseMessage, float]:
            began = time.perf_counter()
            try:
                if plain:  # the common case, without wrappers
                    message = await runnable.ainvoke(
                        messages, config=config, stop=self.stop, **self.kwargs
                    )
                else:
                    limit = spec.limit
                    async with limit.aslot() if limit is not None else _anull():
                        if spec.rate_limiter is not None:
                            await spec.rate_limiter.aacquire(blocking=True)
                        call = runnable.ainvoke(
                            messages, config=config, stop=self.stop, **self.kwargs
                        )
                        message = await acall_with_timeout(call, timeout, spec.name)
            except Exception as exc:
                self._failed(spec, began, exc)
                raise
            return message, began

        try:
            return await once()
        except Exception as exc:
            first: list[BaseException] = [exc]
        async for attempt in self._policy(spec).aretrying():
            with attempt:
                if first:
                    raise first.pop()
                return await once()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _answer(self, message: BaseMessage, route: dict[str, Any]) -> ChatResult:
        message.response_metadata = self._metadata(message.response_metadata, route)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def run(self) -> ChatResult:
        messages = self.request.messages
        while (spec := self._next()) is not None:
            try:
                message, began = self._invoke(spec, messages)
            except Exception as exc:
                self._gave_up_on(spec, exc)
                continue
            usage = getattr(message, "usage_metadata", None)
            self._succeeded(spec, began, usage, message.response_metadata)
            self.request.answer = message.text
            return self._answer(message, self._close())
        self._close()
        raise self._all_failed() from self.error

    async def arun(self) -> ChatResult:
        messages = self.request.messages
        while (spec := self._next()) is not None:
            try:
                message, began = await self._ainvoke(spec, messages)
            except Exception as exc:
                self._gave_up_on(spec, exc)
                continue
            usage = getattr(message, "usage_metadata", None)
            self._succeeded(spec, began, usage, message.response_metadata)
            self.request.answer = message.text
            return self._answer(message, await self._aclose())
        await self._aclose()
        raise self._all_failed() from self.error

    # --------------------------------------------------------------- stream

    def _open(
        self, spec: ModelSpec, messages: list[BaseMessage]
    ) -> tuple[Iterator[BaseMessage], BaseMessage | None, float]:
        """Start a stream and get its first chunk, with retries (nothing sent yet)."""
        runnable = runnable_for(spec, self.request.tools)
        config, ttft = self.ctx.child_config(), self._first_token_timeout(spec)
        for attempt in self._policy(spec).retrying():
            with attempt:
                began = time.perf_counter()
                try:
                    if spec.rate_limiter is not None:
                        spec.rate_limiter.acquire(blocking=True)
                    stream = iter(
                        runnable.stream(messages, config=config, stop=self.stop, **self.kwargs)
                    )
                    first = first_item(stream, ttft, spec.name)
                except Exception as exc:
                    self._failed(spec, began, exc)
                    raise
                return stream, first, began
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _aopen(
        self, spec: ModelSpec, messages: list[BaseMessage]
    ) -> tuple[AsyncIterator[BaseMessage], BaseMessage | None, float]:
        runnable = runnable_for(spec, self.request.tools)
        config, ttft = self.ctx.child_config(), self._first_token_timeout(spec)
        async for attempt in self._policy(spec).aretrying():
            with attempt:
                began = time.perf_counter()
                try:
                    if spec.rate_limiter is not None:
                        await spec.rate_limiter.aacquire(blocking=True)
                    stream = aiter(
                        runnable.astream(messages, config=config, stop=self.stop, **self.kwargs)
                    )
                    first = await afirst_item(stream, ttft, spec.name)
                except Exception as exc:
                    self._failed(spec, began, exc)
                    raise
                return stream, first, began
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _interrupted(
        self, spec: ModelSpec, began: float, exc: Exception, relay: Relay
    ) -> list[BaseMessage]:
        """A stream failed after output was sent: continue on the next model, or raise."""
        self._failed(spec, began, exc, partial=True)
        self._gave_up_on(spec, exc)
        if self.router.stream_recovery == "raise" or relay.tool_calls or not relay.text:
            raise StreamInterruptedError(self.record, exc)
        self.record.extra.setdefault("continued", []).append(
            {"from": spec.name, "chars": len(relay.text)}
        )
        return [
            *self.request.messages,
            AIMessage(content=relay.text),
            HumanMessage(content=CONTINUE_PROMPT),
        ]

    def stream(self) -> Iterator[ChatGenerationChunk]:
        self.record.streamed = True
        relay, messages = Relay(), self.request.messages
        closed = False
        try:
            while (spec := self._next()) is not None:
                with self._slot(spec):
                    try:
                        stream, first, began = self._open(spec, messages)
                    except Exception as exc:
                        self._gave_up_on(spec, exc)
                        continue
                    relay.start_model()
                    try:
                        if first is not None:
                            yield relay.pass_on(first)
                        for chunk in stream:
                            yield relay.pass_on(chunk)
                    except Exception as exc:
                        messages = self._interrupted(spec, began, exc, relay)
                        continue
                self._succeeded(spec, began, relay.usage, relay.upstream)
                self.request.answer = relay.text
                closed = True
                yield relay.last(self._metadata(relay.upstream, self._close()))
                return
            closed = True
            self._close()
            raise self._stream_failed(relay) from self.error
        except StreamInterruptedError:
            closed = True
            self._close()
            raise
        finally:
            if not closed:  # the caller stopped reading: the record still counts
                self.record.extra["abandoned"] = True
                self.router._finished(self.request, self.record)

    async def astream(self) -> AsyncIterator[ChatGenerationChunk]:
        self.record.streamed = True
        relay, messages = Relay(), self.request.messages
        closed = False
        try:
            while (spec := self._next()) is not None:
                limit = spec.limit
                async with limit.aslot() if limit is not None else _anull():
                    try:
                        stream, first, began = await self._aopen(spec, messages)
                    except Exception as exc:
                        self._gave_up_on(spec, exc)
                        continue
                    relay.start_model()
                    try:
                        if first is not None:
                            yield relay.pass_on(first)
                        async for chunk in stream:
                            yield relay.pass_on(chunk)
                    except Exception as exc:
                        messages = self._interrupted(spec, began, exc, relay)
                        continue
                self._succeeded(spec, began, relay.usage, relay.upstream)
                self.request.answer = relay.text
                closed = True
                yield relay.last(self._metadata(relay.upstream, await self._aclose()))
                return
            closed = True
            await self._aclose()
            raise self._stream_failed(relay) from self.error
        except StreamInterruptedError:
            closed = True
            await self._aclose()
            raise
        finally:
            if not closed:
                self.record.extra["abandoned"] = True
                self.router._finished(self.request, self.record)


class _anull:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class Relay:
    """Passes candidates' stream chunks through, keeping what the record needs.

    Router-owned metadata keys are stripped from the chunks (merging them would
    concatenate model names); the final chunk carries the router's values.
    """

    def __init__(self) -> None:
        self.text = ""
        self.tool_calls = False
        self.usage: UsageMetadata | None = None
        self.upstream: dict[str, Any] = {}
        self._list_content = False

    def start_model(self) -> None:
        """A (new) model starts streaming: usage and backend metadata are its own."""
        self.usage, self.upstream = None, {}

    def pass_on(self, chunk: BaseMessage) -> ChatGenerationChunk:
        message = (
            chunk if isinstance(chunk, AIMessageChunk) else AIMessageChunk(content=chunk.content)
        )
        metadata = message.response_metadata
        if any(key in metadata for key in OWNED_KEYS):
            self.upstream.update({k: metadata[k] for k in OWNED_KEYS if k in metadata})
            kept = {k: v for k, v in metadata.items() if k not in OWNED_KEYS}
            message = message.model_copy(update={"response_metadata": kept})
        if message.usage_metadata:
            self.usage = add_usage(self.usage, message.usage_metadata)
        if message.chunk_position == "last":
            message = message.model_copy(update={"chunk_position": None})
        self.tool_calls = self.tool_calls or bool(message.tool_call_chunks)
        self.text += message.text
        self._list_content = isinstance(message.content, list)
        return ChatGenerationChunk(message=message)

    def last(self, response_metadata: dict[str, Any]) -> ChatGenerationChunk:
        content: str | list[str | dict[str, Any]] = [] if self._list_content else ""
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=content, response_metadata=response_metadata, chunk_position="last"
            )
        )
