"""Canary protection of an A/B experiment: the guard, its windows, and stored rollbacks."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from llmrouter.ab._store import ExperimentEvent
from llmrouter.errors import ConfigurationError

__all__ = ["CanaryGuard", "CanaryWindows", "standing_rollbacks"]


@dataclass(frozen=True)
class CanaryGuard:
    """Rolls a candidate back (share 0) when its recent requests look bad.

    Over the last ``window`` requests assigned to the candidate, once there are
    at least ``min_requests``: an error rate above ``max_error_rate``, or a p95
    latency above ``max_p95_latency_s``, trips the guard.

    Examples:
        >>> from llmrouter.ab._router import CanaryGuard
        >>> guard = CanaryGuard(max_error_rate=0.2, min_requests=5, window=10)
        >>> guard.check([(True, 0.1)] * 3 + [(False, 0.1)] * 2)["reason"]
        'error rate 40% > 20% over the last 5 requests'
    """

    max_error_rate: float | None = 0.1
    """Highest tolerated error rate in the window (``None``: not checked)."""
    max_p95_latency_s: float | None = None
    """Highest tolerated p95 latency in seconds (``None``: not checked)."""
    window: int = 50
    """How many recent candidate requests the guard looks at."""
    min_requests: int = 20
    """Requests needed in the window before the guard may trip."""

    def __post_init__(self) -> None:
        if self.max_error_rate is None and self.max_p95_latency_s is None:
            raise ConfigurationError(
                "CanaryGuard checks nothing: give max_error_rate and/or max_p95_latency_s"
            )
        if self.max_error_rate is not None and not 0 <= self.max_error_rate < 1:
            raise ConfigurationError(
                f"CanaryGuard.max_error_rate must lie in [0, 1), got {self.max_error_rate}"
            )
        if self.max_p95_latency_s is not None and not self.max_p95_latency_s > 0:
            raise ConfigurationError(
                f"CanaryGuard.max_p95_latency_s must be > 0, got {self.max_p95_latency_s}"
            )
        if not 1 <= self.min_requests <= self.window:
            raise ConfigurationError(
                f"CanaryGuard needs 1 <= min_requests <= window, got min_requests="
                f"{self.min_requests}, window={self.window}"
            )

    def check(self, outcomes: Sequence[tuple[bool, float]]) -> dict[str, Any] | None:
        """``None`` if ``(ok, latency_s)`` outcomes pass; else why not, with measurements."""
        n = len(outcomes)
        if n < self.min_requests:
            return None
        error_rate = sum(1 for ok, _ in outcomes if not ok) / n
        latencies = sorted(latency for _, latency in outcomes)
        p95 = latencies[math.ceil(0.95 * n) - 1]  # nearest rank
        measured = {"requests": n, "error_rate": error_rate, "p95_latency_s": p95}
        if self.max_error_rate is not None and error_rate > self.max_error_rate:
            why = f"error rate {error_rate:.0%} > {self.max_error_rate:.0%}"
            return {"reason": f"{why} over the last {n} requests", **measured}
        if self.max_p95_latency_s is not None and p95 > self.max_p95_latency_s:
            why = f"p95 latency {p95:.3f}s > {self.max_p95_latency_s:.3f}s"
            return {"reason": f"{why} over the last {n} requests", **measured}
        return None


class CanaryWindows:
    """The recent outcomes of each candidate, as a `CanaryGuard` looks at them.

    Not locked: the router holds its lock around `observe` and the rollback it leads to.
    """

    def __init__(self) -> None:
        self._windows: dict[str, deque[tuple[bool, float]]] = {}

    def observe(
        self, guard: CanaryGuard, variant: str, ok: bool, latency_s: float
    ) -> dict[str, Any] | None:
        """Add an outcome; ``guard``'s verdict if the candidate should be rolled back."""
        window = self._windows.setdefault(variant, deque(maxlen=guard.window))
        window.append((ok, latency_s))
        return guard.check(window)

    def forget(self, variant: str) -> None:
        """Start the candidate's window afresh (after a rollback)."""
        self._windows.pop(variant, None)


def standing_rollbacks(
    events: Iterable[ExperimentEvent], candidates: Sequence[str]
) -> dict[str, ExperimentEvent]:
    """The stored rollbacks no later ramp re-enabled, by candidate."""
    rolled: dict[str, ExperimentEvent] = {}
    for event in events:
        if event.kind == "rollback" and event.variant is not None and event.variant in candidates:
            rolled[event.variant] = event
        elif event.kind == "ramp":
            for name, share in (event.detail.get("shares") or {}).items():
                if share > 0:
                    rolled.pop(name, None)
    return rolled
