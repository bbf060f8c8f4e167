"""The shared executor: ordering, fallback, streaming, records, events, tools, nesting."""

from __future__ import annotations

import pickle
from typing import Any
from uuid import UUID

import pytest
from _fixtures.fakes import InOrder, Recorder, ToolRecorder, spec
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from llmrouter import (
    ROUTE_EVENT,
    ABRouter,
    AllModelsFailedError,
    Budget,
    ConfigurationError,
    CostAwareRouter,
    InvalidRequestError,
    ModelRouter,
    ModelSpec,
    MultiModalRouter,
    NoEligibleModelError,
    StreamInterruptedError,
    route_of,
)
from llmrouter.core import BaseRouter


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


# ----------------------------------------- caller mistakes (issue 9, item 12)


class Tunable(Recorder):
    """A candidate with a model-specific setting (accepted per call too)."""

    beam_width: int = 1


class ByTenant(InOrder):
    route_keywords = InOrder.route_keywords | {"tenant"}


def test_unknown_call_keyword_is_refused_before_any_model_is_called() -> None:
    a = spec("a")
    router = InOrder(models=[a])
    with pytest.raises(InvalidRequestError, match=r"unknown call keyword 'bogus'") as info:
        router.invoke("hi", bogus=1)
    assert "router keywords" in str(info.value)
    with pytest.raises(InvalidRequestError, match=r"did you mean 'temperature'\?"):
        router.invoke("hi", temprature=0.5)
    assert not model(a).calls


async def test_unknown_call_keyword_is_refused_on_every_path() -> None:
    router = InOrder(models=[spec("a")])
    with pytest.raises(InvalidRequestError, match="bogus"):
        await router.ainvoke("hi", bogus=1)
    with pytest.raises(InvalidRequestError, match="bogus"):
        list(router.stream("hi", bogus=1))
    with pytest.raises(InvalidRequestError, match="bogus"):
        router.bind(bogus=1).invoke("hi")


def test_standard_and_model_specific_keywords_pass_through() -> None:
    a = ModelSpec(name="a", model=Tunable())
    router = InOrder(models=[a])
    passed = {
        "top_p": 0.5,
        "seed": 7,
        "response_format": {"type": "json_object"},
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "logprobs": True,
        "n": 1,
        "top_k": 5,
        "do_sample": True,
        "stream_options": {"include_usage": True},
        "beam_width": 4,  # a field of the candidate's model class
        "_private": 1,  # plumbing of other libraries is not judged
    }
    router.invoke("hi", **passed)
    call = model(a).calls[-1]
    assert {k: call[k] for k in passed} == passed


def test_keywords_of_a_nested_router_are_accepted() -> None:
    inner = ByTenant(models=[spec("i")])
    outer = InOrder(models=[ModelSpec(name="inner", model=inner)])
    assert route_of(outer.invoke("hi", tenant="acme")).model == "inner"
    with pytest.raises(InvalidRequestError, match="tenant"):
        InOrder(models=[spec("x")]).invoke("hi", tenant="acme")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_tokens": "x"}, r"max_tokens must be a positive integer, got 'x'"),
        ({"max_tokens": 0}, r"max_tokens must be a positive integer, got 0"),
        ({"max_tokens": True}, r"max_tokens must be a positive integer"),
        ({"max_new_tokens": -3}, r"max_new_tokens must be a positive integer"),
        ({"temperature": -1}, r"temperature must be a number >= 0"),
        ({"temperature": "hot"}, r"temperature must be a number >= 0"),
        ({"temperature": float("nan")}, r"temperature must be a number >= 0"),
        ({"top_p": 1.5}, r"top_p must be a number in \[0, 1\]"),
        ({"task": 123}, r"task must be a non-empty string, got 123"),
        ({"task": ""}, r"task must be a non-empty string"),
        ({"stop": [1]}, r"stop must be a string or a list of strings"),
    ],
)
def test_bad_call_values_are_invalid_requests(kwargs: dict[str, Any], match: str) -> None:
    a = spec("a")
    with pytest.raises(InvalidRequestError, match=match):
        InOrder(models=[a]).invoke("hi", **kwargs)
    assert not model(a).calls


def test_min_quality_and_max_cost_are_checked_before_any_call() -> None:
    from llmrouter import CostAwareRouter

    a = spec("a")
    router = CostAwareRouter(models=[a])
    for kwargs in ({"min_quality": 2}, {"min_quality": -0.1}, {"max_cost": -1}):
        with pytest.raises(InvalidRequestError, match=next(iter(kwargs))):
            router.invoke("hi", **kwargs)
    with pytest.raises(InvalidRequestError, match="min_quality"):
        router.invoke("hi", config={"metadata": {"min_quality": 1.5}})
    assert not model(a).calls
    router.invoke("hi", min_quality=0.5, max_cost=1)
    assert model(a).calls


def test_stop_may_be_a_string() -> None:
    a = spec("a")
    router = InOrder(models=[a], stop="END")
    assert router.stop == ["END"]
    router.invoke("hi")
    assert model(a).calls[-1]["stop"] == ["END"]
    router.invoke("hi", stop="\n")
    assert model(a).calls[-1]["stop"] == ["\n"]
    list(router.stream("hi", stop="\n"))
    assert model(a).calls[-1]["stop"] == ["\n"]


