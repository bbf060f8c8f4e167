"""Typed errors say what to do next (issue 9, items 1 and 15)."""

from __future__ import annotations

import pytest

from llmrouter import AllModelsFailedError, ConfigurationError
from llmrouter.errors import reject_unknown_keywords
from llmrouter.record import Attempt, RouteRecord


def _failed(*attempts: tuple[str, str]) -> AllModelsFailedError:
    record = RouteRecord(router="r", router_type="Test", reason="test")
    for error_type, kind in attempts:
        record.attempts.append(
            Attempt(model="m", ok=False, latency_s=0.0, error_type=error_type, error="x", kind=kind)
        )
    return AllModelsFailedError(record)


def test_the_next_step_follows_what_failed() -> None:
    assert "Fix the models' settings" in str(_failed(("ConfigurationError", "fatal")))
    assert "fits no model's context window" in str(
        _failed(("ContextOverflowError", "context_length"))
    )
    mixed = str(_failed(("ConfigurationError", "fatal"), ("ConnectError", "retryable")))
    assert "endpoints/credentials" in mixed


def test_unknown_keywords_are_named_with_the_closest_valid_one() -> None:
    with pytest.raises(ConfigurationError, match=r"'tmeout' \(did you mean 'timeout'\?\)"):
        reject_unknown_keywords("f()", ["tmeout"], ["timeout", "name"])
    with pytest.raises(ConfigurationError, match=r"unknown keyword 'zz'; valid keywords are"):
        reject_unknown_keywords("f()", ["zz"], ["timeout", "name"])
    reject_unknown_keywords("f()", ["name"], ["timeout", "name"])  # known: no error
