"""Conversation stickiness shared through state: replicas keep a thread on its model."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest
from _fixtures.fakes import Recorder, spec

from llmrouter import ModelRouter, route_of
from llmrouter.state import RedisState
from llmrouter.state._threads import LocalThreads, RedisThreads, SQLiteThreads
from llmrouter.testing import RedisServer, start_redis_server


def replica(state: object) -> ModelRouter:
    """One replica of the same router (as in another process): its own models."""
    models = [
        spec("coder", reply="C", tasks={"code_generation"}),
        spec("remote", reply="R", tasks={"chat", "code_generation"}),
    ]
    return ModelRouter(
        name="support", models=models, routes={"code_generation": "remote"}, state=state
    )


def conversation_moves_to_the_second_replica(first: ModelRouter, second: ModelRouter) -> None:
    remote = first.spec("remote").model
    assert isinstance(remote, Recorder)
    remote.fail_with = ConnectionError  # the first turn falls back to coder, on replica 1
    assert route_of(first.invoke("x", task="code_generation", thread_id="t1")).model == "coder"
    # the next turn lands on replica 2, where remote is healthy: it stays on coder
    record = route_of(second.invoke("y", task="code_generation", thread_id="t1"))
    assert record.model == "coder" and "thread 't1' stays on 'coder'" in record.reason
    other = route_of(second.invoke("y", task="code_generation", thread_id="t2"))
    assert other.model == "remote"


def test_local_threads_forget_the_least_recently_used() -> None:
    threads = LocalThreads(max_threads=2)
    threads.put("a", "chat", "m1")
    threads.put("b", None, "m2")
    assert threads.get("a") == ("chat", "m1")  # a is now the most recent
    threads.put("c", "chat", "m3")
    assert threads.get("b") is None and threads.get("a") and threads.get("c")


def test_replicas_on_one_sqlite_file_share_conversations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    first, second = replica(url), replica(url)
    assert isinstance(first._threads, SQLiteThreads)
    conversation_moves_to_the_second_replica(first, second)


def test_sqlite_threads_expire(tmp_path: Path) -> None:
    threads = SQLiteThreads(str(tmp_path / "s.db"), "r", ttl=0.05)
    threads.put("t", "chat", "m")
    assert threads.get("t") == ("chat", "m")
    time.sleep(0.06)
    assert threads.get("t") is None


def test_replicas_on_redis_share_conversations(redis_server: RedisServer) -> None:
    namespace = f"t{uuid.uuid4().hex[:8]}"
    first = replica(RedisState(redis_server.url, namespace=namespace))
    second = replica(RedisState(redis_server.url, namespace=namespace))
    assert isinstance(second._threads, RedisThreads)
    conversation_moves_to_the_second_replica(first, second)
    ttl = RedisState(redis_server.url).client.ttl(f"{namespace}:thread:{{support}}:t1")
    assert 86000 < ttl <= 86400  # forgotten a day after the last answer


def test_redis_down_each_replica_keeps_its_own(caplog: pytest.LogCaptureFixture) -> None:
    with start_redis_server() as server:
        router = replica(RedisState(server.url, namespace="down"))
        server.kill()
        remote = router.spec("remote").model
        assert isinstance(remote, Recorder)
        remote.fail_with = ConnectionError
        with caplog.at_level(logging.WARNING, logger="llmrouter"):
            first = route_of(router.invoke("x", task="code_generation", thread_id="t1"))
            remote.fail_with = None
            second = route_of(router.invoke("y", task="code_generation", thread_id="t1"))
        assert first.model == second.model == "coder"  # remembered in this process
        assert any("keeps its own conversations" in r.message for r in caplog.records)
