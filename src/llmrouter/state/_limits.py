"""Rate limits shared by processes: `SharedRateLimiter` (requests, a LangChain rate
limiter) and `SharedTokenRateLimiter` (tokens per minute).

The limit is a GCRA (generic cell rate algorithm, the token bucket written as one
timestamp): each model's key holds its *theoretical arrival time* ``tat``; a
request is allowed when ``max(tat, now) + interval - now <= burst * interval``,
and then moves ``tat`` on by one ``interval``. Otherwise it learns how long to
wait. One number per model, changed atomically: one Lua script in Redis (on the
server's clock), or one ``BEGIN IMMEDIATE`` transaction in SQLite.

Unlike LangChain's `InMemoryRateLimiter`, whose bucket starts empty, a shared
bucket starts full: the first ``max_bucket_size`` requests go at once.

Token limits count the same way with a weight: a call takes its estimated tokens
(``tat`` moves on by ``tokens`` intervals) and is settled to its actual usage
afterwards (``tat`` moves back or on by the difference), in one script or
transaction each.

While Redis does not answer, limits *fail open to local state*: each process
limits its own calls with an `InMemoryRateLimiter` of the same rate, and warns once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from langchain_core.rate_limiters import BaseRateLimiter, InMemoryRateLimiter

from llmrouter._sqlite import SQLiteDatabase
from llmrouter.errors import StateUnavailableError
from llmrouter.resilience._token_limits import TokenRateLimiter, gcra
from llmrouter.state._outage import Outages

__all__ = [
    "SharedRateLimiter",
    "SharedTokenRateLimiter",
    "gcra",
    "redis_take",
    "redis_tokens",
    "sqlite_take",
    "sqlite_tokens",
]

T = TypeVar("T")

Take = Callable[[], float]
"""Try to take one request now: 0.0 if allowed, else the seconds to wait first."""


# KEYS: the limit's key. ARGV: interval (us), burst, cost (units; default 1).
# Uses the server's clock.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost = tonumber(ARGV[3] or '1')
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + interval * cost
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


# KEYS: the limit's key. ARGV: interval (us), tokens (+ charge, - give back).
_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
if new <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
return 0
"""

TakeTokens = Callable[[int], float]
"""Try to take this many tokens now: 0.0 if taken, else the seconds to wait first."""
Adjust = Callable[[int], None]
"""Charge this many tokens more (positive) or give them back (negative)."""


def redis_tokens(client: object, key: str, tokens_per_minute: int) -> tuple[TakeTokens, Adjust]:
    """Take and adjust a token limit on a Redis server (``client``: a redis-py client)."""
    take_script = client.register_script(_GCRA)  # type: ignore[attr-defined]
    adjust_script = client.register_script(_ADJUST)  # type: ignore[attr-defined]
    interval = 60e6 / tokens_per_minute

    def take(tokens: int) -> float:
        args = [interval, tokens_per_minute, tokens]
        return int(take_script(keys=[key], args=args)) / 1e6

    def adjust(tokens: int) -> None:
        adjust_script(keys=[key], args=[interval, tokens])

    return take, adjust


def sqlite_tokens(path: str, name: str, tokens_per_minute: int) -> tuple[TakeTokens, Adjust]:
    """Take and adjust a token limit in a SQLite file (one machine; wall clock)."""
    db = SQLiteDatabase(path, _SCHEMA)
    interval = 60.0 / tokens_per_minute
    key = f"tokens:{name}"

    def take(tokens: int) -> float:
        with db.transaction() as conn:
            row = conn.execute("SELECT tat FROM rate_limits WHERE name = ?", (key,)).fetchone()
            tat = row[0] if row else None
            new, wait = gcra(tat, time.time(), interval, tokens_per_minute, tokens)
            if wait == 0.0:
                conn.execute(
                    "INSERT OR REPLACE INTO rate_limits (name, tat) VALUES (?, ?)", (key, new)
                )
            return wait

    def adjust(tokens: int) -> None:
        with db.transaction() as conn:
            row = conn.execute("SELECT tat FROM rate_limits WHERE name = ?", (key,)).fetchone()
            now = time.time()
            start = now if row is None or row[0] < now else row[0]
            new = max(start + tokens * interval, now)
            conn.execute("INSERT OR REPLACE INTO rate_limits (name, tat) VALUES (?, ?)", (key, new))

    return take, adjust


class SharedTokenRateLimiter(TokenRateLimiter):
    """Tokens per minute shared by every process that names the same model and state.

    Build it with ``state.token_limiter(name, tokens_per_minute)`` and give it to a
    model: ``ModelSpec(..., token_limiter=...)``. While Redis does not answer, each
    process counts its own tokens (this class's local count), and warns once.

    Examples:
        >>> import os, tempfile
        >>> from llmrouter.state import SQLiteState
        >>> state = SQLiteState(os.path.join(tempfile.mkdtemp(), "state.db"))
        >>> limiter = state.token_limiter("gpt", tokens_per_minute=1000)
        >>> limiter.try_take(800), limiter.try_take(300) > 0   # 300 more do not fit
        (0.0, True)
    """

    def __init__(
        self,
        take: TakeTokens,
        adjust: Adjust,
        *,
        tokens_per_minute: int,
        outages: Outages | None = None,
    ) -> None:
        super().__init__(tokens_per_minute)
        self._shared_take = take
        self._shared_adjust = adjust
        self._outages = outages

    def try_take(self, tokens: int) -> float:
        if tokens > self.tokens_per_minute:
            return float("inf")
        here = super().try_take
        return self._either(lambda: self._shared_take(tokens), lambda: here(tokens))

    async def atry_take(self, tokens: int) -> float:
        return await asyncio.to_thread(self.try_take, tokens)

    def adjust(self, tokens: int) -> None:
        here = super().adjust
        self._either(lambda: self._shared_adjust(tokens), lambda: here(tokens))

    def _either(self, shared: Callable[[], T], local: Callable[[], T]) -> T:
        """The shared count; this process's own while Redis does not answer."""
        if self._outages is None:  # SQLite: its errors are not outages
            return shared()
        try:
            return self._outages.call("limits", shared, "each process limits its own calls")
        except StateUnavailableError:
            return local()
