"""The executor's resilience: retries, fallback kinds, breakers, deadlines,
mid-stream continuation, limits, bad input, abandoned streams."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from _fixtures.fakes import InOrder, Recorder, joined, spec
from langchain_core.exceptions import ContextOverflowError
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.rate_limiters import InMemoryRateLimiter
from tenacity import wait_none

from llmrouter import AllModelsFailedError, ModelSpec, RouteRecord, route_of
from llmrouter._callbacks import RunContext
from llmrouter.core import RouteRequest
from llmrouter.core._execution import CONTINUE_PROMPT, Call, Execution
from llmrouter.errors import InvalidRequestError, StreamInterruptedError, TokenLimitError
from llmrouter.resilience import (
    CircuitBreaker,
    MemoryBreakerBoard,
    RetryPolicy,
    TokenRateLimiter,
    _breaker,
)
from llmrouter.resilience._timeouts import StreamDeadlines

FAST = RetryPolicy.attempts(3, wait=wait_none())


def model(s: ModelSpec) -> Recorder:
    assert isinstance(s.model, Recorder)
    return s.model


def test_transient_errors_are_retried_on_the_same_model() -> None:
    a = spec("a", reply="A", fail_times=2)
    record = route_of(InOrder(models=[a, spec("b")], retry=FAST).invoke("x"))
    assert [(x.model, x.ok, x.kind) for x in record.attempts] == [
        ("a", False, "retryable"),
        ("a", False, "retryable"),
        ("a", True, None),
    ]


def test_a_rejected_request_is_not_retried_but_falls_back() -> None:
    a = spec("a", fail_with=ValueError)
    record = route_of(InOrder(models=[a, spec("b")], retry=FAST).invoke("x"))
    assert [(x.model, x.kind) for x in record.attempts] == [("a", "fatal"), ("b", None)]
    assert len(model(a).calls) == 1


def test_a_model_policy_beats_the_router_policy() -> None:
    a = ModelSpec(name="a", model=Recorder(fail_times=5), retry=RetryPolicy.none())
    record = route_of(InOrder(models=[a, spec("b")], retry=FAST).invoke("x"))
    assert [x.model for x in record.attempts] == ["a", "b"]


def test_context_length_error_falls_back_to_a_larger_window() -> None:
    small = ModelSpec(
        name="small", model=Recorder(fail_with=ContextOverflowError), context_window=4096
    )
    smaller = spec("smaller")
    smaller = ModelSpec(name="smaller", model=Recorder(reply="no"), context_window=2048)
    large = ModelSpec(name="large", model=Recorder(reply="L"), context_window=128_000)
    msg = InOrder(models=[small, smaller, large], retry=FAST).invoke("a very long prompt")
    record = route_of(msg)
    assert msg.content == "L" and record.extra["context_fallback"] == ["large"]
    assert [(x.model, x.kind) for x in record.attempts] == [
        ("small", "context_length"),
        ("large", None),
    ]
    assert not model(smaller).calls


def test_breaker_opens_skips_then_lets_a_trial_through(monkeypatch: pytest.MonkeyPatch) -> None:
    # The breaker's clock moves only when the test says so: on a loaded machine the
    # calls between opening and the skip could otherwise outlast a real cool-down.
    now = [1000.0]
    monkeypatch.setattr(_breaker, "time", SimpleNamespace(time=lambda: now[0]))
    breaker = CircuitBreaker(
        failure_threshold=2, window=60, cooldown=0.3, board=MemoryBreakerBoard()
    )
    a = spec("a", fail_with=ConnectionError)
    router = InOrder(models=[a, spec("b")], max_retries=0, circuit_breaker=breaker)
    router.invoke("1")
    router.invoke("2")
    assert router.health()["a"]["state"] == "open"
    now[0] += 0.29  # not yet cooled down
    record = route_of(router.invoke("3"))
    assert (record.attempts[0].model, record.attempts[0].kind) == ("a", "circuit_open")
    assert len(model(a).calls) == 2  # skipped, not called
    now[0] += 0.02  # the cool-down has passed
    model(a).fail_with = None  # the model recovered
    record = route_of(router.invoke("4"))  # half-open trial
    assert record.model == "a" and router.health()["a"]["state"] == "closed"


def test_breakers_are_shared_by_model_name_across_routers() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60, board=MemoryBreakerBoard())
    InOrder(
        models=[spec("a", fail_with=ConnectionError), spec("b")],
        max_retries=0,
        circuit_breaker=breaker,
    ).invoke("x")
    other = InOrder(models=[spec("a"), spec("b")], circuit_breaker=breaker)
    assert route_of(other.invoke("x")).attempts[0].kind == "circuit_open"


def test_a_rejected_request_does_not_open_the_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=1, board=MemoryBreakerBoard())
    router = InOrder(models=[spec("a", fail_with=ValueError), spec("b")], circuit_breaker=breaker)
    router.invoke("x")
    assert router.health()["a"]["state"] == "closed"


def test_attempt_timeout_falls_back() -> None:
    slow = spec("slow", sleep=1.0)
    started = time.monotonic()
    record = route_of(InOrder(models=[slow, spec("b")], timeout=0.1, max_retries=0).invoke("x"))
    assert time.monotonic() - started < 0.9
    assert (record.attempts[0].error_type, record.model) == ("AttemptTimeoutError", "b")


async def test_async_attempt_timeout_falls_back() -> None:
    slow = ModelSpec(
        name="slow", model=Recorder(sleep=1.0), attempt_timeout=0.1, retry=RetryPolicy.none()
    )
    record = route_of(await InOrder(models=[slow, spec("b")]).ainvoke("x"))
    assert record.attempts[0].error_type == "AttemptTimeoutError" and record.model == "b"


def test_first_token_timeout_on_streams() -> None:
    slow = spec("slow", sleep=1.0, reply="late")
    router = InOrder(
        models=[slow, spec("b", reply="fast one")], first_token_timeout=0.1, max_retries=0
    )
    full = joined(list(router.stream("x")))
    assert full.content == "fast one"
    assert route_of(full).attempts[0].error_type == "AttemptTimeoutError"


class Paced(Recorder):
    """Streams ``pace``: (seconds to wait, text) per chunk; ``""`` is an empty chunk."""

    pace: list[tuple[float, str]] = []
    then_fail: bool = False
    """Raise ConnectionError after the last chunk."""

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self._begin(stop, kw, messages)
        for delay, text in self.pace:
            time.sleep(delay)
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        if self.then_fail:
            raise ConnectionError("reset by peer")

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Any:
        self._begin(stop, kw, messages)
        for delay, text in self.pace:
            await asyncio.sleep(delay)
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        if self.then_fail:
            raise ConnectionError("reset by peer")


def paced(
    name: str, *pace: tuple[float, str], then_fail: bool = False, **settings: Any
) -> ModelSpec:
    return ModelSpec(name=name, model=Paced(pace=list(pace), then_fail=then_fail), **settings)


def streamed(router: InOrder, mode: str) -> Any:
    if mode == "stream":
        return joined(list(router.stream("x")))
    if mode == "invoke-streaming":
        return router.model_copy(update={"streaming": True}).invoke("x")

    async def collect() -> list[Any]:
        return [c async for c in router.astream("x")]

    return joined(asyncio.run(collect()))


STREAM_MODES = ["stream", "astream", "invoke-streaming"]


@pytest.mark.parametrize("mode", STREAM_MODES)
def test_the_first_token_deadline_waits_for_content_not_an_empty_chunk(mode: str) -> None:
    stalls = paced("stalls", (0, ""), (0, ""), (1.0, "late"))
    router = InOrder(models=[stalls, spec("b", reply="fast one")], first_token_timeout=0.2)
    started = time.monotonic()
    full = streamed(router.model_copy(update={"retry": RetryPolicy.none()}), mode)
    assert time.monotonic() - started < 0.8
    assert full.content == "fast one"
    first = route_of(full).attempts[0]
    assert (first.model, first.partial, first.error_type) == (
        "stalls",
        False,
        "AttemptTimeoutError",
    )
    assert "first chunk" in str(first.error)


@pytest.mark.parametrize("mode", STREAM_MODES)
def test_a_failure_after_only_empty_chunks_is_retried_and_falls_back_silently(mode: str) -> None:
    """Nothing of the answer reached the caller: no StreamInterruptedError, no continuation."""
    breaks = paced("breaks", (0, ""), then_fail=True)
    router = InOrder(models=[breaks, spec("b", reply="whole answer")], retry=FAST)
    full = streamed(router, mode)
    assert full.content == "whole answer"
    record = route_of(full)
    assert [(a.model, a.ok, a.partial) for a in record.attempts] == [
        ("breaks", False, False),
        ("breaks", False, False),
        ("breaks", False, False),
        ("b", True, False),
    ]
    assert "continued" not in record.extra


@pytest.mark.parametrize("mode", STREAM_MODES)
def test_a_stall_between_chunks_continues_on_the_next_model(mode: str) -> None:
    stalls = paced("stalls", (0, "one"), (0, " two"), (1.0, " three"))
    router = InOrder(
        models=[stalls, spec("b", reply=" and three")], idle_timeout=0.2, retry=RetryPolicy.none()
    )
    started = time.monotonic()
    full = streamed(router, mode)
    assert time.monotonic() - started < 0.8
    assert full.content == "one two and three"
    record = route_of(full)
    assert record.extra["continued"] == [{"from": "stalls", "chars": 7}]
    assert (record.attempts[0].partial, record.attempts[0].error_type) == (
        True,
        "AttemptTimeoutError",
    )
    assert "next chunk" in str(record.attempts[0].error)


@pytest.mark.parametrize("mode", STREAM_MODES)
def test_a_trickle_is_cut_at_the_stream_deadline(mode: str) -> None:
    trickle = paced("trickle", *[(0.05, f"{i} ") for i in range(40)], stream_timeout=0.4)
    router = InOrder(models=[trickle, spec("b", reply="rest")], retry=RetryPolicy.none())
    started = time.monotonic()
    full = streamed(router, mode)
    assert time.monotonic() - started < 1.5
    record = route_of(full)
    assert record.model == "b" and record.attempts[0].partial
    assert "complete answer" in str(record.attempts[0].error)
    assert full.content.startswith("0 1 2 ") and full.content.endswith("rest")


def test_stream_deadlines_per_model_win_and_the_attempt_timeout_bounds_a_stream() -> None:
    """A model's own setting wins over the router's; without any ``stream_timeout``
    the attempt timeout (``attempt_timeout`` or the router's ``timeout``) bounds it."""
    own = paced("own", idle_timeout=1.5, first_token_timeout=2, stream_timeout=9)
    plain = paced("plain")
    router = InOrder(
        models=[own, plain], idle_timeout=0.5, first_token_timeout=1, timeout=7, streaming=True
    )
    request = RouteRequest(messages=[HumanMessage("x")])
    ranking = router.rank(request)
    ex = Execution(router, request, ranking, RunContext(None, None), {}, streamed=True)
    call = ex.next()
    assert isinstance(call, Call) and call.stream == StreamDeadlines(2, 1.5, 9)
    ex.failed(call, ValueError("no"))
    call = ex.next()
    assert isinstance(call, Call) and call.stream == StreamDeadlines(1, 0.5, 7)
    assert InOrder(models=[plain]).idle_timeout == 60  # the documented default


def test_mid_stream_failure_continues_on_the_next_model() -> None:
    a = spec("a", reply="one two three", fail_after_chunks=2)
    b = spec("b", reply="and four")
    full = joined(list(InOrder(models=[a, b], max_retries=0).stream("count")))
    assert full.content == "one twoand four"  # what was sent stays; b completes it
    record = route_of(full)
    assert record.model == "b" and record.extra["continued"] == [{"from": "a", "chars": 7}]
    assert [(x.model, x.partial) for x in record.attempts] == [("a", True), ("b", False)]
    sent = model(b).calls[-1]["messages"]
    assert isinstance(sent[-2], AIMessage) and sent[-2].content == "one two"
    assert isinstance(sent[-1], HumanMessage) and sent[-1].content == CONTINUE_PROMPT


async def test_async_mid_stream_failure_continues() -> None:
    a = spec("a", reply="one two three", fail_after_chunks=1)
    chunks = [
        c async for c in InOrder(models=[a, spec("b", reply="x")], max_retries=0).astream("q")
    ]
    full = joined(chunks)
    assert full.content == "onex" and route_of(full).extra["continued"][0]["from"] == "a"


def test_mid_stream_failure_with_no_model_left_raises_with_the_record() -> None:
    a = spec("a", reply="one two three", fail_after_chunks=1)
    with pytest.raises(StreamInterruptedError) as info:
        list(InOrder(models=[a], max_retries=0).stream("q"))
    assert info.value.record.attempts[0].partial


def test_concurrency_limit_is_shared_by_every_router_using_the_spec() -> None:
    limited = ModelSpec(name="m", model=Recorder(sleep=0.02), max_concurrency=2)
    r1, r2 = InOrder(models=[limited]), InOrder(models=[limited])
    threads = [threading.Thread(target=r.batch, args=(["x"] * 6,)) for r in (r1, r2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(model(limited).calls) == 12 and model(limited).peak == 2


async def test_rate_limiter_spaces_calls() -> None:
    limiter = InMemoryRateLimiter(
        requests_per_second=20, check_every_n_seconds=0.005, max_bucket_size=1
    )
    limited = ModelSpec(name="m", model=Recorder(), rate_limiter=limiter)
    router = InOrder(models=[limited])
    started = time.monotonic()
    await router.abatch(["x"] * 5)
    assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([], "no messages"),
        ("", "empty"),
        ([HumanMessage(content="")], "empty"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (12345, "cannot read a int"),
    ],
)
def test_bad_input_is_a_typed_error_before_any_model_is_called(bad: Any, match: str) -> None:
    a = spec("a")
    with pytest.raises(InvalidRequestError, match=match):
        InOrder(models=[a]).invoke(bad)
    assert not model(a).calls


def test_utf8_bytes_are_accepted() -> None:
    a = spec("a")
    InOrder(models=[a]).invoke("héllo".encode())
    assert model(a).calls[0]["messages"][0].content == "héllo"


def test_all_failed_error_keeps_every_attempt() -> None:
    router = InOrder(
        models=[spec("a", fail_with=ConnectionError), spec("b", fail_with=ValueError)], retry=FAST
    )
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke("x")
    assert [(a.model, a.kind) for a in info.value.record.attempts] == [
        ("a", "retryable"),
        ("a", "retryable"),
        ("a", "retryable"),
        ("b", "fatal"),
    ]


class Finishing(InOrder):
    seen: list[RouteRecord] = []

    def on_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        self.seen.append(record)


def test_an_abandoned_stream_still_reaches_the_finish_hook() -> None:
    router = Finishing(models=[spec("a", reply="one two three four")])
    router.seen = []
    stream = router.stream("x")
    next(stream)
    stream.close()
    assert len(router.seen) == 1 and router.seen[0].extra["abandoned"] is True


# ------------------------------------------------------------------ token limits


def tokens_spec(name: str, tokens_per_minute: int, **kwargs: Any) -> ModelSpec:
    limiter = TokenRateLimiter(tokens_per_minute)
    return ModelSpec(name=name, model=Recorder(**kwargs), token_limiter=limiter)


def limiter_of(s: ModelSpec) -> TokenRateLimiter:
    assert s.token_limiter is not None
    return s.token_limiter


@pytest.mark.parametrize("mode", ["invoke", "stream", "ainvoke", "astream"])
async def test_a_call_takes_its_estimate_and_is_settled_to_its_usage(mode: str) -> None:
    a = tokens_spec("a", 10_000, usage=(10, 5))
    router = InOrder(models=[a])
    if mode == "invoke":
        router.invoke("hello", max_tokens=100)
    elif mode == "ainvoke":
        await router.ainvoke("hello", max_tokens=100)
    elif mode == "stream":
        joined(router.stream("hello", max_tokens=100))
    else:
        [c async for c in router.astream("hello", max_tokens=100)]
    # the estimate (the prompt + 100) was taken, then settled to the 15 tokens used
    assert limiter_of(a).try_take(10_000 - 15) == 0.0
    assert limiter_of(a).try_take(50) > 0


def test_without_room_a_call_waits_when_the_wait_fits_its_deadline() -> None:
    a = tokens_spec("a", 6_000, reply="A")  # 100 tokens a second come back
    assert limiter_of(a).try_take(6_000) == 0.0  # the minute is used up
    started = time.monotonic()
    record = route_of(InOrder(models=[a, spec("b")], timeout=5).invoke("x", max_tokens=5))
    assert [(x.model, x.kind) for x in record.attempts] == [("a", "rate_limited"), ("a", None)]
    assert 0.05 <= time.monotonic() - started < 2  # about 10 tokens' worth: 0.1 s
    assert record.model == "a" and "no room for about" in (record.attempts[0].error or "")


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_without_room_in_time_the_next_model_answers_and_no_breaker_counts(
    asynchronous: bool,
) -> None:
    a = tokens_spec("a", 60)  # one token a second
    assert limiter_of(a).try_take(60) == 0.0
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60, board=MemoryBreakerBoard())
    router = InOrder(models=[a, spec("b")], timeout=1, circuit_breaker=breaker)
    started = time.monotonic()
    message = await router.ainvoke("x", max_tokens=5) if asynchronous else router.invoke("x")
    record = route_of(message)
    assert [(x.model, x.kind) for x in record.attempts] == [("a", "rate_limited"), ("b", None)]
    assert time.monotonic() - started < 0.5  # no pointless wait for a minute's tokens
    assert breaker.allow("a") and model(a).calls == []  # not a failure of the model


def test_a_request_larger_than_a_minute_of_tokens_is_refused_by_that_model() -> None:
    a = tokens_spec("a", 50)
    with pytest.raises(AllModelsFailedError) as info:
        InOrder(models=[a]).invoke("x", max_tokens=100)
    assert isinstance(info.value.last_error, TokenLimitError)
    assert "more than its 50 tokens per minute" in str(info.value.last_error)
    assert model(a).calls == []


def test_a_failed_call_gives_its_tokens_back() -> None:
    a = tokens_spec("a", 1_000, fail_with=ValueError)
    record = route_of(InOrder(models=[a, spec("b")], retry=FAST).invoke("x", max_tokens=400))
    assert [x.model for x in record.attempts] == ["a", "b"]
    assert limiter_of(a).try_take(1_000) == 0.0  # the whole minute is free again


def test_a_cache_hit_takes_no_tokens() -> None:
    from llmrouter.state import MemoryResponseCache

    a = tokens_spec("a", 1_000, usage=(10, 5))
    router = InOrder(models=[a], response_cache=MemoryResponseCache())
    router.invoke("same", max_tokens=20)
    assert limiter_of(a).try_take(1_000 - 15) == 0.0  # the first call's 15 tokens
    assert route_of(router.invoke("same", max_tokens=20)).extra["cache"] == "hit"
    assert limiter_of(a).try_take(5) > 0  # the hit took none: still just those 15
