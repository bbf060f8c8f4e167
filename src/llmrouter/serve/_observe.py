"""What the server does after each request: count it (Prometheus) and log it (one
JSON line per request, secrets redacted)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from llmrouter._redact import redact
from llmrouter.serve._metrics import ServerMetrics

LOGGER = logging.getLogger("llmrouter.serve")
"""Request log: one JSON object per line at INFO (``llmrouter serve`` prints it to stderr)."""


class Observer:
    """Counts and logs every request of one app."""

    def __init__(self, metrics: ServerMetrics, secrets: Iterable[str] = ()) -> None:
        self.metrics = metrics
        self.secrets = [s for s in secrets if s]

    def answered(
        self,
        target: str,
        route: Mapping[str, Any],
        seconds: float,
        *,
        ttft: float | None = None,
        key: str | None = None,
    ) -> None:
        self.metrics.observe(target, route, seconds, ttft)
        self._log("answered", target, key, seconds, route=dict(route), ttft_s=ttft)

    def failed(
        self, target: str, exc: BaseException, seconds: float, *, key: str | None = None
    ) -> None:
        route = _record_of(exc)
        self.metrics.failed(target, type(exc).__name__, route)
        self._log("failed", target, key, seconds, error=type(exc).__name__, route=route)

    def _log(self, event: str, target: str, key: str | None, seconds: float, **fields: Any) -> None:
        if not LOGGER.isEnabledFor(logging.INFO):
            return
        entry = {
            "ts": round(time.time(), 3),
            "event": event,
            "router": target,
            "key": key,
            "latency_s": round(seconds, 6),
            **{k: v for k, v in fields.items() if v is not None},
        }
        LOGGER.info(redact(json.dumps(entry, default=str), self.secrets))


def _record_of(exc: BaseException) -> dict[str, Any] | None:
    record = getattr(exc, "record", None)
    dump = getattr(record, "model_dump", None)
    return dump(mode="json") if callable(dump) else None
