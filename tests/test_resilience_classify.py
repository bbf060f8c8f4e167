"""Error classification: what is retried, what falls back, what counts against a model."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from langchain_core.exceptions import ContextOverflowError, ModelRateLimitError

from llmrouter.resilience import ErrorKind, classify_error, retry_after


def api_error(status: int, message: str = "x", headers: dict[str, str] | None = None) -> Exception:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, request=request, headers=headers or {})
    cls = {400: openai.BadRequestError, 429: openai.RateLimitError}.get(
        status, openai.APIStatusError
    )
    return cls(message, response=response, body=None)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retryable(status: int) -> None:
    info = classify_error(api_error(status))
    assert info.kind is ErrorKind.RETRYABLE and info.status == status
    assert info.counts_against_model


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_statuses_are_not_retried(status: int) -> None:
    assert classify_error(api_error(status)).kind is ErrorKind.FATAL


def test_only_model_side_rejections_count_against_the_model() -> None:
    assert classify_error(api_error(401)).counts_against_model  # misconfigured model
    assert not classify_error(api_error(400)).counts_against_model  # the request's fault


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        TimeoutError(),
        asyncio.TimeoutError(),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        openai.APIConnectionError(request=httpx.Request("GET", "http://127.0.0.1")),
        ModelRateLimitError("slow down"),
    ],
)
def test_transport_errors_are_retryable(exc: Exception) -> None:
    assert classify_error(exc).kind is ErrorKind.RETRYABLE


@pytest.mark.parametrize(
    "exc",
    [
        api_error(400, "This model's maximum context length is 4096 tokens"),
        api_error(400, "context_length_exceeded"),
        ContextOverflowError("too long"),
        ValueError("Input is too long for the context window"),
    ],
)
def test_context_length_errors(exc: Exception) -> None:
    info = classify_error(exc)
    assert info.kind is ErrorKind.CONTEXT_LENGTH and not info.counts_against_model


def test_validation_errors_are_fatal() -> None:
    assert classify_error(ValueError("bad")).kind is ErrorKind.FATAL
    assert classify_error(TypeError("bad")).kind is ErrorKind.FATAL


def test_retry_after_header_in_seconds_ms_and_http_date() -> None:
    assert retry_after(api_error(429, headers={"retry-after": "3"})) == 3.0
    assert retry_after(api_error(429, headers={"retry-after-ms": "250"})) == 0.25
    assert (
        retry_after(api_error(429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0
    )
    assert retry_after(api_error(429)) is None
    assert retry_after(ValueError()) is None
    assert classify_error(api_error(503, headers={"retry-after": "2"})).retry_after == 2.0
