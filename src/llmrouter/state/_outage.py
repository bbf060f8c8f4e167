"""Outages of a shared state backend: one warning per outage, counts for metrics.

Every concern (``budgets``, ``breakers``, ...) reports each failed call to the
backend here. The first failure of an outage logs a warning that says what the
concern does meanwhile (fail closed or open); the first success after it logs
that the backend is back. During an outage a concern asks the backend again at
most every `RETRY_S` seconds (`Outages.skip`): calls in between take the
fail-closed or fail-open path at once instead of each waiting for a timeout.
`state_errors` feeds the ``llmrouter_state_errors_total`` metric of ``llmrouter serve``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from llmrouter.state._redis_client import is_unavailable, unavailable

T = TypeVar("T")

__all__ = ["Outages", "state_errors"]

logger = logging.getLogger("llmrouter")

RETRY_S = 1.0
"""During an outage, how often a concern tries the backend again."""

_lock = threading.Lock()
_errors: Counter[tuple[str, str]] = Counter()


def state_errors() -> dict[tuple[str, str], int]:
    """Calls that could not use the shared state so far in this process (they failed,
    or were not tried during an outage), by (backend, concern)."""
    with _lock:
        return dict(_errors)


class Outages:
    """Tracks whether one backend is down, for one concern, and says so once."""

    def __init__(self, backend: str, where: str) -> None:
        self.backend = backend
        self.where = where
        self._down: dict[str, float] = {}
        """Concerns in an outage -> when their last call failed (monotonic)."""
        self._lock = threading.Lock()

    def failed(self, concern: str, error: BaseException, meanwhile: str) -> None:
        """A call for ``concern`` failed; warn if this starts an outage."""
        with _lock:
            _errors[(self.backend, concern)] += 1
        with self._lock:
            new = concern not in self._down
            self._down[concern] = time.monotonic()
        if new:
            logger.warning(
                "shared state %s did not answer for %s (%s: %s); %s until it is back",
                self.where,
                concern,
                type(error).__name__,
                error,
                meanwhile,
            )

    def succeeded(self, concern: str) -> None:
        """A call for ``concern`` worked; log the end of an outage."""
        if concern not in self._down:  # the common case: no lock
            return
        with self._lock:
            ended = self._down.pop(concern, None) is not None
        if ended:
            logger.warning("shared state %s answers again for %s", self.where, concern)

    def call(
        self, concern: str, action: Callable[[], T], meanwhile: str, *, force: bool = False
    ) -> T:
        """Run one backend ``action`` for ``concern``.

        Raises:
            StateUnavailableError: the backend did not answer (or, unless ``force``,
                did not answer a moment ago: it is not asked). ``meanwhile`` (what the
                concern does until it is back) goes into the outage's warning.
        """
        if not force and self.skip(concern):
            error = ConnectionError("no answer to a call less than a second ago")
            raise unavailable(error, self.where, concern)
        try:
            result = action()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self.failed(concern, exc, meanwhile)
            raise unavailable(exc, self.where, concern) from exc
        self.succeeded(concern)
        return result

    def down(self, concern: str) -> bool:
        """True while ``concern`` is in an outage (its last call failed)."""
        return concern in self._down

    def skip(self, concern: str) -> bool:
        """True if a call to the backend (for any concern: it is one server) failed less
        than `RETRY_S` ago: do not ask it yet (the call counts in `state_errors`)."""
        failed = max(list(self._down.values()), default=None)  # a copy: others may write
        if failed is None or time.monotonic() - failed >= RETRY_S:
            return False
        with _lock:
            _errors[(self.backend, concern)] += 1
        return True
