"""Where a `SemanticResponseCache` keeps its questions' vectors and answers.

`SQLiteVectors` -- one table, in memory or a file (one machine) -- and
`RedisVectors` -- every replica. Both keep, per scope (one router, task,
conversation, model and settings), the entries written less than ``ttl`` seconds
ago, at most ``keep`` of them (the oldest go first). A lookup fetches the
scope's entries in one query or one script; the cache compares the vectors.
"""

from __future__ import annotations

import contextlib
import struct
import time
from typing import TYPE_CHECKING, Any, Protocol

from llmrouter._sqlite import SQLiteDatabase
from llmrouter.errors import StateUnavailableError
from llmrouter.state._outage import Outages

if TYPE_CHECKING:
    import redis

__all__ = ["RedisVectors", "SQLiteVectors", "VectorStore"]


class VectorStore(Protocol):
    """A semantic cache's entries: a question's vector (float32 bytes) and its answer."""

    def rows(self, scope: str) -> list[tuple[bytes, str]]:
        """The live entries of ``scope``: (vector, encoded answer)."""

    def add(self, scope: str, vector: bytes, answer: str) -> None:
        """Store an entry; drop what expired and the oldest beyond the cap."""

    def clear(self) -> None:
        """Delete every entry."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS semantic_responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, vector BLOB NOT NULL,
    generations TEXT NOT NULL, expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS semantic_scope ON semantic_responses (scope, expires);
"""


class SQLiteVectors:
    """Entries in a SQLite table: ``":memory:"`` (this process) or a file."""

    def __init__(self, path: str, ttl: float | None, keep: int) -> None:
        self.path, self.ttl, self.keep = path, ttl, keep
        self._db = SQLiteDatabase(path, _SCHEMA)

    def rows(self, scope: str) -> list[tuple[bytes, str]]:
        return [
            (bytes(vector), str(answer))
            for vector, answer in self._db.fetch(
                "SELECT vector, generations FROM semantic_responses "
                "WHERE scope = ? AND expires > ?",
                (scope, time.time()),
            )
        ]

    def add(self, scope: str, vector: bytes, answer: str) -> None:
        now = time.time()
        expires = now + self.ttl if self.ttl is not None else float("inf")
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO semantic_responses (scope, vector, generations, expires) "
                "VALUES (?, ?, ?, ?)",
                (scope, vector, answer, expires),
            )
            conn.execute(  # the oldest beyond the cap, and what expired
                "DELETE FROM semantic_responses WHERE scope = ? AND (expires <= ? OR id NOT IN "
                "(SELECT id FROM semantic_responses WHERE scope = ? ORDER BY id DESC LIMIT ?))",
                (scope, now, scope, self.keep),
            )

    def clear(self) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM semantic_responses")


# KEYS: index (zset: id -> written at, ms), data (hash: id -> entry), seq (counter).
# ARGV: entry, now (ms), oldest live (ms), keep, ttl (ms; 0: none).
_ADD = """
local id = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], id)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local live = redis.call('ZCARD', KEYS[1]) - #gone
local extra = live - tonumber(ARGV[4])
if extra > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], #gone, #gone + extra - 1)) do
    table.insert(gone, old)
  end
end
for i = 1, #gone, 500 do
  local part = {unpack(gone, i, math.min(i + 499, #gone))}
  redis.call('HDEL', KEYS[2], unpack(part))
  redis.call('ZREM', KEYS[1], unpack(part))
end
if ARGV[5] ~= '0' then
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
end
return id
"""

# KEYS: index, data. ARGV: oldest live (ms).
_ROWS = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))
"""

_MEANWHILE = "lookups miss and answers are not cached"


class RedisVectors:
    """Entries on Redis (``<namespace>:semantic:<scope>:...``), shared by every replica;
    the scope's keys expire ``ttl`` after its last write. While Redis does not
    answer, lookups miss and writes are dropped."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str,
        ttl: float | None,
        keep: int,
        outages: Outages | None = None,
    ) -> None:
        self.client, self.ttl, self.keep = client, ttl, keep
        self.prefix = f"{namespace}:semantic:"
        self._outages = outages or Outages("redis", "redis")
        self._add = client.register_script(_ADD)
        self._rows = client.register_script(_ROWS)

    def rows(self, scope: str) -> list[tuple[bytes, str]]:
        index, data, _ = self._keys(scope)
        try:
            raw = self._outages.call(
                "cache", lambda: self._rows(keys=[index, data], args=[self._oldest()]), _MEANWHILE
            )
        except StateUnavailableError:
            return []
        return [_unpacked(entry) for entry in raw if entry is not None]

    def add(self, scope: str, vector: bytes, answer: str) -> None:
        entry = struct.pack("<I", len(vector)) + vector + answer.encode()
        ttl_ms = int(self.ttl * 1000) if self.ttl is not None else 0
        args = [entry, int(time.time() * 1000), self._oldest(), self.keep, ttl_ms]
        # an answer not cached is asked again next time: nothing is lost
        with contextlib.suppress(StateUnavailableError):
            self._outages.call(
                "cache", lambda: self._add(keys=list(self._keys(scope)), args=args), _MEANWHILE
            )

    def clear(self) -> None:
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start : start + 1000])

    def _keys(self, scope: str) -> tuple[str, str, str]:
        base = self.prefix + scope
        return f"{base}:index", f"{base}:data", f"{base}:seq"

    def _oldest(self) -> Any:
        """The write time (ms) of the oldest live entry: ``-inf`` without a ttl."""
        if self.ttl is None:
            return "-inf"
        return int((time.time() - self.ttl) * 1000)


def _unpacked(entry: bytes) -> tuple[bytes, str]:
    (size,) = struct.unpack_from("<I", entry)
    return entry[4 : 4 + size], entry[4 + size :].decode()
