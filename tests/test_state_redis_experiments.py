"""RedisExperimentStore against a real redis-server: records, feedback, events, outages."""

from __future__ import annotations

import time
import uuid

import pytest

from llmrouter.ab._store import ExperimentEvent, ExperimentRecord, Feedback
from llmrouter.errors import ExperimentError, StateUnavailableError, UnknownRequestError
from llmrouter.state import RedisState
from llmrouter.state._outage import RETRY_S
from llmrouter.state._redis_experiments import RedisExperimentStore
from llmrouter.testing import RedisServer, start_redis_server


def store_on(server: RedisServer) -> RedisExperimentStore:
    store = RedisState(server.url, namespace=f"x{uuid.uuid4().hex[:8]}").experiment_store()
    assert isinstance(store, RedisExperimentStore)
    return store


def test_records_feedback_and_events_round_trip(redis_server: RedisServer) -> None:
    store = store_on(redis_server)
    first = ExperimentRecord("r1", "e", "control", model="gpt", key="ann", created_at=2.0)
    second = ExperimentRecord("r2", "e", "candidate", error_type="TimeoutError", created_at=1.0)
    store.add_record(first)
    store.add_record(second)
    store.add_record(ExperimentRecord("r3", "other", "control"))
    assert store.records("e") == [second, first]  # oldest first, as SQLite orders them
    store.add_feedback(Feedback("r1", "e", 1.0, created_at=3.0))
    assert store.feedback("e") == [Feedback("r1", "e", 1.0, created_at=3.0)]
    with pytest.raises(UnknownRequestError):
        store.add_feedback(Feedback("r3", "e", 0.0))  # r3 belongs to another experiment
    event = ExperimentEvent("e", "ramp", detail={"shares": {"control": 0.5, "candidate": 0.5}})
    store.add_event(event)
    assert store.events("e") == [event] and store.events("other") == []


def test_a_request_id_is_recorded_once(redis_server: RedisServer) -> None:
    store = store_on(redis_server)
    store.add_record(ExperimentRecord("r1", "e", "control"))
    with pytest.raises(ExperimentError, match="already recorded"):
        store.add_record(ExperimentRecord("r1", "e", "candidate"))
    assert [r.variant for r in store.records("e")] == ["control"]
    store.add_record(ExperimentRecord("r2", "e", "candidate"))  # the queue is not stuck
    assert len(store.records("e")) == 2


def test_records_written_while_redis_is_down_arrive_when_it_is_back() -> None:
    with start_redis_server() as server:
        store = store_on(server)
        server.kill()
        for i in range(3):
            store.add_record(ExperimentRecord(f"r{i}", "e", "control", created_at=float(i)))
        store.add_event(ExperimentEvent("e", "rollback", variant="candidate"))
        assert store.pending() == 4
        with pytest.raises(StateUnavailableError):
            store.records("e")
        server.start()
        time.sleep(RETRY_S)
        assert [r.request_id for r in store.records("e")] == ["r0", "r1", "r2"]  # flushed first
        assert store.pending() == 0 and store.events("e")[0].kind == "rollback"