def test_bad_router_stop_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="stop"):
        InOrder(models=[spec("a")], stop=[1])


# ------------------------------------------- construction, pickling, caching (issue 9)


@pytest.mark.parametrize(
    ("make", "typo", "meant"),
    [
        (lambda **kw: ModelRouter(models=[spec("a")], **kw), "defualt", "default"),
        (lambda **kw: CostAwareRouter(models=[spec("a")], **kw), "budegt", "budget"),
        (lambda **kw: CostAwareRouter(models=[spec("a")], **kw), "max_cots", "max_cost"),
        (lambda **kw: InOrder(models=[spec("a")], **kw), "temprature", "temperature"),
    ],
)
def test_a_misspelled_router_keyword_is_refused_with_the_closest_name(
    make: Any, typo: str, meant: str
) -> None:
    with pytest.raises(
        ConfigurationError, match=rf"{typo}: unknown keyword; did you mean '{meant}'"
    ):
        make(**{typo: 1})


def test_a_misspelled_budget_can_no_longer_switch_spending_limits_off() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'budget'"):
        CostAwareRouter(models=[spec("a")], budegt=Budget(usd=0.0001, per="day"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -3}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"timeout": float("inf")}, "timeout"),
    ],
)
def test_router_settings_outside_their_range_are_refused(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigurationError, match=rf"  - {field}: "):
        ModelRouter(models=[spec("a")], default="a", **kwargs)


def fake(name: str) -> ModelSpec:
    """A picklable model (the Recorder holds a lock)."""
    return ModelSpec(name=name, model=FakeListChatModel(responses=["A"]))


def _routers() -> list[BaseRouter]:
    return [
        ModelRouter(models=[fake("a")], default="a", temperature=0.5),
        CostAwareRouter(models=[fake("a")], budget=Budget(usd=1.0)),
        ABRouter(variants={"a": fake("a"), "b": fake("b")}, experiment="e"),
        MultiModalRouter(text=fake("a")),
    ]


@pytest.mark.parametrize("router", _routers(), ids=lambda r: type(r).__name__)
def test_routers_pickle_as_their_settings(router: BaseRouter) -> None:
    router.invoke("warm up")  # built models, locks and caches must not stop pickling
    copy = pickle.loads(pickle.dumps(router))
    assert type(copy) is type(router) and copy is not router
    assert [s.name for s in copy.models] == [s.name for s in router.models]
    assert copy.temperature == router.temperature
    assert copy.invoke("hi").content == "A"


def test_an_ab_router_copy_reopens_its_own_store(tmp_path: Any) -> None:
    db = tmp_path / "exp.db"
    router = ABRouter(
        variants={"a": fake("a"), "b": fake("b")}, experiment="e", store=f"sqlite:///{db}"
    )
    router.invoke("hi", thread_id="u1")
    copy = pickle.loads(pickle.dumps(router))
    copy.invoke("hi", thread_id="u2")
    assert copy.store is not router.store
    assert len(copy.store.records("e")) == 2  # one file, seen by both
    router.close()  # each closes the store it opened
    assert len(copy.store.records("e")) == 2
    copy.close()


def test_a_router_never_serves_an_old_route_record_from_langchains_cache() -> None:
    model = Recorder(reply="hello", usage=(10, 5))
    router = ModelRouter(
        models=[ModelSpec(name="a", model=model, input_cost=1.0, output_cost=2.0)], default="a"
    )
    set_llm_cache(InMemoryCache())
    try:
        first, second = router.invoke("hi"), router.invoke("hi")
    finally:
        set_llm_cache(None)
    before, after = route_of(first), route_of(second)
    assert len(model.calls) == 1  # the model's answer came from the cache
    assert second.content == "hello"
    assert after.request_id != before.request_id
    assert before.cost_usd and before.cost_usd > 0 and after.cost_usd == 0.0
    assert after.extra["cache_hit"] is True and "cache_hit" not in before.extra


def test_a_router_refuses_a_cache_of_its_own() -> None:
    with pytest.raises(ConfigurationError, match="does not cache its own answers"):
        ModelRouter(models=[spec("a")], default="a", cache=InMemoryCache())


def test_generate_signatures_are_pinned_for_every_router_class() -> None:
    """LangChain asks on every call whether `_generate`/`_agenerate` take `run_manager`;
    each router class (also one a user writes) answers from a pinned signature."""
    from langchain_core.utils._signature import _signature_parameters

    class Mine(InOrder):
        async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
            return await super()._agenerate(*args, **kwargs)

    for cls in (BaseRouter, CostAwareRouter, Mine):
        for name in ("_generate", "_agenerate"):
            method = getattr(cls, name)
            assert "__signature__" in vars(method), (cls, name)
    # the pinned signature is the true one: LangChain still passes its run manager
    assert "run_manager" in _signature_parameters(BaseRouter._agenerate)
    assert "run_manager" not in _signature_parameters(Mine._agenerate)
    assert Mine(models=[spec("a", reply="mine")]).invoke("hi").content == "mine"
