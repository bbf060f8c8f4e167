"""The executor's drivers: perform what an `Execution` decides, sync and async.

Each driver only does I/O -- look an answer up in the response cache, call a
model, read a stream, sleep, take a concurrency slot, a rate-limiter token and
the call's tokens of a token limiter,
write the answer to the cache, run the finish hook, emit the
``llmrouter.route`` event -- and reports every outcome back to the
`Execution`, which holds every decision. The sync and async versions are the
same lines with ``await`` in them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Any

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from llmrouter.core._cache import Lookup
from llmrouter.core._execution import Call, Execution, Sleep
from llmrouter.core._relay import has_content
from llmrouter.errors import TokenLimitError
from llmrouter.record import ROUTE_EVENT
from llmrouter.resilience._timeouts import acall_with_timeout, atimed, call_with_timeout, timed

# ------------------------------------------------------------------------- sync


def run(ex: Execution) -> ChatResult:
    """Answer with the first candidate that succeeds."""
    while (step := ex.next()) is not None:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            continue
        if isinstance(step, Lookup):
            ex.looked_up(step, step.get())
            continue
        try:
            message = _invoke(ex, step)
        except Exception as exc:
            ex.failed(step, exc)
            continue
        ex.answered(step, message)
    return ex.result(_close(ex))


def stream(ex: Execution) -> Iterator[ChatGenerationChunk]:
    """Stream from the first candidate that answers; continue elsewhere if it breaks."""
    try:
        while (step := ex.next()) is not None:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                continue
            if isinstance(step, Lookup):
                for cached in ex.looked_up(step, step.get()):
                    yield ex.relay.pass_on(cached)
                continue
            with _slot(step):
                try:
                    chunks = _open(ex, step)
                except Exception as exc:
                    ex.failed(step, exc)
                    continue
                ex.streaming(step)
                try:
                    for chunk in chunks:
                        yield ex.relay.pass_on(chunk)
                except Exception as exc:
                    if ex.interrupted(step, exc):
                        continue
                    break
            ex.streamed_out(step)
        yield ex.last_chunk(_close(ex))
    finally:
        if not ex.closed:
            ex.abandon()
            ex.host.on_finish(ex.request, ex.record)


def _invoke(ex: Execution, call: Call) -> BaseMessage:
    def invoke() -> BaseMessage:
        return call.model.invoke(call.messages, ex.stop, ex.kwargs)

    if call.plain:
        return invoke()
    with _slot(call):
        if call.spec.rate_limiter is not None:
            call.spec.rate_limiter.acquire(blocking=True)
        if call.tokens and call.spec.token_limiter is not None:
            _room(call, call.spec.token_limiter.try_take(call.tokens))
        return call_with_timeout(invoke, call.deadline, call.spec.name)


def _open(ex: Execution, call: Call) -> Iterator[BaseMessage]:
    if call.spec.rate_limiter is not None:
        call.spec.rate_limiter.acquire(blocking=True)
    if call.tokens and call.spec.token_limiter is not None:
        _room(call, call.spec.token_limiter.try_take(call.tokens))
    stream = call.model.stream(call.messages, ex.stop, ex.kwargs)
    return timed(stream, call.stream, call.spec.name, has_content)


def _room(call: Call, wait: float) -> None:
    """After asking ``call``'s token limiter for its tokens: go on if they were taken,
    else raise `TokenLimitError` (the execution decides: another replica, wait, or on)."""
    if wait > 0.0:
        limiter = call.spec.token_limiter
        tokens_per_minute = limiter.tokens_per_minute if limiter is not None else 0
        raise TokenLimitError(call.spec.name, call.tokens, wait, tokens_per_minute)


def _slot(call: Call) -> AbstractContextManager[None]:
    limit = call.spec.limit
    held = limit.slot() if limit is not None else nullcontext()
    return held if call.balancer is None else call.balancer.busy(call.spec.name, held)


def _close(ex: Execution) -> dict[str, Any]:
    ex.finish()
    if ex.to_cache is not None:
        ex.to_cache.put()
    ex.host.on_finish(ex.request, ex.record)
    route = ex.record.model_dump()  # after the hook, which may add to the record
    if ex.ctx.listening:  # dispatching to nobody still costs a callback setup
        dispatch_custom_event(ROUTE_EVENT, route, config=ex.ctx.child_config())
    return route


# ------------------------------------------------------------------------ async


async def arun(ex: Execution) -> ChatResult:
    """Async `run`."""
    while (step := ex.next()) is not None:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            continue
        if isinstance(step, Lookup):
            ex.looked_up(step, await step.aget())
            continue
        try:
            message = await _ainvoke(ex, step)
        except Exception as exc:
            ex.failed(step, exc)
            continue
        ex.answered(step, message)
    return ex.result(await _aclose(ex))


async def astream(ex: Execution) -> AsyncIterator[ChatGenerationChunk]:
    """Async `stream`."""
    try:
        while (step := ex.next()) is not None:
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                continue
            if isinstance(step, Lookup):
                for cached in ex.looked_up(step, await step.aget()):
                    yield ex.relay.pass_on(cached)
                continue
            async with _aslot(step):
                try:
                    chunks = await _aopen(ex, step)
                except Exception as exc:
                    ex.failed(step, exc)
                    continue
                ex.streaming(step)
                try:
                    async for chunk in chunks:
                        yield ex.relay.pass_on(chunk)
                except Exception as exc:
                    if ex.interrupted(step, exc):
                        continue
                    break
            ex.streamed_out(step)
        yield ex.last_chunk(await _aclose(ex))
    finally:
        if not ex.closed:
            ex.abandon()
            await ex.host.aon_finish(ex.request, ex.record)


async def _ainvoke(ex: Execution, call: Call) -> BaseMessage:
    def invoke() -> Coroutine[Any, Any, BaseMessage]:
        return call.model.ainvoke(call.messages, ex.stop, ex.kwargs)

    if call.plain:
        return await invoke()
    async with _aslot(call):
        if call.spec.rate_limiter is not None:
            await call.spec.rate_limiter.aacquire(blocking=True)
        if call.tokens and call.spec.token_limiter is not None:
            _room(call, await call.spec.token_limiter.atry_take(call.tokens))
        message: BaseMessage = await acall_with_timeout(invoke(), call.deadline, call.spec.name)
        return message


async def _aopen(ex: Execution, call: Call) -> AsyncIterator[BaseMessage]:
    if call.spec.rate_limiter is not None:
        await call.spec.rate_limiter.aacquire(blocking=True)
    if call.tokens and call.spec.token_limiter is not None:
        _room(call, await call.spec.token_limiter.atry_take(call.tokens))
    stream = call.model.astream(call.messages, ex.stop, ex.kwargs)
    return atimed(stream, call.stream, call.spec.name, has_content)


def _aslot(call: Call) -> AbstractAsyncContextManager[None]:
    limit = call.spec.limit
    held = limit.aslot() if limit is not None else nullcontext()
    return held if call.balancer is None else call.balancer.abusy(call.spec.name, held)


async def _aclose(ex: Execution) -> dict[str, Any]:
    ex.finish()
    if ex.to_cache is not None:
        await ex.to_cache.aput()
    await ex.host.aon_finish(ex.request, ex.record)
    route = ex.record.model_dump()
    if ex.ctx.listening:
        await adispatch_custom_event(ROUTE_EVENT, route, config=ex.ctx.child_config())
    return route
