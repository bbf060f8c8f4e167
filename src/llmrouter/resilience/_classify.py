"""Which errors are worth retrying, and what the server asked us to wait."""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from langchain_core.exceptions import ContextOverflowError, ModelError

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
"""HTTP statuses a retry may fix: timeouts, conflicts, rate limits, server errors."""

_CONTEXT_HINTS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "too many tokens",
    "input is too long",
    "prompt is too long",
)
_TRANSPORT_NAMES = frozenset(
    {
        "TransportError",
        "TimeoutException",
        "ConnectError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "ProtocolError",
        "ConnectionError",
        "ReadTimeout",
        "ConnectTimeout",
        "ServerDisconnectedError",
        "ClientConnectionError",
        "APIConnectionError",
        "APITimeoutError",
    }
)


class ErrorKind(str, Enum):
    """How the executor treats a failed attempt."""

    RETRYABLE = "retryable"
    """Transient (connection, timeout, 408/409/429/5xx): retry, then fall back."""
    CONTEXT_LENGTH = "context_length"
    """The prompt does not fit: no retry; fall back to a model with a larger window."""
    FATAL = "fatal"
    """The model rejected this request (400/401/403/404/422, validation): no retry;
    fall back to the next model."""


@dataclass(frozen=True)
class ErrorInfo:
    """What `classify_error` found out about an exception."""

    kind: ErrorKind
    status: int | None = None
    retry_after: float | None = None
    """Seconds the server asked to wait (``Retry-After``), if it said."""

    @property
    def counts_against_model(self) -> bool:
        """Whether a circuit breaker should count it: not the request's own fault."""
        return self.kind is ErrorKind.RETRYABLE or self.status in {401, 403, 404}


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (provider SDKs, httpx, huggingface_hub)."""
    for holder in (exc, getattr(exc, "response", None)):
        status = getattr(holder, "status_code", None) or getattr(holder, "status", None)
        if isinstance(status, int) and 100 <= status < 600:
            return status
    return None


def retry_after(exc: BaseException) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``) response header, if any."""
    headers: Any = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(float(millis) / 1000, 0.0)
        value = headers.get("retry-after")
    except Exception:  # unusual header containers
        return None
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(str(value))
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


def classify_error(exc: BaseException) -> ErrorInfo:
    """Classify a model error for retry, fallback and circuit breaking.

    Examples:
        >>> classify_error(ConnectionResetError()).kind
        <ErrorKind.RETRYABLE: 'retryable'>
        >>> classify_error(ValueError("bad input")).kind
        <ErrorKind.FATAL: 'fatal'>
    """
    status = status_of(exc)
    wait = retry_after(exc)
    text = str(exc).lower()
    if isinstance(exc, ContextOverflowError) or (
        status in {400, 413, 422, None} and any(hint in text for hint in _CONTEXT_HINTS)
    ):
        return ErrorInfo(ErrorKind.CONTEXT_LENGTH, status, wait)
    if status is not None:
        kind = ErrorKind.RETRYABLE if status in RETRYABLE_STATUS else ErrorKind.FATAL
        return ErrorInfo(kind, status, wait)
    if isinstance(exc, ModelError):
        kind = ErrorKind.RETRYABLE if exc.is_retryable else ErrorKind.FATAL
        return ErrorInfo(kind, None, wait)
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)) or any(
        cls.__name__ in _TRANSPORT_NAMES for cls in type(exc).__mro__
    ):
        return ErrorInfo(ErrorKind.RETRYABLE, None, wait)
    return ErrorInfo(ErrorKind.FATAL, None, wait)
