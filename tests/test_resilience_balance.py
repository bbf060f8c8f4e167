"""Balancer: the order in which a model's replicas get its tries."""

from __future__ import annotations

import asyncio
from collections import Counter

from langchain_core.language_models import FakeListChatModel

from llmrouter import ModelSpec
from llmrouter.resilience._balance import Balancer


def replica(name: str, weight: float = 1.0) -> ModelSpec:
    return ModelSpec(name=name, model=FakeListChatModel(responses=["x"]), weight=weight)


EAST, WEST, NORTH = replica("east"), replica("west"), replica("north")


def names(specs: list[ModelSpec]) -> list[str]:
    return [s.name for s in specs]


def test_least_busy_takes_the_replica_with_fewest_calls_in_flight() -> None:
    balancer = Balancer("least_busy")
    with balancer.busy("east"), balancer.busy("east"), balancer.busy("west"):
        assert names(balancer.order([EAST, WEST, NORTH]))[0] == "north"
        assert names(balancer.order([EAST, WEST]))[0] == "west"
    assert balancer.in_flight("east") == 0


def test_least_busy_ties_take_turns() -> None:
    balancer = Balancer("least_busy")
    firsts = [names(balancer.order([EAST, WEST, NORTH]))[0] for _ in range(6)]
    assert Counter(firsts) == {"east": 2, "west": 2, "north": 2}


def test_latency_prefers_the_fastest_and_tries_the_unmeasured_first() -> None:
    balancer = Balancer("latency")
    balancer.observed("east", 0.5)
    balancer.observed("west", 0.1)
    assert names(balancer.order([EAST, WEST, NORTH])) == ["north", "west", "east"]
    for _ in range(10):  # east got fast: the average follows
        balancer.observed("east", 0.01)
    assert names(balancer.order([EAST, WEST])) == ["east", "west"]
    assert 0.01 < (balancer.latency("east") or 0) < 0.05


def test_weighted_spreads_by_weight() -> None:
    balancer = Balancer("weighted", seed=7)
    heavy, light = replica("heavy", weight=3), replica("light", weight=1)
    firsts = Counter(names(balancer.order([heavy, light]))[0] for _ in range(4000))
    assert 0.70 < firsts["heavy"] / 4000 < 0.80  # 3 : 1


def test_tried_replicas_go_last() -> None:
    balancer = Balancer("least_busy")
    order = names(balancer.order([EAST, WEST, NORTH], tried=frozenset({"east", "west"})))
    assert order[0] == "north" and set(order) == {"east", "west", "north"}


async def test_async_calls_count_in_flight_too() -> None:
    balancer = Balancer("least_busy")
    inside = asyncio.Event()
    release = asyncio.Event()

    async def call() -> None:
        async with balancer.abusy("east"):
            inside.set()
            await release.wait()

    task = asyncio.create_task(call())
    await inside.wait()
    assert balancer.in_flight("east") == 1
    release.set()
    await task
    assert balancer.in_flight("east") == 0
