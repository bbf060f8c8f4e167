"""The cost tracker: booking each real model call once, by model, router, task and tag."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from _fixtures.fakes import InOrder
from langchain_core.callbacks import CallbackManagerForLLMRun, get_usage_metadata_callback
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from rich.console import Console

from llmrouter import ModelRouter, ModelSpec
from llmrouter.cost._router import CostAwareRouter
from llmrouter.cost._tracker import CostTracker, track_costs


class Metered(BaseChatModel):
    """Answers ``reply`` and reports ``usage`` (on the last chunk when streaming)."""

    reply: str = "fine thanks"
    backend: str = "backend-x"
    usage: dict[str, Any] = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "metered"

    def _message(self, cls: type[AIMessage], content: str) -> AIMessage:
        return cls(
            content=content,
            usage_metadata=dict(self.usage),  # type: ignore[arg-type]
            response_metadata={"model_name": self.backend},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.fail:
            raise ValueError("bad request")
        return ChatResult(
            generations=[ChatGeneration(message=self._message(AIMessage, self.reply))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self.fail:
            raise ValueError("bad request")
        for word in self.reply.split(" "):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        yield ChatGenerationChunk(message=self._message(AIMessageChunk, ""))  # type: ignore[arg-type]


def metered(name: str, backend: str | None = None, **kwargs: Any) -> ModelSpec:
    prices = {
        k: kwargs.pop(k)
        for k in ("input_cost", "output_cost", "cached_input_cost", "tasks")
        if k in kwargs
    }
    return ModelSpec(name=name, model=Metered(backend=backend or f"{name}-v1", **kwargs), **prices)


def test_direct_calls_are_priced_by_the_models_given() -> None:
    spec = metered("m", "m", input_cost=100.0, output_cost=200.0)  # matched by backend name
    tracker = CostTracker(models=[spec])
    spec.chat_model.invoke("hi", config={"callbacks": [tracker]})
    Metered(backend="other").invoke("hi", config={"callbacks": [tracker]})
    assert tracker.total_cost == pytest.approx((10 * 100 + 5 * 200) / 1e6)
    assert list(tracker.by_model) == ["m", "other"]
    assert tracker.by_model["other"].unpriced_calls == 1
    assert tracker.by_router == {"(direct)": tracker.total}
    assert tracker.total.calls == 2 and tracker.total_tokens == 30


def test_a_routed_call_is_booked_once_under_the_spec_router_task_and_tags() -> None:
    router = ModelRouter(
        name="tasks",
        models=[metered("cheap", input_cost=1.0, output_cost=2.0, tasks={"chat"})],
        default="cheap",
    )
    with get_usage_metadata_callback() as langchain_usage, track_costs() as usage:
        router.invoke("hi", task="chat", config={"tags": ["team-a", "web"]})
    assert usage.total.calls == 1 and usage.total_tokens == 15
    (call,) = usage.calls
    assert (call.model, call.backend_model, call.router, call.task, call.tags) == (
        "cheap",
        "cheap-v1",
        "tasks",
        "chat",
        ("team-a", "web"),
    )
    assert call.cost_usd == pytest.approx((10 + 5 * 2) / 1e6) and call.request_id
    assert set(usage.by_tag) == {"team-a", "web"} and usage.by_task["chat"].calls == 1
    # LangChain's handler counts the router's answer once, under the spec name
    assert {k: u["total_tokens"] for k, u in langchain_usage.usage_metadata.items()} == {
        "cheap": 15
    }
    assert usage.by_backend["cheap-v1"].total_tokens == 15


def test_streaming_books_the_same_as_invoke() -> None:
    router = InOrder(models=[metered("m", input_cost=3.0, output_cost=7.0)])
    with track_costs() as streamed:
        chunks = list(router.stream("hi", config={"metadata": {"task": "chat"}}))
    with track_costs() as invoked:
        router.invoke("hi", config={"metadata": {"task": "chat"}})
    assert len(chunks) > 2
    assert streamed.by_model == invoked.by_model and streamed.by_task == invoked.by_task
    assert streamed.total.calls == 1


def test_cached_input_tokens_are_priced_at_the_cached_price() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 100,
        "total_tokens": 1100,
        "input_token_details": {"cache_read": 800},
    }
    spec = metered("c", "c", input_cost=2.0, cached_input_cost=0.5, output_cost=8.0, usage=usage)
    with track_costs([spec]) as direct:
        spec.chat_model.invoke("hi")
    with track_costs() as routed:
        for _ in InOrder(models=[spec]).stream("hi"):
            pass
    expected = (200 * 2.0 + 800 * 0.5 + 100 * 8.0) / 1e6
    for tracker in (direct, routed):
        assert tracker.total.cached_input_tokens == 800
        assert tracker.total_cost == pytest.approx(expected)


def test_failed_attempts_cost_nothing_and_fallbacks_are_booked_once() -> None:
    router = InOrder(
        models=[metered("bad", fail=True, input_cost=5.0), metered("good", input_cost=1.0)],
        max_retries=0,
        circuit_breaker=None,
    )
    with track_costs() as usage:
        router.invoke("hi")
        list(router.stream("hi"))
    assert list(usage.by_model) == ["good"] and usage.total.calls == 2


def test_nested_routers_book_the_leaf_under_the_inner_router() -> None:
    inner = InOrder(name="inner", models=[metered("leaf", input_cost=1.0)])
    outer = InOrder(name="outer", models=[ModelSpec(name="inner-spec", model=inner)])
    with track_costs() as usage:
        outer.invoke("hi")
        list(outer.stream("hi"))
    assert usage.total.calls == 2
    assert list(usage.by_model) == ["leaf"] and list(usage.by_router) == ["inner"]
    assert usage.total_cost == pytest.approx(2 * 10 / 1e6)


def test_an_abandoned_stream_books_nothing_and_leaks_nothing() -> None:
    router = InOrder(models=[metered("m", reply="a b c d e", input_cost=1.0)])
    tracker = CostTracker()
    stream = router.stream("hi", config={"callbacks": [tracker]})
    next(stream)
    stream.close()
    assert tracker.total.calls == 0 and not tracker._runs and not tracker._pending


async def test_concurrent_async_calls_are_attributed_to_their_own_tasks() -> None:
    router = CostAwareRouter(models=[metered("m", input_cost=1.0)])
    with track_costs() as usage:
        await asyncio.gather(
            *(router.ainvoke("hi", task=f"t{i % 4}") for i in range(32)),
            *(_drain(router.astream("hi", task="streamed")) for _ in range(8)),
        )
    assert usage.total.calls == 40
    assert {k: v.calls for k, v in usage.by_task.items()} == {
        "streamed": 8,
        "t0": 8,
        "t1": 8,
        "t2": 8,
        "t3": 8,
    }
    assert not usage._runs and not usage._pending


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


def test_nested_blocks_report_to_the_outer_one_too() -> None:
    model = Metered()
    with track_costs() as outer:
        model.invoke("one")
        with track_costs() as inner:
            model.invoke("two")
    assert (outer.total.calls, inner.total.calls) == (2, 1)
    model.invoke("after")  # outside every block: nobody counts it
    assert outer.total.calls == 2


def test_calls_without_usage_are_counted_as_unmetered() -> None:
    from langchain_core.language_models import FakeListChatModel

    with track_costs() as usage:
        InOrder(models=[ModelSpec(name="f", model=FakeListChatModel(responses=["x"]))]).invoke("q")
    assert usage.unmetered_calls == 1 and usage.total.calls == 0


def test_the_cost_table_has_a_row_per_group_and_a_total() -> None:
    spec = metered("m", "m", input_cost=1.0)
    with track_costs([spec]) as usage:
        spec.chat_model.invoke("hi")
        Metered(backend="mystery").invoke("hi")
    console = Console(record=True, width=120)
    console.print(usage.table(by="model"))
    text = console.export_text()
    assert "LLM cost by model" in text and "mystery" in text and "total" in text
    assert "1 call(s) had no known price" in text
    assert repr(usage).startswith("CostTracker(calls=2, tokens=30")


def test_a_model_without_its_own_ls_provider_is_still_booked_under_a_router() -> None:
    from langchain_core.language_models import LangSmithParams

    class Anonymous(Metered):
        def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
            return LangSmithParams(ls_model_type="chat")  # inherits the router's ls_provider

    router = InOrder(models=[ModelSpec(name="anon", model=Anonymous(), input_cost=1.0)])
    with track_costs() as usage:
        router.invoke("hi")
    assert list(usage.by_model) == ["anon"] and usage.total.calls == 1
