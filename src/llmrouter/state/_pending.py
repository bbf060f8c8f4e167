"""Writes that found the shared state down wait here, in order, until it answers again.

A spend settlement or an experiment record describes something that already
happened (a model was paid, a user was answered): it must not be lost because
Redis was restarting. `PendingWrites.write` tries at once; if the backend does
not answer, the write waits in this process and the next write or `flush` sends
the waiting ones first, oldest first. They are lost only if the process ends
before the backend is back (the log says how many were waiting).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable

from llmrouter.state._redis_client import is_unavailable

__all__ = ["PendingWrites"]

logger = logging.getLogger("llmrouter")

Call = Callable[[Callable[[], object], bool], object]
"""Runs one backend action (``force``: even during an outage's back-off)."""


class PendingWrites:
    """An ordered queue of writes waiting for the backend, flushed before new ones."""

    def __init__(self, call: Call, what: str) -> None:
        self._call = call
        self.what = what
        self._queue: deque[Callable[[], object]] = deque()
        self._lock = threading.RLock()
        _LIVE.add(self)

    def __len__(self) -> int:
        return len(self._queue)

    def write(self, action: Callable[[], object]) -> None:
        """Run ``action`` now (after the waiting ones), or keep it if the backend is down."""
        with self._lock:
            self.flush()
            if not self._queue:
                try:
                    self._call(action, False)
                    return
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
            self._queue.append(action)

    def flush(self, *, force: bool = False) -> bool:
        """Send the waiting writes, oldest first; True if none is left."""
        if not self._queue:
            return True
        with self._lock:
            while self._queue:
                try:
                    self._call(self._queue[0], force)
                except Exception as exc:
                    if is_unavailable(exc):
                        return False
                    self._queue.popleft()  # refused for good (not retried): say so
                    raise
                self._queue.popleft()
        return True


_LIVE: weakref.WeakSet[PendingWrites] = weakref.WeakSet()


@atexit.register
def _last_try() -> None:
    for pending in list(_LIVE):
        if len(pending) and not pending.flush(force=True):
            logger.error(
                "llmrouter: %d %s never reached the shared state (it did not answer) "
                "and are lost with this process",
                len(pending),
                pending.what,
            )
