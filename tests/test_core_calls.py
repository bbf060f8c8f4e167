"""Candidates run inside the router's own chat-model run: one count per call in
LangChain's accounting, one ``on_chat_model_start``, the route still visible."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from _fixtures.fakes import InOrder, Recorder, ToolRecorder, joined, spec
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.messages import BaseMessage

from llmrouter import ModelRouter, ModelSpec, RouteRecord, route_of
from llmrouter.core._calls import unwrap

USAGE = (7, 4)  # what each fake call reports: input, output tokens
MODES = ["invoke", "ainvoke", "batch", "abatch", "stream", "astream"]


class Starts(BaseCallbackHandler):
    """Counts chat-model runs and custom route events."""

    def __init__(self) -> None:
        self.starts: list[str] = []
        self.routes: list[dict[str, Any]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.starts.append((kwargs.get("metadata") or {}).get("ls_model_name", "?"))

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name == "llmrouter.route":
            self.routes.append(data)


def run(router: Any, mode: str, handler: Starts) -> list[RouteRecord]:
    config = {"callbacks": [handler]}
    if mode == "invoke":
        return [route_of(router.invoke("x", config=config))]
    if mode == "ainvoke":
        return [route_of(asyncio.run(router.ainvoke("x", config=config)))]
    if mode == "batch":
        return [route_of(m) for m in router.batch(["x", "y", "z"], config=config)]
    if mode == "abatch":
        return [route_of(m) for m in asyncio.run(router.abatch(["x", "y", "z"], config=config))]
    if mode == "stream":
        return [route_of(joined(list(router.stream("x", config=config))))]
    return [route_of(joined(asyncio.run(_astream(router, config))))]


async def _astream(router: Any, config: Any) -> list[Any]:
    return [chunk async for chunk in router.astream("x", config=config)]


def metered(name: str) -> ModelSpec:
    return spec(name, reply="one two", usage=USAGE, upstream_name=f"{name}-backend")


@pytest.mark.parametrize("mode", MODES)
def test_usage_is_counted_once_per_call(mode: str) -> None:
    router = InOrder(models=[metered("a")])
    handler = Starts()
    with get_usage_metadata_callback() as usage:
        records = run(router, mode, handler)
    calls = len(records)
    assert {k: v["total_tokens"] for k, v in usage.usage_metadata.items()} == {
        "a": calls * sum(USAGE)
    }
    assert len(handler.starts) == calls  # the router's run only
    assert [r["model"] for r in handler.routes] == ["a"] * calls
    assert all(r.model == "a" and r.usage and r.usage.total_tokens == 11 for r in records)


@pytest.mark.parametrize("mode", MODES)
def test_a_nested_router_is_counted_once_and_keeps_both_routes(mode: str) -> None:
    inner = InOrder(models=[metered("leaf")], name="inner")
    outer = InOrder(models=[ModelSpec(name="inner", model=inner)], name="outer")
    handler = Starts()
    with get_usage_metadata_callback() as usage:
        records = run(outer, mode, handler)
    calls = len(records)
    assert sum(v["total_tokens"] for v in usage.usage_metadata.values()) == calls * 11
    assert len(handler.starts) == calls
    assert sorted(r["router"] for r in handler.routes) == sorted(["inner", "outer"] * calls)
    assert all(r.inner is not None and r.inner["model"] == "leaf" for r in records)


def test_tools_bound_through_the_router_still_reach_the_model() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    a = spec("a", cls=ToolRecorder, usage=USAGE)
    router = InOrder(models=[a]).bind_tools([add])
    handler = Starts()
    with get_usage_metadata_callback() as usage:
        router.invoke("x", config={"callbacks": [handler]})
    assert a.model.calls[0]["tools"] == ["add"]  # type: ignore[union-attr]
    assert len(handler.starts) == 1 and usage.usage_metadata["a"]["total_tokens"] == 11


def test_a_model_with_its_own_callbacks_keeps_its_own_run() -> None:
    own = Starts()
    a = ModelSpec(name="a", model=Recorder(usage=USAGE, callbacks=[own]))
    outer = Starts()
    InOrder(models=[a]).invoke("x", config={"callbacks": [outer]})
    assert len(own.starts) == 1  # the handler it was given fires
    assert len(outer.starts) == 2  # and that run is a child of the router's


def test_unwrap_sees_through_kwargs_bindings_only() -> None:
    model = Recorder()
    assert unwrap(model) == (model, {})
    assert unwrap(model.bind(tools=["t"]).bind(tool_choice="any")) == (
        model,
        {"tools": ["t"], "tool_choice": "any"},
    )
    assert unwrap(model.with_config(tags=["x"])) is None
    assert unwrap(model.bind(a=1) | (lambda m: m)) is None  # type: ignore[arg-type]


def test_a_model_cache_hit_carries_this_requests_route() -> None:
    a = ModelSpec(name="a", model=Recorder(usage=USAGE, cache=InMemoryCache()))
    router = InOrder(models=[a])
    first, second = route_of(router.invoke("x")), route_of(router.invoke("x"))
    assert len(a.model.calls) == 1  # type: ignore[union-attr]
    assert first.request_id != second.request_id
    assert second.inner is None  # not the previous request's route, read back from the cache


def test_the_callers_task_reaches_a_nested_router() -> None:
    inner = ModelRouter(
        models=[
            ModelSpec(name="chat", model=Recorder(reply="chat")),
            ModelSpec(name="coder", model=Recorder(reply="code"), tasks={"code"}),
        ],
        default="chat",
    )
    outer = ModelRouter(models=[ModelSpec(name="inner", model=inner)], default="inner")
    assert outer.invoke("write a sort", task="code").content == "code"
    assert outer.invoke("hello").content == "chat"
    record = route_of(outer.invoke("write a sort", task="code"))
    assert record.inner is not None and record.inner["model"] == "coder"
    assert record.inner["task"] == "code"


def test_a_leaf_model_never_receives_the_task_keyword() -> None:
    leaf = Recorder(reply="code")
    router = ModelRouter(models=[ModelSpec(name="coder", model=leaf, tasks={"code"})])
    assert router.invoke("write a sort", task="code").content == "code"
    assert "task" not in leaf.calls[-1]
