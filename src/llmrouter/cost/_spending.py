"""Budget accounting of `CostAwareRouter` calls: reserve, stop overruns, settle once.

Each call reserves its estimate when ranked and settles it to the actual cost when
it ends: in the router's finish hook, or -- for a call cancelled, interrupted or
abandoned before that hook -- in the call wrapper (``_generate`` & co.), at once.
Models seen to cost more than estimated get larger reservations (a learned
per-model overrun factor); a stream whose output passes its reservation is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from contextvars import ContextVar
from typing import Any, Protocol, cast

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from llmrouter._tokens import estimate_tokens
from llmrouter.core import Ranking, RouteRequest
from llmrouter.cost._budget import Admission, BudgetGuard
from llmrouter.cost._options import call_option
from llmrouter.record import RouteRecord
from llmrouter.spec import ModelSpec

__all__ = ["Spending"]

logger = logging.getLogger("llmrouter")

_OVERRUN_DECAY = 0.3
"""How fast a model's learned overrun factor falls back towards 1 (it rises at once)."""

_FINISH_WAIT_S = 5.0
"""Longest a stopped async stream waits for the executor to close its record."""


class _Owner(Protocol):
    """The router a call belongs to (named in logs)."""

    @property
    def router_name(self) -> str: ...

    @property
    def spend_db(self) -> object: ...


