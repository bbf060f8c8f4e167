"""Config-file forms of settings: each .build() gives the real object with the values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.rate_limiters import InMemoryRateLimiter
from pydantic import BaseModel, TypeAdapter, ValidationError
from tenacity import stop_after_attempt, stop_after_delay, stop_any, wait_combine, wait_exponential

from llmrouter.config._settings import (
    BreakerSettings,
    ClassifierSettings,
    GuardSettings,
    KeywordClassifierSettings,
    LLMClassifierSettings,
    RampSettings,
    RampStep,
    RateLimitSettings,
    RetrySettings,
    SemanticClassifierSettings,
)
from llmrouter.resilience import DEFAULT_BOARD, TokenRateLimiter
from llmrouter.resilience._breaker import CircuitBreaker, SQLiteBreakerBoard
from llmrouter.resilience._retry import RetryPolicy


def rejected(model: type[BaseModel], data: dict[str, Any]) -> list[str]:
    """The error types pydantic gives for ``data``."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [err["type"] for err in info.value.errors()]


def test_retry_settings_build_a_policy_with_the_values() -> None:
    policy = RetrySettings(attempts=4, deadline=12.5, backoff=0.5, max_backoff=3.0).build()
    assert isinstance(policy, RetryPolicy)
    assert policy.max_attempts == 4
    assert policy.max_retry_after == 10.0
    assert isinstance(policy.stop, stop_any)
    attempts, delay = policy.stop.stops
    assert isinstance(attempts, stop_after_attempt) and attempts.max_attempt_number == 4
    assert isinstance(delay, stop_after_delay) and delay.max_delay == 12.5
    assert isinstance(policy.wait, wait_combine)  # exponential backoff plus jitter
    backoff = policy.wait.wait_funcs[0]
    assert isinstance(backoff, wait_exponential)
    assert (backoff.multiplier, backoff.max) == (0.5, 3.0)


def test_retry_settings_without_deadline_or_jitter() -> None:
    policy = RetrySettings(attempts=1, deadline=None, jitter=0, max_retry_after=2).build()
    assert policy.max_attempts == 1
    assert isinstance(policy.stop, stop_after_attempt)
    assert policy.stop.max_attempt_number == 1
    assert isinstance(policy.wait, wait_exponential)
    assert policy.max_retry_after == 2.0


def test_retry_settings_defaults_match_the_policy_defaults() -> None:
    policy = RetrySettings().build()
    assert policy.max_attempts == RetryPolicy().max_attempts == 3
    assert policy.max_retry_after == RetryPolicy().max_retry_after


@pytest.mark.parametrize(
    "data", [{"attempts": 0}, {"deadline": 0}, {"backoff": -1}, {"jitter": -0.1}]
)
def test_retry_settings_reject_out_of_range_values(data: dict[str, Any]) -> None:
    assert rejected(RetrySettings, data)


def test_breaker_settings_build_a_breaker_on_the_process_board() -> None:
    breaker = BreakerSettings(
        failure_threshold=2, window=10, cooldown=5, min_failure_ratio=0.25
    ).build()
    assert isinstance(breaker, CircuitBreaker)
    assert breaker.failure_threshold == 2
    assert breaker.window == 10.0
    assert breaker.cooldown == 5.0
    assert breaker.min_failure_ratio == 0.25
    assert breaker.board is DEFAULT_BOARD


def test_breaker_settings_with_a_board_path_share_state_in_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "breakers.db"
    breaker = BreakerSettings(failure_threshold=1, board=str(path)).build()
    board = breaker.board
    assert isinstance(board, SQLiteBreakerBoard)
    try:
        assert path.exists()
        breaker.record_failure("m")
        assert breaker.state("m") == "open"
        other = SQLiteBreakerBoard(path)  # another process's view of the same file
        try:
            assert other.snapshot()["m"].state == "open"
        finally:
            other.close()
    finally:
        board.close()


@pytest.mark.parametrize(
    "data",
    [{"failure_threshold": 0}, {"window": 0}, {"cooldown": -1}, {"min_failure_ratio": 1.5}],
)
def test_breaker_settings_reject_out_of_range_values(data: dict[str, Any]) -> None:
    assert rejected(BreakerSettings, data)


