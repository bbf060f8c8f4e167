"""The sync and async drivers perform the same decisions: parity, the first-try rule,
slots held per try (and for a whole stream), and the async finish hook."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from _fixtures.fakes import InOrder, Recorder, joined, spec
from langchain_core.rate_limiters import InMemoryRateLimiter
from tenacity import wait_fixed, wait_none

import llmrouter.resilience._retry as retry_module
from llmrouter import AllModelsFailedError, ModelSpec, RouteRecord, route_of
from llmrouter.core import RouteRequest
from llmrouter.core import _drivers as drivers
from llmrouter.resilience import RetryPolicy

MODES = ["invoke", "ainvoke", "stream", "astream"]


def call(router: InOrder, mode: str, text: str = "x") -> RouteRecord:
    """Run one request in ``mode``; the route record of the answer."""
    if mode == "invoke":
        return route_of(router.invoke(text))
    if mode == "ainvoke":
        return route_of(asyncio.run(router.ainvoke(text)))
    if mode == "stream":
        return route_of(joined(list(router.stream(text))))
    return route_of(joined(asyncio.run(_collect(router, text))))


async def _collect(router: InOrder, text: str) -> list[Any]:
    return [chunk async for chunk in router.astream(text)]


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "plain": lambda: {},
    "limit": lambda: {"max_concurrency": 2},
    "rate_limiter": lambda: {
        "rate_limiter": InMemoryRateLimiter(requests_per_second=1000, max_bucket_size=10)
    },
    "deadline": lambda: {"attempt_timeout": 5.0, "first_token_timeout": 5.0},
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_makes_the_same_attempts(scenario: str, mode: str) -> None:
    settings = SCENARIOS[scenario]()
    a = ModelSpec(name="a", model=Recorder(fail_times=2), **settings)
    b = ModelSpec(name="b", model=Recorder(fail_with=ValueError), **settings)
    c = ModelSpec(name="c", model=Recorder(reply="done"), **settings)
    router = InOrder(
        models=[b, a, c], retry=RetryPolicy.attempts(3, wait=wait_none()), circuit_breaker=None
    )
    record = call(router, mode)
    assert [(x.model, x.ok, x.kind) for x in record.attempts] == [
        ("b", False, "fatal"),
        ("a", False, "retryable"),
        ("a", False, "retryable"),
        ("a", True, None),
    ]
    assert record.model == "a" and record.streamed is mode.endswith("stream")


class CountingRetrying(retry_module.Retrying):
    made = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).made += 1
        super().__init__(*args, **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_the_first_try_takes_no_tenacity_detour_and_a_retry_does(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retry_module, "Retrying", CountingRetrying)
    CountingRetrying.made = 0
    policy = RetryPolicy.attempts(3, wait=wait_none())
    call(InOrder(models=[spec("a")], retry=policy), mode)
    assert CountingRetrying.made == 0
    call(InOrder(models=[spec("b", fail_times=1)], retry=policy), mode)
    assert CountingRetrying.made == 1


@pytest.mark.parametrize("mode", MODES)
def test_no_slot_is_held_while_waiting_to_retry(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a = ModelSpec(name="a", model=Recorder(fail_times=1), max_concurrency=1)
    limit = a.limit
    assert limit is not None
    seen: list[int] = []
    real_sleep, real_asleep = time.sleep, asyncio.sleep
    here = threading.current_thread()  # servers of other tests may sleep in their threads

    def sleep(seconds: float) -> None:
        if threading.current_thread() is here:
            seen.append(limit.in_flight)
        real_sleep(seconds)

    async def asleep(seconds: float) -> None:
        if threading.current_thread() is here:
            seen.append(limit.in_flight)
        await real_asleep(seconds)

    monkeypatch.setattr(drivers.time, "sleep", sleep)
    monkeypatch.setattr(drivers.asyncio, "sleep", asleep)
    router = InOrder(models=[a], retry=RetryPolicy.attempts(2, wait=wait_fixed(0.01)))
    assert call(router, mode).model == "a"
    assert seen == [0]
    assert limit.in_flight == 0


def test_a_stream_holds_its_slot_until_its_last_chunk() -> None:
    a = ModelSpec(name="a", model=Recorder(reply="one two three"), max_concurrency=1)
    limit = a.limit
    assert limit is not None
    stream = InOrder(models=[a]).stream("x")
    held = [limit.in_flight for _ in stream]
    assert held[:3] == [1, 1, 1] and limit.in_flight == 0


async def test_an_astream_holds_its_slot_until_its_last_chunk() -> None:
    a = ModelSpec(name="a", model=Recorder(reply="one two three"), max_concurrency=1)
    limit = a.limit
    assert limit is not None
    held = [limit.in_flight async for _ in InOrder(models=[a]).astream("x")]
    assert held[:3] == [1, 1, 1] and limit.in_flight == 0


class Hooks(InOrder):
    ran: list[str] = []

    def on_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        self.ran.append("sync")

    async def aon_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        await asyncio.sleep(0)
        self.ran.append("async" + (" abandoned" if record.extra.get("abandoned") else ""))


async def test_an_abandoned_astream_runs_the_async_finish_hook() -> None:
    router = Hooks(models=[spec("a", reply="one two three four")])
    router.ran = []
    stream = router.astream("x")
    await anext(stream)
    await stream.aclose()
    # LangChain's astream leaves its inner generators to the loop's finalizer: give it turns
    for _ in range(100):
        if router.ran:
            break
        await asyncio.sleep(0.01)
    assert router.ran == ["async abandoned"]


@pytest.mark.parametrize("mode", MODES)
def test_each_world_runs_its_own_finish_hook(mode: str) -> None:
    router = Hooks(models=[spec("a")])
    router.ran = []
    call(router, mode)
    assert router.ran == (["async"] if mode.startswith("a") else ["sync"])


class Silent(Recorder):
    """Streams nothing at all, as a server that answers a streamed request with a plain body."""

    def _stream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        self._begin(stop, kwargs, messages)
        return iter(())


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_a_stream_that_sends_nothing_is_a_failed_try(mode: str) -> None:
    silent = ModelSpec(name="silent", model=Silent())
    router = InOrder(models=[silent, spec("c", reply="done")], circuit_breaker=None)
    record = call(router, mode)
    assert [(x.model, x.ok, x.kind, x.error_type) for x in record.attempts] == [
        ("silent", False, "fatal", "EmptyStreamError"),  # not retried: it would send nothing again
        ("c", True, None, None),
    ]
    alone = InOrder(models=[silent], circuit_breaker=None)
    with pytest.raises(AllModelsFailedError, match="ended its stream without sending anything"):
        call(alone, mode)
    # an empty answer is not an empty stream: its chunks still come (one empty, one final)
    assert call(InOrder(models=[spec("e", reply="")], circuit_breaker=None), mode).model == "e"
