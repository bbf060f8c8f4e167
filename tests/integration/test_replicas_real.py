"""A model with two real endpoints (llm-katan), one of them failing every request:
every call is answered, the broken replica's breaker opens, and a router in another
process on the same Redis state skips it from its first call."""

from __future__ import annotations

import asyncio
import uuid

from _fixtures.katan import KatanFactory

from llmrouter import CircuitBreaker, ModelRouter, ModelSpec, route_of
from llmrouter.testing import KatanServer, RedisServer


def replicated(good: KatanServer, bad: KatanServer, state: str) -> ModelRouter:
    echo = ModelSpec(name="echo", replicas=[bad.spec("bad"), good.spec("good")], balance="latency")
    return ModelRouter(
        name="replicas",
        models=[echo],
        default="echo",
        circuit_breaker=CircuitBreaker(failure_threshold=2, window=60, cooldown=60),
        state=state,
    )


async def test_a_broken_replica_is_failed_over_then_skipped_everywhere(
    katan_server: KatanServer, katan_factory: KatanFactory, redis_server: RedisServer
) -> None:
    bad = katan_factory(["--error-rate", "1.0"])
    state = redis_server.url + f"?client_name=replicas-{uuid.uuid4().hex[:6]}"
    router = replicated(katan_server, bad, state)
    served = katan_server.requests_served()
    answers = await asyncio.gather(*(router.ainvoke(f"q{i}") for i in range(4)))
    answers += [await router.ainvoke(f"r{i}") for i in range(8)]
    records = [route_of(a) for a in answers]
    assert all(r.model == "echo" and r.extra["replica"] == "good" for r in records)
    assert katan_server.requests_served() - served == 12
    tried_bad = [a for r in records for a in r.attempts if a.replica == "bad"]
    assert 2 <= len(tried_bad) <= 4 and not any(a.ok for a in tried_bad)  # then skipped
    assert all(a.replica == "good" for a in route_of(answers[-1]).attempts)
    # another replica set of the router (another process) reads the breaker from Redis
    other = replicated(katan_server, bad, state)
    other.spec("echo").balancer.observed("good", 10.0)  # it would try bad first...
    record = route_of(other.invoke("fresh"))
    assert [a.replica for a in record.attempts] == ["good"]  # ...but bad's breaker is open
