"""The ``serve:`` section of a config file: address, API keys, limits."""

from __future__ import annotations

import hmac
import threading
import time

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr


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
    429 with ``Retry-After``. ``null``: no limit. Per server process."""

    _bucket: list[float] = PrivateAttr(default_factory=list)  # [tokens, last refill time]
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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
