"""The ``serve:`` section of a config file: address, API keys, limits."""

from __future__ import annotations

import hmac
import threading
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

if TYPE_CHECKING:
    from llmrouter.state import SharedState


class ApiKey(BaseModel):
    """A key a client sends as ``Authorization: Bearer <key>``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    key: SecretStr = Field(min_length=8)
    """The secret; write ``${ENV_VAR}``, never the key itself (never logged)."""
    name: str
    """Who holds it: shown in logs and metrics instead of the key."""
    routers: list[str] = Field(default_factory=list)
    """Routers and models this key may use (empty: all)."""
    user: str | None = None
    """The budget user its requests are charged to (a ``Budget(key="user")``); it
    overrides the request's ``user`` field, so a client cannot spend another's budget."""
    requests_per_minute: float | None = Field(default=None, gt=0)
    """Most requests per minute (a token bucket allowing bursts of that size); over it,
    429 with ``Retry-After``. ``null``: no limit. Shared by every server on the config's
    top-level ``state:`` (SQLite or Redis), else per server process."""

    _bucket: list[float] = PrivateAttr(default_factory=list)  # [tokens, last refill time]
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _shared: Any = PrivateAttr(default=None)  # a SharedRateLimiter, once shared

    def share_limit(self, state: SharedState) -> None:
        """Count this key's requests in ``state`` (with every server that shares it);
        while it does not answer, each server counts its own."""
        from llmrouter.state._limits import SharedRateLimiter

        rate = self.requests_per_minute
        if rate is None:
            return
        limiter = state.rate_limiter(f"serve-key:{self.name}", rate / 60.0, max(rate, 1.0))
        if isinstance(limiter, SharedRateLimiter):  # memory:// has nothing to share
            self._shared = limiter

    def allows(self, target: str) -> bool:
        return not self.routers or target in self.routers

    def take(self, now: float | None = None) -> float | None:
        """Count one request: ``None`` if it may go ahead, else seconds until it may.

        Examples:
            >>> key = ApiKey(key="sk-0123456789", name="k", requests_per_minute=2)
            >>> key.take(now=0.0), key.take(now=0.0), key.take(now=0.0)
            (None, None, 30.0)
            >>> key.take(now=30.0)
        """
        rate = self.requests_per_minute
        if rate is None:
            return None
        if self._shared is not None and now is None:
            wait: float | None = self._shared.try_take()
            if wait is not None:  # else the state is down: this process's bucket
                return None if wait == 0.0 else wait
        at = time.monotonic() if now is None else now
        with self._lock:
            if not self._bucket:
                self._bucket[:] = [rate, at]
            tokens, last = self._bucket
            tokens = min(rate, tokens + (at - last) * rate / 60.0)
            if tokens >= 1.0:
                self._bucket[:] = [tokens - 1.0, at]
                return None
            self._bucket[:] = [tokens, at]
            return (1.0 - tokens) * 60.0 / rate


class ServeSettings(BaseModel):
    """How ``llmrouter serve`` listens and whom it answers."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address to bind; ``0.0.0.0`` in a container (then give ``keys``)."""
    port: int = Field(default=8080, ge=0, le=65535)
    """Port to bind (``0``: any free port)."""
    keys: list[ApiKey] = Field(default_factory=list)
    """API keys; none: no authentication (fine on 127.0.0.1 only)."""
    max_request_bytes: int = Field(default=4_000_000, gt=0)
    """Largest request body; larger ones get 413."""
    shutdown_timeout: float = Field(default=30.0, gt=0)
    """Seconds in-flight requests and streams may finish after a stop signal."""
    models_directly: bool = True
    """Also serve each model by its own name (through the same executor)."""
    route_in_response: bool = True
    """Add the route record to responses (a ``route`` field and ``x-llmrouter-*`` headers)."""

    def authenticate(self, authorization: str | None) -> ApiKey | None:
        """The key in an ``Authorization`` header, or ``None`` if it matches none.

        Every key is compared in constant time, and all of them always are, so
        the response time does not tell how much of a key was right.
        """
        scheme, _, token = (authorization or "").partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        found: ApiKey | None = None
        for candidate in self.keys:
            if hmac.compare_digest(given, candidate.key.get_secret_value().encode()) and given:
                found = candidate
        return found
