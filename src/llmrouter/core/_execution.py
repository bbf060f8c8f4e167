"""The executor's decisions, written once for every router and both worlds.

An `Execution` carries one request through its ranked candidates. It only
decides -- which model next (breaker check, context-window fallback), retry
after how long or give up (the model's tenacity policy), what the route record
says, which error to raise -- and answers each question with an action: a
`Lookup` ("look this model's answer up in the response cache"), a `Call`
("call this model once, within this deadline") or a `Sleep`. The drivers
in `llmrouter.core._drivers` perform those actions, one sync and one async, and
report back (`Execution.failed`, `Execution.answered`, ...). So sync and async
cannot drift: neither holds a decision.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from llmrouter._callbacks import RunContext
from llmrouter._redact import redact, secrets_of
from llmrouter._tokens import TokenCounter
from llmrouter.core._cache import Found, Lookup, Store, cache_key, replay, semantic_key
from llmrouter.core._calls import ModelCall
from llmrouter.core._relay import OWNED_KEYS, Relay
from llmrouter.core._types import Ranking, RouteRequest, RouterHost, runnable_for
from llmrouter.errors import (
    AllModelsFailedError,
    EmptyStreamError,
    NoEligibleModelError,
    StreamInterruptedError,
    TokenLimitError,
)
from llmrouter.record import Attempt, RouteRecord, Usage
from llmrouter.resilience import ErrorKind, RetryPolicy, classify_error
from llmrouter.resilience._balance import Balancer
from llmrouter.resilience._retry import RetryState
from llmrouter.resilience._timeouts import StreamDeadlines
from llmrouter.resilience._token_limits import DEFAULT_OUTPUT_TOKENS
from llmrouter.spec import ModelSpec

CONTINUE_PROMPT = (
    "Your previous answer was cut off. Continue it exactly where it stopped, "
    "without repeating anything already written."
)
"""What the next model is told when it completes an interrupted stream."""


UNBOUNDED = StreamDeadlines()
"""No stream deadline at all."""

_COUNTER = TokenCounter()
"""Counts prompts for token limits (a local model with its own tokenizer, else the estimate)."""


@dataclass(frozen=True)
class Call:
    """Call ``spec`` once with ``messages``: the answer within ``deadline`` seconds (a
    stream: its chunks within ``stream``), holding a slot of ``spec.limit`` and a token
    of ``spec.rate_limiter`` when the spec has them."""

    spec: ModelSpec
    model: ModelCall
    """How to call it: inside the router's run (see `llmrouter.core._calls`)."""
    messages: list[BaseMessage]
    deadline: float | None
    """Seconds for a whole answer (``invoke``; ``None`` for a stream)."""
    stream: StreamDeadlines = UNBOUNDED
    """A stream's deadlines: first content chunk, between chunks, whole stream."""
    balancer: Balancer | None = None
    """For a replica (``spec``) of a group: the group's, which counts calls in flight."""
    tokens: int = 0
    """Tokens to take from ``spec.token_limiter`` first (the call's estimate), if it has one."""

    @property
    def plain(self) -> bool:
        """No limit, rate or token limiter, deadline or balancer: the driver calls the
        model directly."""
        spec = self.spec
        return (
            spec.limit is None
            and spec.rate_limiter is None
            and spec.token_limiter is None
            and self.deadline is None
            and self.balancer is None
        )


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` before the next try of the same model (retry backoff)."""

    seconds: float


class Execution:
    """One request's way through its candidates (see the module docstring).

    A driver loops ``while (step := execution.next()) is not None``, performs the
    step, and reports the outcome; then `finish` or `abandon` closes the record.
    """

    def __init__(
        self,
        host: RouterHost,
        request: RouteRequest,
        ranking: Ranking,
        ctx: RunContext,
        kwargs: dict[str, Any],
        *,
        streamed: bool = False,
    ) -> None:
        self.host = host
        self.request = request
        self.ctx = ctx
        self.stop = request.stop
        self.kwargs = kwargs
        self.relay = Relay()
        self.queue: deque[ModelSpec] = deque(self._eligible(ranking))
        self.messages = request.messages
        self.started = time.perf_counter()
        self.error: BaseException | None = None
        self.closed = False
        decided = ranking.task is not None or ranking.task_source is not None
        self.record = RouteRecord(
            router=host.router_name,
            router_type=type(host).__name__,
            task=ranking.task if decided else request.task,
            task_source=ranking.task_source if decided else request.task_source,
            reason=ranking.reason,
            candidates=[s.name for s in ranking.candidates],
            extra=dict(ranking.extra),
            estimates=dict(ranking.estimated_cost),
            streamed=streamed,
        )
        self._spec: ModelSpec | None = None  # the model being tried
        self._replica: ModelSpec | None = None  # where it is tried: itself, or a replica
        self._tried: frozenset[str] = frozenset()  # its replicas that failed (and were counted)
        self._full: frozenset[str] = frozenset()  # its replicas out of tokens since the last wait
        self._model: ModelCall | None = None  # how to call it (built once per replica)
        self._tries: RetryState | None = None  # its retry state, after its first failure
        self._first_try = 0.0  # time.monotonic() of its first try (retry deadlines count from it)
        self._began = 0.0  # time.perf_counter() of the current try
        self._sleep: float | None = None
        self._message: BaseMessage | None = None
        self._done = False
        self._interrupted: StreamInterruptedError | None = None
        self._lookup: Lookup | None = None  # the current model's cache entry, if cached
        self.to_cache: Store | None = None
        """An answer for the response cache: the driver writes it when the request closes."""

    # ------------------------------------------------------------- decisions

    def next(self) -> Lookup | Call | Sleep | None:
        """What to do next; ``None`` when the request is answered or nothing is left."""
        if self._done:
            return None
        if self._sleep is not None:
            sleep, self._sleep = Sleep(self._sleep), None
            return sleep
        spec, model = self._spec, self._model
        if spec is None or model is None:
            picked = self._next_candidate()
            if picked is None:
                return None
            spec, replica = self._spec, self._replica = picked
            self._tried = self._full = frozenset()
            model = self._model = self._call_for(replica)
            self._tries = None
            self._first_try = time.monotonic()
            self._began = time.perf_counter()
            lookup = self._lookup = self._cached(spec, model)
            if lookup is not None:
                return lookup
        self._began = time.perf_counter()
        host, replica = self.host, self._replica or spec
        balancer = spec.balancer if spec.replicas else None
        tokens = self._estimate(replica) if replica.token_limiter is not None else 0

        def setting(name: str) -> float | None:  # the replica's, the model's, the router's
            value: float | None = getattr(replica, name) or getattr(spec, name)
            return value or getattr(host, name if name != "attempt_timeout" else "timeout")

        if self.record.streamed:
            # The attempt timeout bounds a whole streamed attempt unless stream_timeout says
            # otherwise; empty chunks do not meet the first-chunk deadline (see Relay).
            deadlines = StreamDeadlines(
                first=setting("first_token_timeout"),
                idle=setting("idle_timeout"),
                total=setting("stream_timeout") or setting("attempt_timeout"),
            )
            return Call(replica, model, self.messages, None, deadlines, balancer, tokens)
        timeout = setting("attempt_timeout")
        return Call(replica, model, self.messages, timeout, balancer=balancer, tokens=tokens)

    def looked_up(self, lookup: Lookup, found: Found | None) -> list[AIMessageChunk]:
        """The cache answered ``found`` (``None``: a miss, call the model). A hit
        answers the request: in a stream, the driver passes the returned chunks on."""
        if found is None:
            assert self._model is not None
            self._model = self._model.uncached()
            return []
        self._lookup = None  # nothing to write back
        message, details = found
        self.record.extra.update(details)
        message = message.model_copy(update={"usage_metadata": None, "id": None})
        self._message = message
        self._succeeded(lookup.spec, None, message.response_metadata, message.text, hit=True)
        if not self.record.streamed:
            return []
        self.relay.start_model()
        return replay(message)

    def failed(self, call: Call, exc: BaseException) -> None:
        """The try failed before any output reached the caller: another replica at once,
        or retry, or move on."""
        spec = self._spec or call.spec
        if isinstance(exc, TokenLimitError):  # nothing was taken, nor asked of the model
            self._out_of_tokens(spec, exc)
            return
        self._settle_tokens(call, None, failed=True)
        self._attempt_failed(spec, exc)
        if spec.replicas and self._fail_over(spec, exc):
            return
        policy: RetryPolicy = spec.retry or self.host.retry_policy
        self._tries = policy.after_failure(self._tries, exc, self._first_try)
        if self._tries.sleep is None:
            self._give_up(spec, exc)
        else:
            self._sleep = self._tries.sleep

    def answered(self, call: Call, message: BaseMessage) -> None:
        """The model answered (a whole message)."""
        self._message = message
        usage = getattr(message, "usage_metadata", None)
        self._settle_tokens(call, usage)
        self._succeeded(self._spec or call.spec, usage, message.response_metadata, message.text)
        if self._lookup is not None and isinstance(message, AIMessage):
            self.to_cache = Store(self._lookup, message)

    def streaming(self, call: Call) -> None:
        """The model's stream opened: what it sends now is its own."""
        self.relay.start_model()

    def streamed_out(self, call: Call) -> None:
        """The model's stream ended normally -- or without a single chunk: a failed try."""
        relay = self.relay
        if not relay.received:
            self.failed(call, EmptyStreamError(call.spec.name))
            return
        self._settle_tokens(call, relay.usage)
        self._succeeded(self._spec or call.spec, relay.usage, relay.upstream, relay.text)
        if self._lookup is not None and relay.kept:
            self.to_cache = Store(self._lookup, relay.joined())

    def interrupted(self, call: Call, exc: BaseException) -> bool:
        """A stream failed. Before the model sent part of the answer (empty chunks do
        not count) it is a failed try: retry or move on (True). After: True to continue
        on the next model (told to complete the partial answer); False: stop and raise."""
        relay = self.relay
        if not relay.answering:
            self.failed(call, exc)
            return True
        spec = self._spec or call.spec
        self._attempt_failed(spec, exc, partial=True)
        self._give_up(spec, exc)
        if self.host.stream_recovery == "raise" or relay.tool_calls or not relay.text:
            self._interrupted = StreamInterruptedError(self.record, exc)
            self._done = True
            return False
        self.record.extra.setdefault("continued", []).append(
            {"from": call.spec.name, "chars": len(relay.text)}
        )
        self.messages = [
            *self.request.messages,
            AIMessage(content=relay.text),
            HumanMessage(content=CONTINUE_PROMPT),
        ]
        return True

    # ----------------------------------------------------------------- close

    def finish(self) -> None:
        """Close the record; the driver then runs the finish hook and emits the event."""
        self.closed = True

    def abandon(self) -> None:
        """The caller stopped reading a stream: the record still counts."""
        self.closed = True
        self.record.extra["abandoned"] = True

    def result(self, route: dict[str, Any]) -> ChatResult:
        """The answer with the route in its metadata, or the typed error."""
        message = self._message
        if message is None:
            raise self._failure() from self.error
        # a copy: the model may have cached this very object (its cache would serve our route)
        metadata = _metadata(message.response_metadata, route)
        message = message.model_copy(update={"response_metadata": metadata})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def last_chunk(self, route: dict[str, Any]) -> ChatGenerationChunk:
        """A stream's closing chunk with the route, or the typed error."""
        if self.record.model is None:
            raise self._failure() from self.error
        return self.relay.last(_metadata(self.relay.upstream, route))

    # ------------------------------------------------------------- internals

    def _cached(self, spec: ModelSpec, model: ModelCall) -> Lookup | None:
        """The cache step before calling ``spec``, when its answer may be cached: the
        router has a response cache, the model is a plain chat model (not a chain, not
        a router, which would repeat an old record) and is asked the request itself
        (not to complete another model's broken stream)."""
        cache = self.host.response_store
        if cache is None or model.model is None or model.router:
            return None
        if self.messages is not self.request.messages:
            return None
        if spec.replicas:  # one entry for the model, whichever replica answers
            model = ModelCall(runnable_for(spec, self.request.tools), self.ctx)
        semantic = bool(getattr(cache, "semantic", False))
        if semantic:
            scope = (self.host.router_name, self.record.task)
            key = semantic_key(spec, model, self.messages, self.stop, self.kwargs, scope)
            if key is None:  # nothing to match by meaning: not cached
                return None
        else:
            key = cache_key(spec, model, self.messages, self.stop, self.kwargs)
        if self.record.streamed:
            self.relay.kept = []
        return Lookup(spec, cache, *key, semantic=semantic)

    def _eligible(self, ranking: Ranking) -> list[ModelSpec]:
        name = self.host.router_name
        candidates = ranking.candidates
        if self.request.tools is not None:
            candidates = [s for s in candidates if s.supports_tools]
            if not candidates:
                raise NoEligibleModelError(
                    f"{name}: tools are bound but no candidate supports tool calling",
                    {s.name: "chat model has no bind_tools" for s in ranking.candidates},
                )
        if not candidates:
            raise NoEligibleModelError(f"{name}: the router ranked no candidate")
        return candidates

    def _next_candidate(self) -> tuple[ModelSpec, ModelSpec] | None:
        """The next candidate whose circuit breaker lets a request through, and where to
        call it: itself, or the first replica (in its balance's order) whose breaker does."""
        breaker = self.host.circuit_breaker
        while self.queue:
            spec = self.queue.popleft()
            if spec.replicas:
                replica = self._replica_of(spec, frozenset())
                if replica is not None:
                    return spec, replica
                why = "skipped: the circuit breakers of all its replicas are open"
            elif breaker is None or breaker.allow(spec.name):
                return spec, spec
            else:
                why = "skipped: circuit breaker open after repeated failures"
            self.record.attempts.append(
                Attempt(
                    model=spec.name,
                    ok=False,
                    latency_s=0.0,
                    kind="circuit_open",
                    error_type="CircuitOpen",
                    error=why,
                )
            )
        return None

    def _replica_of(self, spec: ModelSpec, tried: frozenset[str]) -> ModelSpec | None:
        """The first replica of ``spec`` not in ``tried`` whose breaker lets a call through."""
        breaker = self.host.circuit_breaker
        for replica in spec.balancer.order(spec.replicas):
            if replica.name not in tried and (breaker is None or breaker.allow(replica.name)):
                return replica
        return None

    def _call_for(self, replica: ModelSpec) -> ModelCall:
        request = self.request
        task = request.task if request.task_source == "explicit" else None
        return ModelCall(runnable_for(replica, request.tools), self.ctx, task)

    def _fail_over(self, spec: ModelSpec, exc: BaseException) -> bool:
        """After a replica of ``spec`` failed: count it against the replica and switch
        to the next one (True), unless the request was at fault or none is left."""
        if not classify_error(exc).counts_against_model:
            return False  # another replica would refuse the same request
        replica = self._replica or spec
        if self.host.circuit_breaker is not None:
            self.host.circuit_breaker.record_failure(replica.name)
        self._tried = self._tried | {replica.name}
        other = self._replica_of(spec, self._tried)
        if other is None:
            return False
        model = self._call_for(other)
        self._replica, self._model = other, model.uncached() if self._lookup else model
        return True

    def _estimate(self, replica: ModelSpec) -> int:
        """A call's tokens before it is made: the prompt's, plus the most it may write."""
        prompt = _COUNTER.count(replica, self.messages).tokens
        most = self.kwargs.get("max_tokens")
        return prompt + (most if isinstance(most, int) and most > 0 else DEFAULT_OUTPUT_TOKENS)

    def _settle_tokens(self, call: Call, usage: UsageMetadata | None, failed: bool = False) -> None:
        """Settle the tokens ``call`` took to what it used: all back when it failed
        before answering, the difference when it reported usage, else its estimate."""
        limiter = call.spec.token_limiter
        if limiter is None or not call.tokens:
            return
        if failed:
            limiter.adjust(-call.tokens)
        elif usage is not None and usage.get("total_tokens"):
            limiter.adjust(int(usage["total_tokens"]) - call.tokens)

    def _out_of_tokens(self, spec: ModelSpec, exc: TokenLimitError) -> None:
        """``spec`` (or the replica tried) has no room for the request's tokens: another
        replica with room, else wait for room when the wait fits the attempt's deadline,
        else the next model. Not a failure of the model: its breaker is not told."""
        replica = self._replica or spec
        self._attempt_failed(spec, exc)
        if spec.replicas:
            self._full = self._full | {replica.name}
            other = self._replica_of(spec, self._tried | self._full)
            if other is not None:
                model = self._call_for(other)
                self._replica, self._model = other, model.uncached() if self._lookup else model
                return
        timeout = replica.attempt_timeout or spec.attempt_timeout or self.host.timeout
        waited = time.monotonic() - self._first_try
        if math.isfinite(exc.wait) and (timeout is None or waited + exc.wait <= timeout):
            self._sleep, self._full = exc.wait, frozenset()
            return
        self.error, self._spec, self._model = exc, None, None

    def _replica_name(self, spec: ModelSpec) -> str | None:
        replica = self._replica
        return replica.name if spec.replicas and replica is not None else None

    def _attempt_failed(self, spec: ModelSpec, exc: BaseException, partial: bool = False) -> None:
        replica = self._replica or spec
        self.record.attempts.append(
            Attempt(
                model=spec.name,
                replica=self._replica_name(spec),
                ok=False,
                latency_s=time.perf_counter() - self._began,
                error_type=type(exc).__name__,
                error=redact(str(exc), secrets_of(replica.chat_model))[:500],
                kind=_kind(exc),
                partial=partial,
            )
        )

    def _give_up(self, spec: ModelSpec, exc: BaseException) -> None:
        """After ``spec``'s last try failed: breaker bookkeeping and what to try next."""
        replica = self._replica or spec
        self.error, self._spec, self._model = exc, None, None
        info = classify_error(exc)
        breaker = self.host.circuit_breaker
        if breaker is not None:
            if not info.counts_against_model:  # the model answered; the request was at fault
                breaker.record_success(replica.name)
            elif replica.name not in self._tried:  # a replica failed over was counted then
                breaker.record_failure(replica.name)
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
        self,
        spec: ModelSpec,
        usage: UsageMetadata | None,
        upstream: dict[str, Any],
        text: str,
        *,
        hit: bool = False,
    ) -> None:
        self._done = True
        replica, now, record = self._replica or spec, time.perf_counter(), self.record
        if self.host.circuit_breaker is not None and not hit:  # a hit did not ask the model
            self.host.circuit_breaker.record_success(replica.name)
        kind, name = "cache_hit" if hit else None, None if hit else self._replica_name(spec)
        record.attempts.append(
            Attempt(model=spec.name, replica=name, ok=True, latency_s=now - self._began, kind=kind)
        )
        if name is not None:
            record.extra["replica"] = name
            spec.balancer.observed(name, now - self._began)
        record.model = spec.name
        record.latency_s = now - self.started
        record.estimated_cost_usd = record.estimates.get(spec.name)
        if self._lookup is not None or hit:
            record.extra["cache"] = "hit" if hit else "miss"
        if hit:
            record.cost_usd = 0.0
            record.extra["cache_hit"] = True
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
            if usage.get("total_cost") == 0:  # LangChain's mark of an answer from its cache
                record.cost_usd = 0.0
                record.extra["cache_hit"] = True
        self.request.answer = text

    def _failure(self) -> Exception:
        """No model left: a typed error that says whether output was already sent."""
        if self._interrupted is not None:
            return self._interrupted
        if self.record.streamed and self.relay.text and self.error is not None:
            return StreamInterruptedError(self.record, self.error)
        return AllModelsFailedError(self.record, self.error)


def _kind(exc: BaseException) -> str:
    """An attempt's kind: how the executor treated its error (see `Attempt.kind`)."""
    if isinstance(exc, TokenLimitError):
        return "rate_limited"  # the model was not asked
    return classify_error(exc).kind.value


def _metadata(upstream: dict[str, Any], route: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in upstream.items() if k not in OWNED_KEYS}
    return {**kept, "model_name": route["model"], "route": route}
