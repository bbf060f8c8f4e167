"""Retry policies: only retryable errors, Retry-After honoured, composable stops."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from tenacity import stop_after_attempt, stop_after_delay, wait_fixed, wait_none

from llmrouter.resilience import RetryPolicy


def flaky(errors: list[Exception], result: str = "ok") -> tuple[list[float], object]:
    calls: list[float] = []

    def call() -> str:
        calls.append(time.monotonic())
        if errors:
            raise errors.pop(0)
        return result

    return calls, call


def run(policy: RetryPolicy, call: object) -> object:
    for attempt in policy.retrying():
        with attempt:
            return call()  # type: ignore[operator]
    raise AssertionError("unreachable")


def status_error(status: int, headers: dict[str, str] | None = None) -> Exception:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, request=request, headers=headers or {})
    return openai.APIStatusError("boom", response=response, body=None)


def test_retryable_errors_are_retried_until_success() -> None:
    calls, call = flaky([ConnectionError(), TimeoutError()])
    assert run(RetryPolicy.attempts(3, wait=wait_none()), call) == "ok"
    assert len(calls) == 3


def test_gives_up_after_the_attempt_cap() -> None:
    calls, call = flaky([ConnectionError()] * 5)
    with pytest.raises(ConnectionError):
        run(RetryPolicy.attempts(2, wait=wait_none()), call)
    assert len(calls) == 2


def test_non_retryable_errors_are_raised_at_once() -> None:
    calls, call = flaky([status_error(400), ConnectionError()])
    with pytest.raises(openai.APIStatusError):
        run(RetryPolicy.attempts(5, wait=wait_none()), call)
    assert len(calls) == 1


def test_retry_after_is_honoured() -> None:
    calls, call = flaky([status_error(429, {"retry-after-ms": "300"})])
    run(RetryPolicy.attempts(2, wait=wait_none()), call)
    assert calls[1] - calls[0] >= 0.29


def test_a_long_retry_after_falls_back_instead_of_waiting() -> None:
    calls, call = flaky([status_error(503, {"retry-after": "120"})])
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError):
        run(RetryPolicy.attempts(3, max_retry_after=5), call)
    assert len(calls) == 1 and time.monotonic() - started < 1


def test_strategies_compose_like_tenacity() -> None:
    policy = RetryPolicy(stop=stop_after_attempt(10) | stop_after_delay(0.3), wait=wait_fixed(0.1))
    calls, call = flaky([ConnectionError()] * 20)
    with pytest.raises(ConnectionError):
        run(policy, call)
    assert 2 <= len(calls) <= 5  # the deadline stopped it, not the attempt cap


async def test_async_retrying() -> None:
    calls, call = flaky([ConnectionError()])
    async for attempt in RetryPolicy.attempts(2, wait=wait_none()).aretrying():
        with attempt:
            result = call()  # type: ignore[operator]
    assert result == "ok" and len(calls) == 2


def test_none_and_bad_attempts() -> None:
    assert RetryPolicy.none().max_attempts == 1
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        RetryPolicy.attempts(0)