def test_rate_limit_settings_build_an_in_memory_rate_limiter() -> None:
    limiter = RateLimitSettings(requests_per_second=2.5, max_bucket_size=4).build()
    assert isinstance(limiter, InMemoryRateLimiter)
    assert limiter.requests_per_second == 2.5
    assert limiter.max_bucket_size == 4.0


def test_rate_limit_settings_need_a_positive_rate() -> None:
    assert rejected(RateLimitSettings, {}) == ["value_error"]  # neither limit given
    assert rejected(RateLimitSettings, {"requests_per_second": 0}) == ["greater_than"]
    assert rejected(RateLimitSettings, {"tokens_per_minute": 0}) == ["greater_than"]
    assert rejected(RateLimitSettings, {"tokens_per_minute": 1.5}) == ["int_from_float"]
    assert rejected(RateLimitSettings, {"requests_per_second": 1, "max_bucket_size": 0.5})


def test_rate_limit_settings_build_either_limit_or_both() -> None:
    tokens = RateLimitSettings(tokens_per_minute=9000)
    assert tokens.build() is None
    assert isinstance(tokens.build_tokens(), TokenRateLimiter)
    assert tokens.build_tokens().tokens_per_minute == 9000  # type: ignore[union-attr]
    both = RateLimitSettings(requests_per_second=2, tokens_per_minute=100)
    assert both.build() is not None and both.build_tokens() is not None
    assert RateLimitSettings(requests_per_second=2).build_tokens() is None


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (RetrySettings, {"atempts": 2}),
        (BreakerSettings, {"treshold": 2}),
        (RateLimitSettings, {"requests_per_second": 1, "burst": 3}),
        (RampStep, {"after": 0, "shares": {"a": 1}, "share": {}}),
        (RampSettings, {"steps": [{"after": 0, "shares": {"a": 1}}], "begin": 0}),
        (GuardSettings, {"max_error": 0.1}),
        (KeywordClassifierSettings, {"type": "keyword", "rules": {}, "rule": {}}),
        (SemanticClassifierSettings, {"type": "semantic", "examples": {}, "treshold": 0.5}),
        (LLMClassifierSettings, {"type": "llm", "model": "m", "labels": ["a"], "prompt": "x"}),
    ],
)
def test_unknown_keys_are_rejected(model: type[BaseModel], data: dict[str, Any]) -> None:
    assert rejected(model, data) == ["extra_forbidden"]


def test_classifier_settings_pick_the_member_by_type() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(ClassifierSettings)
    keyword = adapter.validate_python({"type": "keyword", "rules": {"code": ["python"]}})
    assert isinstance(keyword, KeywordClassifierSettings)
    assert keyword.rules == {"code": ["python"]}
    semantic = adapter.validate_python({"type": "semantic", "examples": {"a": ["x"]}})
    assert isinstance(semantic, SemanticClassifierSettings) and semantic.threshold is None
    llm = adapter.validate_python({"type": "llm", "model": "m", "labels": {"a": "about a"}})
    assert isinstance(llm, LLMClassifierSettings) and llm.labels == {"a": "about a"}
    with pytest.raises(ValidationError) as info:
        adapter.validate_python({"type": "regex", "rules": {}})
    assert info.value.errors()[0]["type"] == "union_tag_invalid"


def test_ramp_and_guard_settings_validate_their_values() -> None:
    ramp = RampSettings(steps=[RampStep(after=60, shares={"a": 0.5, "b": 0.5})])
    assert ramp.start is None and ramp.steps[0].after == 60.0
    assert rejected(RampSettings, {"steps": []}) == ["too_short"]
    assert rejected(RampStep, {"after": -1, "shares": {}}) == ["greater_than_equal"]
    assert GuardSettings().max_error_rate == 0.1
    assert rejected(GuardSettings, {"max_error_rate": 1.0}) == ["less_than"]
    assert rejected(GuardSettings, {"window": 0}) == ["greater_than"]


def test_settings_carry_attribute_docstrings_as_descriptions() -> None:
    assert "first included" in (RetrySettings.model_fields["attempts"].description or "")
    assert "SQLite" in (BreakerSettings.model_fields["board"].description or "")
