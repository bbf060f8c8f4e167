"""The response cache against real servers: llm-katan answers, a redis-server shares.

Four processes, one Redis cache: a prompt one process asked is answered from the
cache in the others (counted at the server: llm-katan's request counter moves
only on misses), a stream replays a cached answer, and a cache hit is measured
against the model call it saves.
"""

from __future__ import annotations

import multiprocessing
import random
import statistics
import time
import uuid
from typing import Any

from llmrouter import ModelRouter, route_of
from llmrouter.testing import KatanServer, RedisServer

PROMPTS = [f"question {i}: what is {i} squared?" for i in range(10)]


def router(katan: KatanServer, url: str) -> ModelRouter:
    return ModelRouter(
        name="cached",
        models=[katan.spec("echo", tasks={"chat"})],
        default="echo",
        state=url,
        response_cache=True,
    )


def _asker(katan: KatanServer, url: str, seed: int, out: Any) -> None:
    """One process: every prompt twice, in its own order; (hits, misses, latencies)."""
    mine = router(katan, url)
    order = PROMPTS * 2
    random.Random(seed).shuffle(order)
    hits, misses = [], []
    for prompt in order:
        started = time.perf_counter()
        record = route_of(mine.invoke(prompt))
        (hits if record.extra["cache"] == "hit" else misses).append(time.perf_counter() - started)
    out.put((hits, misses))


def test_four_processes_share_one_redis_cache(
    katan_server: KatanServer, redis_server: RedisServer
) -> None:
    url = redis_server.url + f"?client_name=cache-{uuid.uuid4().hex[:6]}"
    cache = router(katan_server, redis_server.url).response_store
    assert cache is not None
    cache.clear()
    served = katan_server.requests_served()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    processes = [
        ctx.Process(target=_asker, args=(katan_server, url, seed, out)) for seed in range(4)
    ]
    for p in processes:
        p.start()
    results = [out.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(30)
    hits = [t for h, _ in results for t in h]
    misses = [t for _, m in results for t in m]
    asked = katan_server.requests_served() - served
    assert len(hits) + len(misses) == 4 * 2 * len(PROMPTS)
    assert asked == len(misses)  # every miss reached the server, no hit did
    # each prompt is asked at least once; more only when processes missed it at once
    assert len(PROMPTS) <= len(misses) <= 4 * len(PROMPTS)
    assert all(len(h) >= len(PROMPTS) for h, _ in results)  # the second round: all hits
    hit_p50, miss_p50 = statistics.median(hits), statistics.median(misses)
    print(
        f"\n4 processes x {2 * len(PROMPTS)} asks: {len(hits)} hits, {len(misses)} misses "
        f"(hit ratio {len(hits) / (len(hits) + len(misses)):.0%}); llm-katan served {asked}; "
        f"p50 hit {hit_p50 * 1000:.2f} ms vs miss {miss_p50 * 1000:.2f} ms"
    )
    assert hit_p50 < miss_p50


def test_a_stream_over_a_real_server_is_cached_and_replayed(
    katan_server: KatanServer, redis_server: RedisServer
) -> None:
    first, second = router(katan_server, redis_server.url), router(katan_server, redis_server.url)
    prompt = f"stream me {uuid.uuid4().hex}"
    served = katan_server.requests_served()
    streamed = list(first.stream(prompt))
    text = "".join(str(c.content) for c in streamed)
    assert route_of(streamed[-1]).extra["cache"] == "miss" and text
    replayed = list(second.stream(prompt))
    assert "".join(str(c.content) for c in replayed) == text
    assert route_of(replayed[-1]).extra["cache"] == "hit"
    answer = second.invoke(prompt)
    assert answer.content == text and route_of(answer).cost_usd == 0.0
    assert katan_server.requests_served() - served == 1
