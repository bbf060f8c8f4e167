"""Small in-process chat models for executor tests (no I/O)."""

from __future__ import annotations

import functools
import operator
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable

from llmrouter import ModelSpec
from llmrouter.core import BaseRouter, Ranking, RouteRequest


class Recorder(BaseChatModel):
    """Answers ``reply``; records every call's stop and kwargs; can fail on demand."""

    reply: str = "ok"
    fail_with: type[Exception] | None = None
    fail_after_chunks: int | None = None
    usage: tuple[int, int] | None = None
    upstream_name: str | None = None
    fail_times: int = 0
    """Fail (with ``fail_with`` or ConnectionError) on the first N calls only."""
    sleep: float = 0.0
    """Seconds to wait before answering (or before the first chunk)."""
    calls: list[dict[str, Any]] = []
    in_flight: int = 0
    peak: int = 0

    def model_post_init(self, context: Any) -> None:
        self.calls = []
        self._lock = threading.Lock()

    def _begin(
        self, stop: list[str] | None, kwargs: dict[str, Any], messages: list[BaseMessage]
    ) -> None:
        with self._lock:
            self.calls.append({"stop": stop, **kwargs, "messages": messages})
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if self.sleep:
                time.sleep(self.sleep)
            if len(self.calls) <= self.fail_times:
                raise (self.fail_with or ConnectionError)(f"transient failure {len(self.calls)}")
        finally:
            with self._lock:
                self.in_flight -= 1

    @property
    def _llm_type(self) -> str:
        return "recorder"

    def _message(self, cls: type[AIMessage]) -> AIMessage:
        meta = {"model_name": self.upstream_name} if self.upstream_name else {}
        usage = None
        if self.usage:
            i, o = self.usage
            usage = {"input_tokens": i, "output_tokens": o, "total_tokens": i + o}
        return cls(content=self.reply, response_metadata=meta, usage_metadata=usage)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._begin(stop, kwargs, messages)
        if self.fail_with is not None and not self.fail_times:
            raise self.fail_with("boom")
        return ChatResult(generations=[ChatGeneration(message=self._message(AIMessage))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        self._begin(stop, kwargs, messages)
        if self.fail_with is not None and self.fail_after_chunks is None and not self.fail_times:
            raise self.fail_with("boom before first chunk")
        words = self.reply.split(" ")
        for i, word in enumerate(words):
            if self.fail_after_chunks is not None and i == self.fail_after_chunks:
                raise (self.fail_with or RuntimeError)("boom mid-stream")
            text = word if i == 0 else " " + word
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        final = self._message(AIMessageChunk)
        final.content = ""
        yield ChatGenerationChunk(message=final)


class ToolRecorder(Recorder):
    """A Recorder that accepts tools (records what was bound)."""

    bound_tools: list[Any] = []

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[Any, AIMessage]:
        self.bound_tools = list(tools)
        return self.bind(tools=[getattr(t, "__name__", str(t)) for t in tools], **kwargs)


class InOrder(BaseRouter):
    """Test router: tries the models in the order given."""

    def rank(self, request: RouteRequest) -> Ranking:
        return Ranking(
            list(self.models), "in order", task=request.task, task_source=request.task_source
        )


def joined(chunks: Sequence[Any]) -> Any:
    """A stream's chunks added up into one message chunk."""
    return functools.reduce(operator.add, chunks)


def spec(name: str, **kwargs: Any) -> ModelSpec:
    prices = {k: kwargs.pop(k) for k in ("input_cost", "output_cost", "tasks") if k in kwargs}
    cls = kwargs.pop("cls", Recorder)
    return ModelSpec(name=name, model=cls(**kwargs), **prices)