class _Call:
    """One request's budget bookkeeping, shared by the call wrapper, `rank` and `on_finish`.

    The wrapper (``_generate`` & co.) creates it and makes it visible to `rank`
    through ``_CALL``; `rank` fills in the reservation; whichever of `on_finish`
    and the wrapper's ``finally`` claims it first settles it, so a call that
    ends in any way -- answered, failed, abandoned, cancelled -- settles once, at once.
    """

    def __init__(self, owner: _Owner, *, streamed: bool) -> None:
        self.owner = owner
        self.streamed = streamed
        self.key: int | None = None
        """``id(request)`` once ranked (the key in the router's open calls)."""
        self.reservation: int | None = None
        self.reserved = 0.0
        self.user: str | None = None
        self.estimates: dict[str, float] = {}
        """Raw estimates of the candidates the budget allowed."""
        self.prices: list[tuple[float, float]] = []
        """(prompt cost, USD per output token) of each allowed candidate."""
        self.chars = 0
        self.stopped: dict[str, Any] | None = None
        self.record: RouteRecord | None = None
        self.finished: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        """An async stream's event, set (from any thread) when `on_finish` has the record."""
        self._lock = threading.Lock()
        self._closed = False

    def claim(self) -> bool:
        """True for the first caller only: it settles the reservation."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            return True

    @property
    def closed(self) -> bool:
        return self._closed

    def output_cost(self, tokens: int) -> float:
        """Most the streamed output so far can have cost, on any allowed candidate."""
        return max((prompt + tokens * per_token for prompt, per_token in self.prices), default=0.0)

    def overran(self, chunk: ChatGenerationChunk) -> bool:
        """Count a streamed chunk; True once the output has cost more than the reservation."""
        if not self.prices or self.reserved <= 0:
            return False
        self.chars += len(chunk.text)
        tokens = estimate_tokens("x" * self.chars) if self.chars else 0
        spent = self.output_cost(tokens)
        if spent <= self.reserved:
            return False
        self.stopped = {
            "reason": "output reached the reservation (the model ignores max_tokens?)",
            "output_tokens": tokens,
            "reserved_usd": self.reserved,
            "charged_usd": spent,
        }
        return True


_CALL: ContextVar[_Call | None] = ContextVar("llmrouter_cost_call", default=None)


class Spending:
    """A router's budget accounting: its guard, learned overruns and open calls."""

    def __init__(self, guard: BudgetGuard) -> None:
        self.guard = guard
        self.overrun: dict[str, float] = {}
        """Model -> learned actual/estimate factor (> 1: it answers past its max_tokens)."""
        self.calls: dict[int, _Call] = {}
        """Open calls of this process, by ``id(request)``."""
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ ranking

    def admit(
        self,
        owner: _Owner,
        request: RouteRequest,
        ranked: Sequence[tuple[ModelSpec, float]],
        extra: dict[str, Any],
    ) -> Admission:
        """Reserve for the ranked (spec, estimate) candidates the budgets allow; report
        it in ``extra["budget"]`` and hand the reservation to the call's wrapper."""
        user = call_option(request, "user")
        who = str(user) if user is not None else None
        overrun = dict(self.overrun)
        admission = self.guard.admit(
            [(spec.name, estimate * overrun.get(spec.name, 1.0)) for spec, estimate in ranked],
            user=who,
        )
        allowed = [(spec, estimate) for spec, estimate in ranked if spec.name in admission.allowed]
        extra["budget"] = {
            "user": who,
            "reserved_usd": admission.reserved_usd,
            "reservation": admission.reservation,
            "limits": [s.budget.describe(s.user) for s in admission.statuses],
            "spent_usd": [round(s.spent_usd, 12) for s in admission.statuses],
            "in_flight_usd": [round(s.reserved_usd, 12) for s in admission.statuses],
        }
        learned = {spec.name: overrun[spec.name] for spec, _ in allowed if spec.name in overrun}
        if learned:
            extra["budget"]["overrun_factor"] = learned
        self._opened(owner, request, admission, who, allowed, extra["prompt_tokens"])
        return admission

    async def rank_off_loop(
        self, rank: Callable[[RouteRequest], Ranking], request: RouteRequest
    ) -> Ranking:
        """``rank`` in a thread (SQLite I/O off the loop); if the caller gives up
        meanwhile, free what it reserves."""
        ranking = asyncio.ensure_future(asyncio.to_thread(rank, request))
        try:
            return await asyncio.shield(ranking)
        except asyncio.CancelledError:
            call = _CALL.get()
            if call is not None:
                ranking.add_done_callback(lambda _: self._release_unused(call))
            raise

    def _opened(
        self,
        owner: _Owner,
        request: RouteRequest,
        admission: Admission,
        user: str | None,
        allowed: list[tuple[ModelSpec, float]],
        prompt_tokens: dict[str, int],
    ) -> None:
        """Hand the reservation to the call wrapper's `_Call` (when this call has one)."""
        call = _CALL.get()
        if call is None or call.owner is not owner or call.key is not None:
            return
        reservation = admission.reservation
        call.reservation, call.reserved, call.user = reservation, admission.reserved_usd, user
        call.estimates = {spec.name: estimate for spec, estimate in allowed}
        call.prices = [
            (spec.cost(prompt_tokens[spec.name], 0), spec.cost(0, 1)) for spec, _ in allowed
        ]
        call.key = id(request)
        with self.lock:
            self.calls[call.key] = call
            # an overrun learned while this call was being admitted: cover it now
            needed = _needed(call, self.overrun)
        if needed is not None and reservation is not None:
            call.reserved = needed
            self.guard.resize([(reservation, needed)])

    def _release_unused(self, call: _Call) -> None:
        """Ranking finished after its caller was cancelled: nothing was called."""
        if call.key is None or not call.claim():
            return
        with self.lock:
            self.calls.pop(call.key, None)
        asyncio.get_running_loop().run_in_executor(None, self.guard.release, call.reservation)

    # -------------------------------------------- call wrappers (settle promptly)

    @contextlib.contextmanager
    def call(self, owner: _Owner) -> Iterator[None]:
        """Around a router's ``_generate``: settles the call if its finish hook did not."""
        call = _Call(owner, streamed=False)
        token = _CALL.set(call)
        try:
            yield
        finally:
            _CALL.reset(token)
            self._settle_unfinished(call)

    @contextlib.asynccontextmanager
    async def acall(self, owner: _Owner) -> AsyncIterator[None]:
        """Around a router's ``_agenerate``: settles the call if its finish hook did not."""
        call = _Call(owner, streamed=False)
        token = _CALL.set(call)
        try:
            yield
        finally:
            _CALL.reset(token)
            if call.key is not None and not call.closed:
                await asyncio.to_thread(self._settle_unfinished, call)

    def stream(
        self, owner: _Owner, stream: Iterator[ChatGenerationChunk]
    ) -> Iterator[ChatGenerationChunk]:
        """A router's ``_stream``, stopped once its output passes the reservation."""
        call = _Call(owner, streamed=True)
        chunks = cast(Generator[ChatGenerationChunk], stream)
        try:
            while True:
                token = _CALL.set(call)
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                finally:
                    _CALL.reset(token)
                yield chunk
                if call.overran(chunk):
                    chunks.close()  # the executor closes the record; on_finish charges it
                    if call.record is not None:
                        yield _stopped_chunk(call.record)
                    return
        finally:
            chunks.close()
            self._settle_unfinished(call)

    async def astream(
        self, owner: _Owner, stream: AsyncIterator[ChatGenerationChunk]
    ) -> AsyncGenerator[ChatGenerationChunk]:
        """A router's ``_astream``, stopped once its output passes the reservation."""
        call = _Call(owner, streamed=True)
        finished = asyncio.Event()
        call.finished = (asyncio.get_running_loop(), finished)
        chunks = cast(AsyncGenerator[ChatGenerationChunk], stream)
        try:
            while True:
                token = _CALL.set(call)
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                finally:
                    _CALL.reset(token)
                yield chunk
                if call.overran(chunk):
                    await chunks.aclose()
                    # the executor's own stream is closed by the loop's async-generator
                    # finalizer, a moment later: wait for its finish hook (bounded)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(finished.wait(), _FINISH_WAIT_S)
                    if call.record is not None:
                        yield _stopped_chunk(call.record)
                    return
        finally:
            await chunks.aclose()
            if call.key is not None and not call.closed:
                await asyncio.to_thread(self._settle_unfinished, call)

    def _settle_unfinished(self, call: _Call) -> None:
        """The call ended without its finish hook (cancelled, interrupted): charge the
        reserved estimate, as for a stream the caller abandoned (the request was sent)."""
        if call.key is None or not call.claim():
            return
        with self.lock:
            self.calls.pop(call.key, None)
        try:
            self.guard.settle(call.reservation, call.reserved, model=None, user=call.user)
        except Exception:
            _log_failure(call.owner)

    # ------------------------------------------------------------- after a call

    def finish(self, owner: _Owner, request: RouteRequest, record: RouteRecord) -> None:
        """The router's finish hook: settle the call's reservation to its actual cost."""
        budget = record.extra.get("budget")
        if not isinstance(budget, dict):
            return
        with self.lock:
            call = self.calls.pop(id(request), None)
        if call is None:
            self._settle_record(owner, record, budget, None)
            return
        try:
            if call.claim():  # else the wrapper charged it already (cancelled meanwhile)
                self._settle_record(owner, record, budget, call)
        finally:  # a stopped async stream waits for the record, complete
            call.record = record
            if call.finished is not None:
                loop, event = call.finished
                with contextlib.suppress(RuntimeError):  # its loop has closed meanwhile
                    loop.call_soon_threadsafe(event.set)

    def _settle_record(
        self, owner: _Owner, record: RouteRecord, budget: dict[str, Any], call: _Call | None
    ) -> None:
        try:
            reservation = budget.get("reservation")
            if call is not None and call.stopped is not None:
                # stopped by the router at its reservation: charge what it streamed
                record.extra.pop("abandoned", None)
                record.model = record.model or _streaming_model(record)
                budget["stopped"] = call.stopped
                actual = max(call.stopped["charged_usd"], float(budget.get("reserved_usd") or 0))
                source = "streamed output (stopped at its reservation)"
            elif record.model is None and record.extra.get("abandoned"):
                # the caller stopped reading mid-stream: tokens were likely billed, usage
                # never came; keep the reserved estimate as spend (never less than real)
                actual, source = float(budget.get("reserved_usd") or 0.0), "reserved estimate"
            elif record.model is None:  # every attempt failed: nothing was spent
                self.guard.release(reservation)
                budget["settled_usd"] = 0.0
                return
            else:
                actual, source = record.total_cost()
            raised: list[tuple[int, float]] = []
            if source == "usage" and record.model is not None:
                raised = self._learn_overrun(
                    record.model, record.estimates.get(record.model), actual
                )
            self.guard.settle(
                reservation, actual, model=record.model, user=budget.get("user"), resize=raised
            )
            budget["settled_usd"], budget["settled_from"] = actual, source
        except Exception:  # the answer is here; a bookkeeping failure must not lose it
            _log_failure(owner)

    def _learn_overrun(
        self, model: str, estimate: float | None, actual: float
    ) -> list[tuple[int, float]]:
        """A model that costs more than estimated (it ignores max_tokens, or the prompt
        estimate is low) gets reservations that cover it: for new calls, and for this
        process's calls of it already in flight (returned: reservations to raise)."""
        raised: list[tuple[int, float]] = []
        if not estimate or estimate <= 0:
            return raised
        ratio = actual / estimate
        with self.lock:
            old = self.overrun.get(model, 1.0)
            new = ratio if ratio > old else max(1.0, old + _OVERRUN_DECAY * (ratio - old))
            if new <= 1.0:
                self.overrun.pop(model, None)
            else:
                self.overrun[model] = new
            if new <= old:
                return raised
            for call in self.calls.values():
                needed = _needed(call, self.overrun)
                if needed is not None and model in call.estimates:
                    call.reserved = needed
                    if call.reservation is not None:
                        raised.append((call.reservation, needed))
        return raised


def _log_failure(owner: _Owner) -> None:
    logger.exception("%s: could not record spend in %r", owner.router_name, owner.spend_db)


def _needed(call: _Call, overrun: dict[str, float]) -> float | None:
    """A larger reservation an open, non-streamed call needs after learned overruns."""
    if call.closed or call.streamed or not call.estimates:
        return None
    needed = max(e * overrun.get(n, 1.0) for n, e in call.estimates.items())
    return needed if needed > call.reserved * (1 + 1e-9) else None


def _stopped_chunk(record: RouteRecord) -> ChatGenerationChunk:
    """The closing chunk of a stream the router stopped at its reservation."""
    metadata = {"model_name": record.model, "route": record.model_dump(), "finish_reason": "length"}
    return ChatGenerationChunk(
        message=AIMessageChunk(content="", response_metadata=metadata, chunk_position="last")
    )


def _streaming_model(record: RouteRecord) -> str | None:
    """The model whose stream was stopped, when the record tells it unambiguously."""
    if not record.attempts:
        return record.candidates[0] if record.candidates else None
    last = record.attempts[-1]
    if last.partial and last.model in record.candidates:  # continued on the next candidate
        following = record.candidates[record.candidates.index(last.model) + 1 :]
        return following[0] if following else None
    return None
