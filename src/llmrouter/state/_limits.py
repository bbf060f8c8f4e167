"""Request rate limits shared by processes: `SharedRateLimiter`, a LangChain rate limiter.

The limit is a GCRA (generic cell rate algorithm, the token bucket written as one
timestamp): each model's key holds its *theoretical arrival time* ``tat``; a
request is allowed when ``max(tat, now) + interval - now <= burst * interval``,
and then moves ``tat`` on by one ``interval``. Otherwise it learns how long to
wait. One number per model, changed atomically: one Lua script in Redis (on the
server's clock), or one ``BEGIN IMMEDIATE`` transaction in SQLite.

Unlike LangChain's `InMemoryRateLimiter`, whose bucket starts empty, a shared
bucket starts full: the first ``max_bucket_size`` requests go at once.

While Redis does not answer, limits *fail open to local state*: each process
limits its own calls with an `InMemoryRateLimiter` of the same rate, and warns once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from langchain_core.rate_limiters import BaseRateLimiter, InMemoryRateLimiter

from llmrouter._sqlite import SQLiteDatabase
from llmrouter.errors import StateUnavailableError
from llmrouter.state._outage import Outages

__all__ = ["SharedRateLimiter", "gcra", "redis_take", "sqlite_take"]

Take = Callable[[], float]
"""Try to take one request now: 0.0 if allowed, else the seconds to wait first."""


def gcra(tat: float | None, now: float, interval: float, burst: float) -> tuple[float, float]:
    """(the new ``tat``, 0.0) if a request may go at ``now``, else (``tat``, seconds to wait).

    Examples:
        >>> gcra(None, 100.0, 0.5, 2)     # a full bucket: allowed
        (100.5, 0.0)
        >>> gcra(100.5, 100.0, 0.5, 2)    # the second of the burst
        (101.0, 0.0)
        >>> gcra(101.0, 100.0, 0.5, 2)    # the bucket is empty: wait 0.5 s
        (101.0, 0.5)
    """
    start = now if tat is None or tat < now else tat
    new = start + interval
    wait = new - now - burst * interval
    if wait > 1e-9:
        return start, wait
    return new, 0.0


# KEYS: the limit's key. ARGV: interval (us), burst. Uses the server's clock.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + interval
local wait = new - now - burst * interval
if wait > 0 then return math.max(1, math.ceil(wait)) end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
return 0
"""


def redis_take(client: object, key: str, requests_per_second: float, burst: float) -> Take:
    """A `Take` on a Redis server (``client``: a redis-py client)."""
    script = client.register_script(_GCRA)  # type: ignore[attr-defined]
    interval = round(1e6 / requests_per_second)

    def take() -> float:
        return int(script(keys=[key], args=[interval, burst])) / 1e6

    return take


_SCHEMA = "CREATE TABLE IF NOT EXISTS rate_limits (name TEXT PRIMARY KEY, tat REAL NOT NULL)"


def sqlite_take(path: str, name: str, requests_per_second: float, burst: float) -> Take:
    """A `Take` in a SQLite file (the processes of one machine; wall clock)."""
    db = SQLiteDatabase(path, _SCHEMA)
    interval = 1.0 / requests_per_second

    def take() -> float:
        with db.transaction() as conn:
            row = conn.execute("SELECT tat FROM rate_limits WHERE name = ?", (name,)).fetchone()
            new, wait = gcra(row[0] if row else None, time.time(), interval, burst)
            if wait == 0.0:
                conn.execute(
                    "INSERT OR REPLACE INTO rate_limits (name, tat) VALUES (?, ?)", (name, new)
                )
            return wait

    return take


class SharedRateLimiter(BaseRateLimiter):
    """A request rate shared by every process that names the same model and state.

    Build it with ``state.rate_limiter(name, requests_per_second, max_bucket_size)``
    and give it to a model: ``ModelSpec(..., rate_limiter=...)``.

    Examples:
        >>> import os, tempfile
        >>> from llmrouter.state import SQLiteState
        >>> state = SQLiteState(os.path.join(tempfile.mkdtemp(), "state.db"))
        >>> limiter = state.rate_limiter("gpt", requests_per_second=2, max_bucket_size=2)
        >>> [limiter.acquire(blocking=False) for _ in range(3)]
        [True, True, False]
    """

    def __init__(
        self,
        take: Take,
        *,
        requests_per_second: float,
        max_bucket_size: float = 1.0,
        outages: Outages | None = None,
    ) -> None:
        if requests_per_second <= 0 or max_bucket_size < 1:
            raise ValueError("requests_per_second must be > 0 and max_bucket_size >= 1")
        self._take = take
        self.requests_per_second = requests_per_second
        self.max_bucket_size = max_bucket_size
        self._outages = outages
        self.local = InMemoryRateLimiter(
            requests_per_second=requests_per_second,
            max_bucket_size=max_bucket_size,
            check_every_n_seconds=min(0.1, 1 / requests_per_second),
        )
        """This process's own limit, used while the shared state does not answer."""

    def try_take(self) -> float | None:
        """Take a token if there is one: ``0.0`` (taken), the seconds until the next
        one (nothing taken), or ``None``: the shared state is down (use `local`)."""
        if self._outages is None:  # SQLite: its errors are not outages
            return self._take()
        try:
            return self._outages.call("limits", self._take, "each process limits its own calls")
        except StateUnavailableError:
            return None

    def acquire(self, *, blocking: bool = True) -> bool:
        while True:
            wait = self.try_take()
            if wait is None:
                return self.local.acquire(blocking=blocking)
            if wait == 0.0:
                return True
            if not blocking:
                return False
            time.sleep(wait)

    async def aacquire(self, *, blocking: bool = True) -> bool:
        while True:
            wait = await asyncio.to_thread(self.try_take)
            if wait is None:
                return await self.local.aacquire(blocking=blocking)
            if wait == 0.0:
                return True
            if not blocking:
                return False
            await asyncio.sleep(wait)
