"""The executor and a model with replicas: one model to the router, tries spread and
failed over across its endpoints, breakers per replica (llmrouter.core._execution)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from _fixtures.fakes import InOrder, Recorder, joined
from tenacity import wait_none

from llmrouter import AllModelsFailedError, ModelSpec, route_of
from llmrouter.errors import ConfigurationError
from llmrouter.resilience import CircuitBreaker, MemoryBreakerBoard, RetryPolicy, TokenRateLimiter


def endpoint(name: str, **kwargs: Any) -> ModelSpec:
    kwargs.setdefault("reply", f"from {name}")
    return ModelSpec(name=name, model=Recorder(**kwargs))


def opens_after(failures: int) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=failures, window=60, cooldown=60, board=MemoryBreakerBoard()
    )


def calls(spec: ModelSpec) -> int:
    model = spec.model
    assert isinstance(model, Recorder)
    return len(model.calls)


def group(*replicas: ModelSpec, **kwargs: Any) -> ModelSpec:
    kwargs.setdefault("input_cost", 1.0)
    return ModelSpec(name="gpt", replicas=list(replicas), **kwargs)


def router(*specs: ModelSpec, **kwargs: Any) -> InOrder:
    kwargs.setdefault("retry", RetryPolicy.attempts(2, wait=wait_none()))
    kwargs.setdefault("circuit_breaker", CircuitBreaker(board=MemoryBreakerBoard()))
    return InOrder(models=list(specs), **kwargs)


def test_the_router_sees_one_model_and_the_record_names_the_replica() -> None:
    east, west = endpoint("east", usage=(100, 50)), endpoint("west", usage=(100, 50))
    r = router(group(east, west, input_cost=2.0, output_cost=4.0))
    record = route_of(r.invoke("hi"))
    assert record.model == "gpt" and record.extra["replica"] in {"east", "west"}
    assert record.attempts[0].model == "gpt" and record.attempts[0].replica in {"east", "west"}
    assert record.cost_usd == pytest.approx((100 * 2.0 + 50 * 4.0) / 1e6)  # the group's prices


def test_a_failed_replica_fails_over_to_the_next_at_once() -> None:
    east, west = endpoint("east", fail_with=ConnectionError), endpoint("west")
    r = router(group(east, west, balance="latency"))
    r.spec("gpt").balancer.observed("west", 1.0)  # west measured slow: east goes first
    answer = r.invoke("hi")
    record = route_of(answer)
    assert answer.content == "from west" and record.model == "gpt"
    assert [(a.replica, a.ok) for a in record.attempts] == [("east", False), ("west", True)]
    assert calls(east) == 1 and calls(west) == 1  # no retry of east before failing over


def test_breakers_are_per_replica() -> None:
    east, west = endpoint("east", fail_with=ConnectionError), endpoint("west")
    breaker = CircuitBreaker(
        failure_threshold=2, window=60, cooldown=60, board=MemoryBreakerBoard()
    )
    r = router(group(east, west, balance="latency"), circuit_breaker=breaker)
    r.spec("gpt").balancer.observed("west", 1.0)
    for _ in range(2):
        r.invoke("hi")
    health = r.health()  # the model, and each of its replicas
    assert health["east"]["state"] == "open" and health["west"]["state"] == "closed"
    assert health["gpt"]["state"] == "closed"
    record = route_of(r.invoke("hi"))  # east skipped without a call
    assert [a.replica for a in record.attempts] == ["west"] and calls(east) == 2


def test_all_replicas_open_skips_the_model() -> None:
    east = endpoint("east", fail_with=ConnectionError)
    backup = endpoint("backup")
    breaker = CircuitBreaker(
        failure_threshold=1, window=60, cooldown=60, board=MemoryBreakerBoard()
    )
    r = router(group(east), backup, circuit_breaker=breaker)
    assert route_of(r.invoke("hi")).model == "backup"  # east failed (twice: the retry)
    record = route_of(r.invoke("hi"))
    assert record.attempts[0].kind == "circuit_open" and record.attempts[0].model == "gpt"
    assert "all its replicas" in str(record.attempts[0].error)


def test_when_every_replica_failed_the_retry_policy_and_fallback_apply() -> None:
    east = endpoint("east", fail_with=ConnectionError)
    west = endpoint("west", fail_with=ConnectionError)
    with pytest.raises(AllModelsFailedError) as info:
        router(group(east, west), circuit_breaker=None).invoke("hi")
    tried = [(a.model, a.replica) for a in info.value.record.attempts]
    # each replica once (fail-over), then one retry of the model (2 attempts in all)
    assert len(tried) == 3 and {r for _, r in tried[:2]} == {"east", "west"}


def test_a_request_the_model_refuses_is_not_failed_over() -> None:
    from llmrouter.errors import InvalidRequestError

    east, west = endpoint("east", fail_with=InvalidRequestError), endpoint("west")
    r = router(group(east, west, balance="latency"), circuit_breaker=None)
    r.spec("gpt").balancer.observed("west", 1.0)
    with pytest.raises(AllModelsFailedError):
        r.invoke("hi")
    assert calls(west) == 0  # another endpoint of the same model would refuse it too


def test_least_busy_spreads_concurrent_calls() -> None:
    replicas = [endpoint(n, sleep=0.05) for n in ("east", "west", "north")]
    r = router(group(*replicas), circuit_breaker=None)
    threads = [threading.Thread(target=r.invoke, args=("hi",)) for _ in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls(s) for s in replicas) == [3, 3, 3]
    assert r.spec("gpt").balancer.in_flight("east") == 0


async def test_async_and_streams_use_replicas_too() -> None:
    east, west = endpoint("east", fail_with=ConnectionError), endpoint("west", reply="a b c")
    r = router(group(east, west, balance="latency"), circuit_breaker=None)
    r.spec("gpt").balancer.observed("west", 1.0)
    record = route_of(await r.ainvoke("hi"))
    assert record.extra["replica"] == "west"
    chunks = [c async for c in r.astream("hi")]
    assert joined(chunks).content == "a b c"
    assert route_of(joined(chunks)).extra["replica"] == "west"
    await asyncio.sleep(0)
    assert r.spec("gpt").balancer.in_flight("west") == 0


def test_a_cached_answer_serves_every_replica() -> None:
    from llmrouter.state import MemoryResponseCache

    east, west = endpoint("east"), endpoint("west")
    r = router(group(east, west), response_cache=MemoryResponseCache())
    first = route_of(r.invoke("hi"))
    second = route_of(r.invoke("hi"))
    assert first.extra["cache"] == "miss" and second.extra["cache"] == "hit"
    assert calls(east) + calls(west) == 1


def test_replica_names_are_unique_and_replicas_have_none() -> None:
    with pytest.raises(ConfigurationError, match="unique"):
        group(endpoint("east"), endpoint("east"))
    with pytest.raises(ConfigurationError, match="replicas of its own"):
        group(group(endpoint("east")))
    assert group(endpoint("east")).model is not None  # the first replica's model


def limited(name: str, tokens_per_minute: int, **kwargs: Any) -> ModelSpec:
    limiter = TokenRateLimiter(tokens_per_minute)
    return endpoint(name, **kwargs).model_copy(update={"token_limiter": limiter})


def test_a_replica_out_of_tokens_hands_the_call_to_one_with_room() -> None:
    full = limited("east", 1_000, usage=(10, 5))
    roomy = limited("west", 1_000, usage=(10, 5))
    assert full.token_limiter is not None and full.token_limiter.try_take(1_000) == 0.0
    breaker = opens_after(1)
    r = router(group(full, roomy, balance="latency"), circuit_breaker=breaker, timeout=0.5)
    r.spec("gpt").balancer.observed("west", 1.0)  # west measured slow: east goes first
    record = route_of(r.invoke("hi", max_tokens=10))
    assert [(a.replica, a.kind) for a in record.attempts] == [
        ("east", "rate_limited"),
        ("west", None),
    ]
    assert calls(full) == 0 and breaker.allow("east")  # throttled, not failed


def test_when_every_replica_is_out_of_tokens_the_call_waits_for_room() -> None:
    east, west = limited("east", 6_000), limited("west", 6_000)  # 100 tokens a second
    for replica in (east, west):
        assert replica.token_limiter is not None and replica.token_limiter.try_take(6_000) == 0
    record = route_of(router(group(east, west), timeout=5).invoke("hi", max_tokens=5))
    kinds = [a.kind for a in record.attempts]
    assert kinds == ["rate_limited", "rate_limited", None] and record.model == "gpt"
