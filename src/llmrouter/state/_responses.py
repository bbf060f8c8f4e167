"""Response caches with a time to live: in this process, in SQLite, in Redis.

Each is a LangChain `BaseCache` (``lookup(prompt, llm_string)`` /
``update(prompt, llm_string, generations)``), so a router's ``response_cache``
takes one of these or any other LangChain cache, and ``set_llm_cache`` takes
these too. An entry expires ``ttl`` seconds after it was written (``None``:
never). Keys are a SHA-256 of the prompt and the model string, so keys of any
length fit, and entries written by a router (whose model strings start with
``llmrouter:``) never meet LangChain's own.

A cache never fails a call: while Redis does not answer, lookups miss and
writes are dropped (one warning per outage, ``llmrouter_state_errors_total``).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import dumps, loads

from llmrouter._sqlite import SQLiteDatabase, database_path
from llmrouter.errors import ConfigurationError, StateUnavailableError
from llmrouter.state._outage import Outages

if TYPE_CHECKING:
    import redis

    from llmrouter.state._backends import RedisState

DEFAULT_TTL_S = 86_400.0
"""How long a cached answer lives unless ``ttl`` says otherwise (a day)."""

__all__ = [
    "DEFAULT_TTL_S",
    "MemoryResponseCache",
    "RedisResponseCache",
    "SQLiteResponseCache",
    "entry_key",
]


def entry_key(prompt: str, llm_string: str) -> str:
    """The stored key of one entry: a SHA-256 of both parts (hex)."""
    digest = hashlib.sha256(prompt.encode())
    digest.update(b"\0")
    digest.update(llm_string.encode())
    return digest.hexdigest()


def check_ttl(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise ConfigurationError(f"ttl must be > 0 seconds or None (never expire), not {value!r}")
    return value


def encode(generations: Sequence[Any]) -> str:
    """Generations as JSON (LangChain's serialisation: messages, tool calls, usage)."""
    return dumps(list(generations))


def decode(text: str) -> RETURN_VAL_TYPE:
    """The generations `encode` wrote (only langchain-core classes are rebuilt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # loads() is marked beta
        value: RETURN_VAL_TYPE = loads(text, allowed_objects="core")
    return value


class MemoryResponseCache(BaseCache):
    """This process only: the ``maxsize`` most recently used entries.

    Examples:
        >>> from langchain_core.outputs import Generation
        >>> cache = MemoryResponseCache(ttl=60)
        >>> cache.update("prompt", "model", [Generation(text="hi")])
        >>> cache.lookup("prompt", "model")[0].text
        'hi'
        >>> cache.lookup("prompt", "another model") is None
        True
    """

    def __init__(self, ttl: float | None = DEFAULT_TTL_S, maxsize: int = 10_000) -> None:
        if maxsize < 1:
            raise ConfigurationError(f"maxsize must be at least 1, not {maxsize!r}")
        self.ttl = check_ttl(ttl)
        self.maxsize = maxsize
        self._entries: OrderedDict[str, tuple[float, RETURN_VAL_TYPE]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __reduce__(self) -> tuple[Any, ...]:
        # a copy in another process starts empty (as in-memory stores do)
        return (MemoryResponseCache, (self.ttl, self.maxsize))

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        key = entry_key(prompt, llm_string)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        key = entry_key(prompt, llm_string)
        expires = time.monotonic() + self.ttl if self.ttl is not None else float("inf")
        with self._lock:
            self._entries[key] = (expires, list(return_val))
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self, **kwargs: Any) -> None:
        with self._lock:
            self._entries.clear()

    # nothing to wait for: no thread hop
    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self.lookup(prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self.update(prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        self.clear()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, generations TEXT NOT NULL, expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires);
"""


class SQLiteResponseCache(BaseCache):
    """A table in a SQLite file: the processes of one machine share it.

    Examples:
        >>> import os, tempfile
        >>> from langchain_core.outputs import Generation
        >>> cache = SQLiteResponseCache(os.path.join(tempfile.mkdtemp(), "state.db"))
        >>> cache.update("prompt", "model", [Generation(text="hi")])
        >>> cache.lookup("prompt", "model")[0].text
        'hi'
    """

    def __init__(self, path: str, ttl: float | None = DEFAULT_TTL_S) -> None:
        self.path = database_path(path, "response cache")
        self.ttl = check_ttl(ttl)
        self._db = SQLiteDatabase(self.path, _SCHEMA)
        self._writes = 0

    def __reduce__(self) -> tuple[Any, ...]:
        return (SQLiteResponseCache, (self.path, self.ttl))

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        rows = self._db.fetch(
            "SELECT generations FROM responses WHERE key = ? AND expires > ?",
            (entry_key(prompt, llm_string), time.time()),
        )
        return decode(rows[0][0]) if rows else None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        now = time.time()
        expires = now + self.ttl if self.ttl is not None else float("inf")
        value = encode(return_val)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO responses (key, generations, expires) VALUES (?, ?, ?)",
                (entry_key(prompt, llm_string), value, expires),
            )
            self._writes += 1
            if self._writes % 1000 == 0:  # now and then, drop what expired
                conn.execute("DELETE FROM responses WHERE expires <= ?", (now,))

    def clear(self, **kwargs: Any) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM responses")


_MEANWHILE = "answers are neither read from the cache nor written to it"


class RedisResponseCache(BaseCache):
    """One Redis key per entry (``<namespace>:cache:<sha256>``) expiring with ``ttl``:
    every replica shares it. While Redis does not answer, lookups miss and writes
    are dropped.

    Examples:
        >>> from llmrouter.state import RedisState
        >>> cache = RedisState("redis://127.0.0.1:6379/0").response_cache(ttl=600)
        >>> cache.ttl
        600
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "llmrouter",
        ttl: float | None = DEFAULT_TTL_S,
        outages: Outages | None = None,
        state: RedisState | None = None,
    ) -> None:
        self.client = client
        self.prefix = f"{namespace}:cache:"
        self.ttl = check_ttl(ttl)
        self._outages = outages or Outages("redis", "redis")
        self._state = state

    def __reduce__(self) -> tuple[Any, ...]:
        if self._state is None:
            raise TypeError(
                "a RedisResponseCache made from a client cannot be pickled; "
                "take it from RedisState(url).response_cache(ttl) instead"
            )
        return (_reopened, (self._state, self.ttl))

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        key = self.prefix + entry_key(prompt, llm_string)
        try:
            raw = self._outages.call("cache", lambda: self.client.get(key), _MEANWHILE)
        except StateUnavailableError:
            return None
        return decode(raw.decode() if isinstance(raw, bytes) else raw) if raw else None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        key, value = self.prefix + entry_key(prompt, llm_string), encode(return_val)
        expire = int(self.ttl * 1000) if self.ttl is not None else None
        # an answer not cached is asked again next time: nothing is lost
        with contextlib.suppress(StateUnavailableError):
            self._outages.call("cache", lambda: self.client.set(key, value, px=expire), _MEANWHILE)

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry of this namespace."""
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start : start + 1000])


def _reopened(state: RedisState, ttl: float | None) -> BaseCache:
    return state.response_cache(ttl)
