"""Calling a candidate model inside the router's own chat-model run.

A router is a chat model, so LangChain has already opened a chat-model run for
it (``on_chat_model_start`` ... ``on_llm_end``) by the time the executor picks a
candidate. Calling the candidate's public ``invoke``/``stream`` would open a
second chat-model run for the same answer, and every handler that sums
chat-model runs (``get_usage_metadata_callback``, tracers, LangSmith) would count
its tokens twice. So a *plain* candidate -- a `BaseChatModel`, possibly under
the kwargs of a `RunnableBinding` (what ``bind_tools`` returns) -- runs only the
part of LangChain's pipeline that sits inside a run:

* generate: ``BaseChatModel._generate_with_cache`` with the router's run manager
  (cache, the model's rate limiter, v1/v2 streaming to the router's streaming
  handlers, ``output_version``, response metadata), exactly what
  ``BaseChatModel.generate`` calls between ``on_chat_model_start`` and ``on_llm_end``;
* stream: the body of ``BaseChatModel.stream`` without its callbacks (the router's
  own ``stream`` reports every chunk it passes on to its run).

Anything else -- a runnable with its own config, a chain, a non-chat runnable,
a chat model given its own ``callbacks`` (they fire only on a run of its own) --
is called as a child run of the router's run.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import _gen_info_and_msg_metadata
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import Runnable, RunnableBinding

from llmrouter._callbacks import PARENT_KEY
from llmrouter.core._types import ROUTER_MARKER

if TYPE_CHECKING:
    from llmrouter._callbacks import RunContext

#: Call keywords ``BaseChatModel.generate``/``stream`` consume before the model sees them.
_TRACE_ONLY = ("ls_structured_output_format", "structured_output_format")


def unwrap(
    runnable: Runnable[LanguageModelInput, BaseMessage],
) -> tuple[BaseChatModel, dict[str, Any]] | None:
    """``(chat model, bound kwargs)`` for a chat model under plain kwarg bindings, else None."""
    kwargs: dict[str, Any] = {}
    while isinstance(runnable, RunnableBinding):
        if runnable.config or runnable.config_factories:  # callbacks, tags, run names...
            return None
        kwargs = {**runnable.kwargs, **kwargs}  # an outer binding wins, as in RunnableBinding
        runnable = runnable.bound
    if not isinstance(runnable, BaseChatModel) or runnable.callbacks:
        return None  # a model with handlers of its own keeps its own run, so they fire
    return runnable, kwargs


class ModelCall:
    """One candidate, called the way the router's run needs (see module docstring).

    The executor's drivers call ``invoke``/``ainvoke``/``stream``/``astream`` with the
    request's messages, stop sequences and model keywords.
    """

    __slots__ = ("bound", "ctx", "model", "router", "runnable")

    def __init__(
        self,
        runnable: Runnable[LanguageModelInput, BaseMessage],
        ctx: RunContext,
        task: str | None = None,
    ):
        self.runnable = runnable
        self.ctx = ctx
        target = unwrap(runnable)
        self.model: BaseChatModel | None = target[0] if target is not None else None
        self.bound: dict[str, Any] = target[1] if target is not None else {}
        self.router = self.model is not None and _is_router(self.model)
        if self.router and task is not None and "task" not in self.bound:
            # the caller's task= reaches a nested router (one bound to a task keeps its own)
            self.bound = {**self.bound, "task": task}

    def model_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The keywords the model gets: its bound ones, the call's on top."""
        merged = {**self.bound, **kwargs} if self.bound else dict(kwargs)
        for key in _TRACE_ONLY:
            merged.pop(key, None)
        return merged

    def uncached(self) -> ModelCall:
        """This call with LangChain's cache off for the model (``cache=False`` on a
        shallow copy): the router's response cache holds the answer, not both."""
        model = self.model
        if model is None or model.cache is False:
            return self
        call = copy.copy(self)
        call.model = model.model_copy(update={"cache": False})
        return call

    def _stream_extras(self) -> dict[str, Any]:
        # A nested router needs the run to hang its own route event on; a leaf model
        # gets no run manager (the router's stream reports the chunks it passes on).
        if not self.router:
            return {}
        return {"run_manager": self.ctx.run_manager, PARENT_KEY: self.ctx.parent}

    # -------------------------------------------------------------- generate

    def invoke(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> BaseMessage:
        model = self.model
        if model is None:
            return self.runnable.invoke(
                messages, config=self.ctx.child_config(), stop=stop, **kwargs
            )
        result = model._generate_with_cache(
            messages,
            stop=stop,
            run_manager=self.ctx.run_manager,  # type: ignore[arg-type]
            **self.model_kwargs(kwargs),
        )
        return result.generations[0].message

    async def ainvoke(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> BaseMessage:
        model = self.model
        if model is None:
            return await self.runnable.ainvoke(
                messages, config=self.ctx.child_config(), stop=stop, **kwargs
            )
        result = await model._agenerate_with_cache(
            messages,
            stop=stop,
            run_manager=self.ctx.run_manager,  # type: ignore[arg-type]
            **self.model_kwargs(kwargs),
        )
        return result.generations[0].message

    # ---------------------------------------------------------------- stream

    def stream(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> Iterator[BaseMessage]:
        model = self.model
        if model is None:
            yield from self.runnable.stream(
                messages, config=self.ctx.child_config(), stop=stop, **kwargs
            )
            return
        kwargs = self.model_kwargs(kwargs)
        if not model._should_stream(async_api=False, **{**kwargs, "stream": True}):
            result = model._generate_with_cache(messages, stop=stop, **kwargs)
            yield as_chunk(result.generations[0].message)
            return
        if model.rate_limiter:
            model.rate_limiter.acquire(blocking=True)
        blocks = _Blocks() if model.output_version == "v1" else None
        for chunk in model._stream(messages, stop=stop, **self._stream_extras(), **kwargs):
            yield _finish(chunk, blocks)

    async def astream(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AsyncIterator[BaseMessage]:
        model = self.model
        if model is None:
            async for message in self.runnable.astream(
                messages, config=self.ctx.child_config(), stop=stop, **kwargs
            ):
                yield message
            return
        kwargs = self.model_kwargs(kwargs)
        if not model._should_stream(async_api=True, **{**kwargs, "stream": True}):
            result = await model._agenerate_with_cache(messages, stop=stop, **kwargs)
            yield as_chunk(result.generations[0].message)
            return
        if model.rate_limiter:
            await model.rate_limiter.aacquire(blocking=True)
        blocks = _Blocks() if model.output_version == "v1" else None
        async for chunk in model._astream(messages, stop=stop, **self._stream_extras(), **kwargs):
            yield _finish(chunk, blocks)


@functools.cache
def _is_router_class(cls: type) -> bool:
    return bool(getattr(cls, ROUTER_MARKER, False))


def _is_router(model: BaseChatModel) -> bool:
    return _is_router_class(type(model))  # cached: a missed getattr on pydantic is slow


class _Blocks:
    """``output_version="v1"`` for streamed chunks, as ``BaseChatModel.stream`` does it."""

    def __init__(self) -> None:
        self.index, self.kind = -1, ""

    def convert(self, chunk: ChatGenerationChunk) -> None:
        from langchain_core.language_models._utils import _update_message_content_to_blocks

        chunk.message = _update_message_content_to_blocks(chunk.message, "v1")
        for block in chunk.message.content:
            if not isinstance(block, dict):
                continue
            if block["type"] != self.kind:
                self.kind, self.index = block["type"], self.index + 1
            block.setdefault("index", self.index)


def _finish(chunk: ChatGenerationChunk, blocks: _Blocks | None) -> BaseMessage:
    """A streamed chunk as ``BaseChatModel.stream`` would yield it (run-id aside)."""
    if chunk.generation_info:
        chunk.message.response_metadata = _gen_info_and_msg_metadata(chunk)
    if blocks is not None:
        blocks.convert(chunk)
    return chunk.message


def as_chunk(message: BaseMessage) -> BaseMessage:
    """A whole answer as one stream chunk, keeping usage and tool calls."""
    if isinstance(message, AIMessageChunk) or not isinstance(message, AIMessage):
        return message
    return AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        response_metadata=message.response_metadata,
        usage_metadata=message.usage_metadata,
        id=message.id,
        name=message.name,
        tool_call_chunks=[
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(message.tool_calls)
        ],
    )
