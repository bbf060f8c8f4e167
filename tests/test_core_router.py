"""The shared executor: ordering, fallback, streaming, records, events, tools, nesting."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from _fixtures.fakes import InOrder, Recorder, ToolRecorder, spec
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from llmrouter import (
    ROUTE_EVENT,
    AllModelsFailedError,
    ConfigurationError,
    ModelSpec,
    NoEligibleModelError,
    StreamInterruptedError,
    route_of,
)


class Events(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append((name, data))


def model(s: ModelSpec) -> Recorder:
    assert isinstance(s.model, Recorder)
    return s.model


def test_first_candidate_answers_with_route_record() -> None:
    router = InOrder(models=[spec("a", reply="from a"), spec("b", reply="from b")])
    msg = router.invoke("hello")
    assert msg.content == "from a"
    assert msg.response_metadata["model_name"] == "a"
    record = route_of(msg)
    assert record.router == "InOrder" and record.router_type == "InOrder"
    assert record.model == "a" and record.reason == "in order"
    assert record.candidates == ["a", "b"]
    assert [(x.model, x.ok) for x in record.attempts] == [("a", True)]
    assert record.latency_s > 0


def test_falls_back_and_records_the_error() -> None:
    a, b = spec("a", fail_with=ConnectionError), spec("b", reply="from b")
    msg = InOrder(models=[a, b], max_retries=0).invoke("hello")
    assert msg.content == "from b"
    record = route_of(msg)
    assert [(x.model, x.ok, x.error_type) for x in record.attempts] == [
        ("a", False, "ConnectionError"),
        ("b", True, None),
    ]
    assert record.attempts[0].error == "boom"


def test_all_failed_raises_typed_error_and_still_emits_record() -> None:
    events = Events()
    router = InOrder(
        models=[spec("a", fail_with=ValueError), spec("b", fail_with=TimeoutError)], max_retries=0
    )
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke("hello", config={"callbacks": [events]})
    record = info.value.record
    assert [x.error_type for x in record.attempts] == ["ValueError", "TimeoutError"]
    assert record.model is None
    assert "a: ValueError" in str(info.value) and "b: TimeoutError" in str(info.value)
    assert [name for name, _ in events.events] == [ROUTE_EVENT]


def test_route_record_is_a_custom_event() -> None:
    events = Events()
    InOrder(models=[spec("a")]).invoke("hi", config={"callbacks": [events]})
    ((name, data),) = events.events
    assert name == ROUTE_EVENT and data["model"] == "a"


async def test_custom_event_shows_in_astream_events() -> None:
    router = InOrder(models=[spec("a", reply="one two")])
    seen = [e async for e in router.astream_events("hi", version="v2")]
    custom = [e for e in seen if e["event"] == "on_custom_event"]
    assert len(custom) == 1 and custom[0]["name"] == ROUTE_EVENT
    assert custom[0]["data"]["model"] == "a"


def test_stop_and_kwargs_pass_through_but_router_keywords_do_not() -> None:
    a = spec("a")
    router = InOrder(models=[a], temperature=0.2, max_tokens=7)
    router.invoke("hi", stop=["\n"], task="chat", thread_id="t1", max_tokens=3)
    call = model(a).calls[-1]
    assert call["stop"] == ["\n"]
    assert call["temperature"] == 0.2 and call["max_tokens"] == 3
    assert "task" not in call and "thread_id" not in call


def test_router_level_stop_is_the_default() -> None:
    a = spec("a")
    InOrder(models=[a], stop=["END"]).invoke("hi")
    assert model(a).calls[-1]["stop"] == ["END"]


def test_usage_and_cost_in_the_record() -> None:
    a = spec("a", usage=(1000, 500), input_cost=0.15, output_cost=0.6)
    msg = InOrder(models=[a]).invoke("hi")
    record = route_of(msg)
    assert record.usage is not None and record.usage.total_tokens == 1500
    assert record.cost_usd == pytest.approx((1000 * 0.15 + 500 * 0.6) / 1e6)
    assert msg.usage_metadata is not None and msg.usage_metadata["input_tokens"] == 1000


def test_backend_model_name_moves_into_the_record() -> None:
    msg = InOrder(models=[spec("a", upstream_name="gpt-x")]).invoke("hi")
    assert msg.response_metadata["model_name"] == "a"
    assert route_of(msg).backend_model == "gpt-x"


async def test_ainvoke_batch_abatch() -> None:
    router = InOrder(models=[spec("a", fail_with=RuntimeError), spec("b", reply="B")])
    assert (await router.ainvoke("x")).content == "B"
    assert [m.content for m in router.batch(["x", "y", "z"])] == ["B"] * 3
    results = await router.abatch(["x", "y"])
    assert [route_of(m).model for m in results] == ["b", "b"]


def test_stream_joins_and_carries_route_once() -> None:
    router = InOrder(models=[spec("a", reply="one two three", upstream_name="gpt-x", usage=(3, 3))])
    chunks = list(router.stream("hi"))
    assert len(chunks) > 3
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.content == "one two three"
    assert full.response_metadata["model_name"] == "a"  # not concatenated with "gpt-x"
    record = route_of(full)
    assert record.streamed and record.model == "a" and record.backend_model == "gpt-x"
    assert record.usage is not None and record.usage.total_tokens == 6


def test_stream_falls_back_before_first_chunk() -> None:
    router = InOrder(models=[spec("a", fail_with=ConnectionError), spec("b", reply="bee")])
    text = "".join(str(c.content) for c in router.stream("hi"))
    assert text == "bee"


def test_stream_failure_after_output_is_a_typed_error() -> None:
    a = spec("a", reply="one two three", fail_after_chunks=2)
    router = InOrder(models=[a, spec("b")], stream_recovery="raise")
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in router.stream("hi"):
            got.append(str(chunk.content))
    assert "".join(got) == "one two"
    assert info.value.record.attempts[0].ok is False
    assert model(a).calls and len(info.value.record.attempts) == 1


async def test_astream_fallback_and_metadata() -> None:
    router = InOrder(models=[spec("a", fail_with=ConnectionError), spec("b", reply="x y")])
    chunks = [c async for c in router.astream("hi")]
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.content == "x y"
    assert route_of(full).attempts[0].error_type == "ConnectionError"


def test_lcel_chain() -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "Say {word}")])
    chain = prompt | InOrder(models=[spec("a", reply="done")]) | StrOutputParser()
    assert chain.invoke({"word": "x"}) == "done"


def test_nested_router_keeps_inner_record() -> None:
    inner = InOrder(models=[spec("i1", fail_with=RuntimeError), spec("i2", reply="deep")])
    outer = InOrder(models=[ModelSpec(name="inner", model=inner), spec("o")], name="outer")
    msg = outer.invoke("hi")
    assert msg.content == "deep"
    record = route_of(msg)
    assert record.router == "outer" and record.model == "inner"
    assert record.inner is not None and record.inner["model"] == "i2"
    assert [a["ok"] for a in record.inner["attempts"]] == [False, True]


def test_nested_router_streams() -> None:
    inner = InOrder(models=[spec("i1", reply="a b")])
    outer = InOrder(models=[ModelSpec(name="inner", model=inner)])
    chunks = list(outer.stream("hi"))
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.content == "a b"
    assert full.response_metadata["model_name"] == "inner"
    assert route_of(full).inner is not None


def test_bind_tools_uses_only_capable_models() -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    plain, tooly = spec("plain", reply="p"), spec("tooly", cls=ToolRecorder, reply="t")
    router = InOrder(models=[plain, tooly])
    bound = router.bind_tools([add])
    msg = bound.invoke("add 1 and 2")
    assert msg.response_metadata["model_name"] == "tooly"
    assert model(tooly).calls[-1]["tools"] == ["add"]
    assert not model(plain).calls
    # the original router is unchanged
    assert router.invoke("hi").response_metadata["model_name"] == "plain"


def test_bind_tools_without_capable_models_is_a_typed_error() -> None:
    router = InOrder(models=[spec("plain")])
    with pytest.raises(NoEligibleModelError, match="plain: chat model has no bind_tools"):
        router.bind_tools(
            [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        ).invoke("x")


@pytest.mark.parametrize(
    ("models", "match"),
    [
        ([], "at least one ModelSpec"),
        (["not a spec"], r"models\[0\] is a str"),
    ],
)
def test_bad_models_are_configuration_errors(models: list[Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        InOrder(models=models)


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"duplicate model names \['a'\]"):
        InOrder(models=[spec("a"), spec("a")])


def test_ls_params_name_the_router() -> None:
    params = InOrder(models=[spec("a")], name="r1", temperature=0.0)._get_ls_params()
    assert params["ls_provider"] == "llmrouter" and params["ls_model_name"] == "r1"
    assert params["ls_temperature"] == 0.0
