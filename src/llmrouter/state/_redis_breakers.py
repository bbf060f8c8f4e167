"""Circuit-breaker states on Redis: a model that failed for one process is skipped by all.

Each model's `BreakerState` is one JSON value (``llmrouter:breaker:<model>``),
changed in a WATCH/MULTI transaction (redis-py retries it when another process
changed the value in between), expiring a day after its last change. The common
case -- a closed breaker with no recent failure -- costs one GET.

While Redis does not answer, breakers *fail open to local state*: this process
keeps its own breakers (in memory) and warns once; when Redis answers again it
uses the shared states again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar, cast

from llmrouter.errors import StateUnavailableError
from llmrouter.resilience._breaker import BreakerBoard, BreakerState, MemoryBreakerBoard
from llmrouter.state._outage import Outages

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline

__all__ = ["RedisBreakerBoard"]

T = TypeVar("T")

_TTL_S = 86400
"""A breaker state nobody changed for a day is forgotten (closed)."""


class RedisBreakerBoard(BreakerBoard):
    """Breaker states shared through Redis, with this process's own states as a fallback.

    Examples:
        >>> from llmrouter import CircuitBreaker
        >>> from llmrouter.state import RedisState
        >>> board = RedisState("redis://127.0.0.1:6379/0").breaker_board()  # doctest: +SKIP
        >>> CircuitBreaker(board=board, failure_threshold=1).record_failure("m")  # doctest: +SKIP
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "llmrouter",
        where: str = "redis",
        outages: Outages | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.where = where
        self.local = MemoryBreakerBoard()
        """The states used while Redis does not answer."""
        self._outages = outages or Outages("redis", where)

    def __repr__(self) -> str:
        return f"RedisBreakerBoard({self.where!r})"

    def _key(self, name: str) -> str:
        return f"{self.namespace}:breaker:{name}"

    def _shared(self, action: Callable[[], T], fallback: Callable[[], T]) -> T:
        try:
            return self._outages.call("breakers", action, "each process keeps its own breakers")
        except StateUnavailableError:
            return fallback()

    def update(self, name: str, change: Callable[[BreakerState], bool]) -> bool:
        key = self._key(name)

        def transaction(pipe: Pipeline) -> bool:
            raw = pipe.get(key)
            state = BreakerState(**json.loads(raw)) if raw else BreakerState()
            result = change(state)
            pipe.multi()
            pipe.set(key, json.dumps(asdict(state)), ex=_TTL_S)
            return result

        def shared() -> bool:
            run = cast(Any, self.client.transaction)  # typed as if the callable returned None
            return bool(run(transaction, key, value_from_callable=True))

        return self._shared(shared, lambda: self.local.update(name, change))

    def snapshot(self) -> dict[str, BreakerState]:
        def shared() -> dict[str, BreakerState]:
            keys = list(self.client.scan_iter(match=self._key("*")))
            values = self.client.mget(keys) if keys else []
            start = len(self._key(""))
            return {
                k.decode()[start:]: BreakerState(**json.loads(v))
                for k, v in zip(keys, values, strict=True)
                if v is not None
            }

        return self._shared(shared, self.local.snapshot)

    def quiet(self, name: str) -> bool:
        def shared() -> bool:
            raw = self.client.get(self._key(name))
            if raw is None:
                return True
            state = json.loads(raw)
            return bool(state["state"] == "closed" and not state["failures"])

        return self._shared(shared, lambda: self.local.quiet(name))

    def reset(self) -> None:
        def shared() -> None:
            keys = list(self.client.scan_iter(match=self._key("*")))
            if keys:
                self.client.delete(*keys)

        self._shared(shared, lambda: None)
        self.local.reset()
