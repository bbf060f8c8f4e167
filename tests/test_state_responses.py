"""Response caches with a time to live: memory, SQLite, Redis (a real redis-server)."""

from __future__ import annotations

import logging
import pickle
import time
import uuid
from pathlib import Path

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from llmrouter.errors import ConfigurationError
from llmrouter.state import (
    MemoryResponseCache,
    RedisResponseCache,
    RedisState,
    SQLiteResponseCache,
    open_state,
    state_errors,
)
from llmrouter.state._redis_client import connect
from llmrouter.state._responses import entry_key
from llmrouter.testing import RedisServer, start_redis_server

ANSWER = AIMessage(
    content="42",
    tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1", "type": "tool_call"}],
    usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
    response_metadata={"model_name": "m"},
)


def roundtrip(cache: object) -> None:
    """What goes in comes out: message, tool calls, metadata; other keys miss."""
    assert hasattr(cache, "update") and hasattr(cache, "lookup")
    cache.update("p", "m", [ChatGeneration(message=ANSWER)])
    (got,) = cache.lookup("p", "m")
    assert isinstance(got, ChatGeneration) and got.message == ANSWER
    assert cache.lookup("p", "other model") is None
    assert cache.lookup("other prompt", "m") is None


def test_keys_hash_both_parts_apart() -> None:
    assert entry_key("ab", "c") != entry_key("a", "bc")
    assert len(entry_key("x" * 100_000, "m")) == 64


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan")])
def test_a_ttl_must_be_positive(ttl: float, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ttl must be > 0"):
        MemoryResponseCache(ttl=ttl)
    with pytest.raises(ConfigurationError, match="ttl must be > 0"):
        SQLiteResponseCache(str(tmp_path / "c.db"), ttl=ttl)


def test_memory_cache_expires_and_forgets_the_least_recently_used() -> None:
    cache = MemoryResponseCache(ttl=0.05, maxsize=2)
    roundtrip(cache)
    time.sleep(0.06)
    assert cache.lookup("p", "m") is None and len(cache) == 0
    lasting = MemoryResponseCache(ttl=None, maxsize=2)
    for prompt in ("a", "b"):
        lasting.update(prompt, "m", [Generation(text=prompt)])
    assert lasting.lookup("a", "m")  # a is now the most recent
    lasting.update("c", "m", [Generation(text="c")])
    assert lasting.lookup("b", "m") is None and lasting.lookup("a", "m") and len(lasting) == 2


def test_sqlite_cache_is_shared_through_the_file_and_expires(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    roundtrip(SQLiteResponseCache(path))
    (got,) = SQLiteResponseCache(path).lookup("p", "m")  # another process, the same file
    assert got.message == ANSWER
    short = SQLiteResponseCache(path, ttl=0.05)
    short.update("brief", "m", [Generation(text="x")])
    assert short.lookup("brief", "m")
    time.sleep(0.06)
    assert short.lookup("brief", "m") is None
    short.clear()
    assert SQLiteResponseCache(path).lookup("p", "m") is None


def test_a_sqlite_cache_in_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="folder"):
        SQLiteResponseCache(str(tmp_path / "missing" / "c.db"))


def test_redis_cache_is_shared_and_expires_in_redis(redis_server: RedisServer) -> None:
    namespace = f"c{uuid.uuid4().hex[:6]}"
    one = RedisState(redis_server.url, namespace=namespace).response_cache(ttl=30)
    assert isinstance(one, RedisResponseCache)
    roundtrip(one)
    other = RedisResponseCache(connect(redis_server.url), namespace=namespace)
    (got,) = other.lookup("p", "m")  # another client: another replica
    assert got.message == ANSWER
    (key,) = one.client.keys(f"{namespace}:cache:*")
    assert 29_000 < one.client.pttl(key) <= 30_000
    copy = pickle.loads(pickle.dumps(one))  # through its state: the same Redis
    assert copy.ttl == 30 and copy.lookup("p", "m")
    with pytest.raises(TypeError, match="RedisState"):
        pickle.dumps(other)
    one.clear()
    assert one.client.keys(f"{namespace}:cache:*") == []


def test_redis_down_lookups_miss_and_writes_drop_without_hanging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with start_redis_server() as server:
        cache = RedisState(server.url, namespace="down", timeout=0.3).response_cache()
        cache.update("p", "m", [Generation(text="kept")])
        server.kill()
        before = state_errors().get(("redis", "cache"), 0)
        with caplog.at_level(logging.WARNING, logger="llmrouter"):
            started = time.perf_counter()
            assert cache.lookup("p", "m") is None
            cache.update("p2", "m", [Generation(text="dropped")])
            assert time.perf_counter() - started < 2
        assert state_errors()[("redis", "cache")] >= before + 2
        assert any("answers are neither read" in r.message for r in caplog.records)
        server.restart()
        time.sleep(1.1)  # past the back-off: the next call asks Redis again
        assert cache.lookup("p", "m")[0].text == "kept"  # appendonly: it survived


def test_our_caches_serve_langchains_set_llm_cache_too(tmp_path: Path) -> None:
    cache = SQLiteResponseCache(str(tmp_path / "c.db"))
    set_llm_cache(cache)
    try:
        model = GenericFakeChatModel(messages=iter(["first", "second"]))
        assert model.invoke("q").content == "first"
        assert model.invoke("q").content == "first"  # from the cache
    finally:
        set_llm_cache(None)


def test_memory_state_shares_one_cache_per_ttl() -> None:
    state = open_state("memory://")
    assert state.response_cache() is state.response_cache()
    assert state.response_cache(ttl=5) is not state.response_cache()
