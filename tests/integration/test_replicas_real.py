"""A model with two real endpoints (llm-katan), one of them failing every request:
every call is answered, the broken replica's breaker opens, and a router in another
process on the same Redis state skips it from its first call."""

from __future__ import annotations

import asyncio
import uuid

from _fixtures.katan import KatanFactory

from llmrouter import CircuitBreaker, ModelRouter, ModelSpec, route_of
from llmrouter.state import open_state
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


def token_limited(first: KatanServer, second: KatanServer, state: str) -> ModelRouter:
    shared = open_state(state)
    replicas = [
        server.spec(name).model_copy(update={"token_limiter": shared.token_limiter(name, 100)})
        for server, name in ((first, "first"), (second, "second"))
    ]
    echo = ModelSpec(name="echo", replicas=replicas, balance="latency")
    router = ModelRouter(name="tpm", models=[echo], default="echo", state=state, timeout=10)
    router.spec("echo").balancer.observed("second", 10.0)  # first is tried first
    return router


def test_a_replica_out_of_tokens_passes_calls_to_the_other_in_every_process(
    katan_server: KatanServer, katan_factory: KatanFactory, redis_server: RedisServer
) -> None:
    """100 tokens a minute per replica, shared on Redis: the first replica answers
    until its minute is used up (estimates settled to llm-katan's reported usage),
    then calls go to the second at once -- also from a router in another process."""
    second = katan_factory()
    state = redis_server.url + f"?client_name=tpm-{uuid.uuid4().hex[:6]}"
    router = token_limited(katan_server, second, state)
    before = katan_server.requests_served(), second.requests_served()
    records = [route_of(router.invoke(f"q{i}", max_tokens=20)) for i in range(12)]
    replicas = [r.extra["replica"] for r in records]
    first_used = sum(r.usage.total_tokens for r in records if r.extra["replica"] == "first")
    assert replicas[0] == "first" and "second" in replicas, replicas
    switched = replicas.index("second")
    assert all(x == "second" for x in replicas[switched:])  # first stays out of room
    # each call takes ~25 tokens (prompt + max_tokens) and is settled to the ~10 it
    # used: without settling, first would be out of room after 4 calls
    assert switched >= 6, replicas
    assert records[switched].attempts[0].kind == "rate_limited"
    assert 0 < first_used <= 100 + 10  # its minute (plus what came back meanwhile)
    served = katan_server.requests_served() - before[0], second.requests_served() - before[1]
    assert served == (switched, 12 - switched)  # a throttled replica was never asked
    other = token_limited(katan_server, second, state)  # another process, same Redis
    record = route_of(other.invoke("fresh", max_tokens=20))
    assert [(a.replica, a.kind) for a in record.attempts] == [
        ("first", "rate_limited"),
        ("second", None),
    ]
