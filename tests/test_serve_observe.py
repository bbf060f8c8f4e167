"""The server's per-request log: one JSON line per request, secrets redacted, and the
same request counted in the metrics."""

from __future__ import annotations

import json
import logging

import pytest

from llmrouter.errors import AllModelsFailedError
from llmrouter.record import Attempt, RouteRecord
from llmrouter.serve._metrics import ServerMetrics
from llmrouter.serve._observe import Observer

KEY = "sk-server-key-1234567"


def test_an_answer_is_logged_as_json_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    observer = Observer(ServerMetrics({}), [KEY])
    route = {"router": "r", "model": "m", "attempts": [{"model": "m", "ok": True}]}
    with caplog.at_level(logging.INFO, logger="llmrouter.serve"):
        observer.answered("r", route, 0.25, ttft=0.1, key="alice")
    entry = json.loads(caplog.records[-1].getMessage())
    assert entry["event"] == "answered" and entry["key"] == "alice"
    assert entry["latency_s"] == 0.25 and entry["ttft_s"] == 0.1
    assert entry["route"]["model"] == "m"
    assert b'llmrouter_requests_total{model="m",router="r",status="ok"} 1.0' in (
        observer.metrics.exposition()
    )


def test_a_failure_is_logged_with_its_record_and_the_key_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = Observer(ServerMetrics({}), [KEY])
    attempt = Attempt(model="m", ok=False, latency_s=0.1, error=f"401 bad key {KEY}")
    error = AllModelsFailedError(RouteRecord(router="r", router_type="T", attempts=[attempt]))
    with caplog.at_level(logging.INFO, logger="llmrouter.serve"):
        observer.failed("r", error, 0.5, key="alice")
    line = caplog.records[-1].getMessage()
    assert KEY not in line and "[REDACTED]" in line
    entry = json.loads(line)
    assert entry["event"] == "failed" and entry["error"] == "AllModelsFailedError"
    assert entry["route"]["attempts"][0]["model"] == "m"
    text = observer.metrics.exposition().decode()
    assert 'llmrouter_errors_total{error="AllModelsFailedError",router="r"} 1.0' in text


def test_nothing_is_serialised_when_the_log_is_off(caplog: pytest.LogCaptureFixture) -> None:
    observer = Observer(ServerMetrics({}))
    with caplog.at_level(logging.WARNING, logger="llmrouter.serve"):
        observer.answered("r", {"model": "m"}, 0.1)
    assert not caplog.records
