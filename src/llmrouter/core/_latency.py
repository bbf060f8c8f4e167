"""`LatencyTracker`: an exponentially weighted latency per model, thread-safe."""

from __future__ import annotations

import threading

from llmrouter.errors import ConfigurationError
from llmrouter.record import RouteRecord


class LatencyTracker:
    """Exponentially weighted mean latency (seconds) per model name.

    Feed it route records from a router's `BaseRouter.on_finish` hook (every
    successful attempt counts) or single observations; read it when ranking.

    Examples:
        >>> tracker = LatencyTracker(alpha=0.5)
        >>> tracker.observe("a", 1.0)
        >>> tracker.observe("a", 3.0)
        >>> tracker.get("a"), tracker.get("b")
        (2.0, None)
        >>> tracker.fastest(["b", "a"])
        ['a', 'b']
    """

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0 < alpha <= 1:
            raise ConfigurationError(
                f"alpha={alpha!r}: the weight of the newest observation must be in (0, 1]"
            )
        self.alpha = alpha
        self._mean: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, model: str, seconds: float) -> None:
        """Add one observation for ``model``."""
        with self._lock:
            old = self._mean.get(model)
            self._mean[model] = (
                seconds if old is None else self.alpha * seconds + (1 - self.alpha) * old
            )

    def observe_record(self, record: RouteRecord) -> None:
        """Add every successful attempt of a route record."""
        for attempt in record.attempts:
            if attempt.ok:
                self.observe(attempt.model, attempt.latency_s)

    def get(self, model: str) -> float | None:
        """The current mean for ``model`` (``None`` before its first observation)."""
        return self._mean.get(model)

    def snapshot(self) -> dict[str, float]:
        """A copy of every model's mean."""
        with self._lock:
            return dict(self._mean)

    def fastest(self, names: list[str]) -> list[str]:
        """``names`` ordered by observed latency; unobserved models last, in given order."""
        means = self.snapshot()
        return sorted(names, key=lambda n: (n not in means, means.get(n, 0.0)))
