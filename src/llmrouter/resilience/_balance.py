"""`Balancer`: how one model's replicas share its calls, as this process sees them.

A `ModelSpec` with ``replicas`` is one model served by several endpoints. Each
try of it goes to one replica, in the order `Balancer.order` gives:

* ``least_busy`` -- fewest calls in flight from this process (ties take turns);
* ``latency`` -- lowest recent latency of this process's answers (an average
  that weighs the last answers most); replicas not measured yet go first;
* ``weighted`` -- at random, in proportion to each replica's ``weight``.

The executor skips replicas whose circuit breaker is open (breakers are per
replica, in the router's state) and fails over to the next replica at once
when one fails.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
)
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from llmrouter.spec import ModelSpec

__all__ = ["BALANCES", "Balance", "Balancer"]

Balance = Literal["least_busy", "latency", "weighted"]
BALANCES: tuple[Balance, ...] = ("least_busy", "latency", "weighted")

_ALPHA = 0.3
"""Weight of the newest answer in a replica's latency average."""


class Balancer:
    """One group's in-flight counts and latencies in this process.

    Examples:
        >>> balancer = Balancer("least_busy")
        >>> with balancer.busy("east"):
        ...     balancer.in_flight("east")
        1
    """

    def __init__(self, balance: Balance, seed: int | None = None) -> None:
        self.balance = balance
        self._busy: Counter[str] = Counter()
        self._latency: dict[str, float] = {}
        self._turn = 0
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def in_flight(self, name: str) -> int:
        """Calls to replica ``name`` in flight from this process."""
        return self._busy[name]

    def latency(self, name: str) -> float | None:
        """Replica ``name``'s recent latency in seconds (``None``: not measured)."""
        return self._latency.get(name)

    def order(
        self, replicas: Sequence[ModelSpec], tried: frozenset[str] = frozenset()
    ) -> list[ModelSpec]:
        """``replicas`` in the order to try them, those in ``tried`` last."""
        with self._lock:
            self._turn += 1
            turn, n = self._turn, len(replicas)
            if self.balance == "weighted":
                # weighted random order: the key u ** (1 / w) sorts by weight, at random
                keys = {r.name: self._random.random() ** (1.0 / r.weight) for r in replicas}
                ranked = sorted(replicas, key=lambda r: -keys[r.name])
            elif self.balance == "latency":
                ranked = sorted(
                    replicas,
                    key=lambda r: (r.name in self._latency, self._latency.get(r.name, 0.0)),
                )
            else:
                position = {r.name: (i - turn) % n for i, r in enumerate(replicas)}
                ranked = sorted(replicas, key=lambda r: (self._busy[r.name], position[r.name]))
        return [r for r in ranked if r.name not in tried] + [r for r in ranked if r.name in tried]

    def observed(self, name: str, seconds: float) -> None:
        """Replica ``name`` answered in ``seconds``."""
        with self._lock:
            old = self._latency.get(name)
            self._latency[name] = seconds if old is None else old + _ALPHA * (seconds - old)

    @contextmanager
    def busy(self, name: str, inner: AbstractContextManager[None] | None = None) -> Iterator[None]:
        """Count a call to ``name`` in flight while inside (and inside ``inner``)."""
        with inner or nullcontext(), self._counted(name):
            yield

    @asynccontextmanager
    async def abusy(
        self, name: str, inner: AbstractAsyncContextManager[None] | None = None
    ) -> AsyncIterator[None]:
        """Async `busy` (``inner``: an async context manager, e.g. a concurrency slot)."""
        async with inner or nullcontext():
            with self._counted(name):
                yield

    @contextmanager
    def _counted(self, name: str) -> Iterator[None]:
        with self._lock:
            self._busy[name] += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy[name] -= 1
