"""One Redis connection pool per state: short timeouts, no silent retries, typed errors.

Every Redis call of llmrouter goes through a client built here: connect and
socket timeouts (``LLMROUTER_REDIS_TIMEOUT``, default 0.5 s; a ``socket_timeout``
in the URL wins), and no retry inside redis-py (a retried script could reserve
twice; the callers decide what a failure means). `unavailable` turns redis-py's
connection and timeout errors into `StateUnavailableError`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from llmrouter.errors import ConfigurationError, StateUnavailableError

if TYPE_CHECKING:
    import redis

__all__ = ["connect", "is_unavailable", "redacted_url", "unavailable"]

DEFAULT_TIMEOUT_S = 0.5


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def connect(url: str, *, timeout: float | None = None) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``) with bounded waits."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigurationError(
            "state on Redis needs the redis package: pip install 'llmrouter[redis]'"
        ) from exc
    query = parse_qs(urlsplit(url).query)
    options: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "retry_on_timeout": False}
    seconds = timeout if timeout is not None else _env_timeout()
    if "socket_timeout" not in query:
        options["socket_timeout"] = seconds
    if "socket_connect_timeout" not in query:
        options["socket_connect_timeout"] = seconds
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(
            f"state URL {redacted_url(url)!r} is not a Redis URL ({exc}); "
            "write redis://HOST:PORT/DB, e.g. redis://127.0.0.1:6379/0"
        ) from exc


def _env_timeout() -> float:
    raw = os.environ.get("LLMROUTER_REDIS_TIMEOUT", "")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigurationError(
            f"LLMROUTER_REDIS_TIMEOUT={raw!r} is not a positive number of seconds"
        )
    return seconds


def is_unavailable(error: BaseException) -> bool:
    """True for redis-py's errors that mean the server did not answer (not a bad command)."""
    import redis.exceptions as rex

    return isinstance(error, (rex.ConnectionError, rex.TimeoutError, StateUnavailableError))


def unavailable(error: BaseException, where: str, concern: str) -> StateUnavailableError:
    """The typed error for a Redis call of ``concern`` that did not get an answer."""
    return StateUnavailableError(
        f"Redis at {where} did not answer for {concern} ({type(error).__name__}: {error}). "
        "Start it or fix state=; raise LLMROUTER_REDIS_TIMEOUT if it is only slow."
    )
