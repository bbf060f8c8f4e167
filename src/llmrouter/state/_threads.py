"""Which model a conversation stays on: `ThreadMemory` in a process, SQLite or Redis.

`llmrouter.task.ModelRouter` keeps a conversation (``thread_id``) on the model that
answered it while its task is unchanged. Without shared state that memory is per
process, so a user whose requests land on two replicas could hop between models;
with ``state=`` every replica reads and writes the same entries:

* `LocalThreads` -- an LRU of ``max_threads`` entries in this process;
* `SQLiteThreads` -- a table in the state's file; entries unused for ``ttl`` go;
* `RedisThreads` -- one key per thread (``llmrouter:thread:{ROUTER}:ID``) that
  expires ``ttl`` seconds after its last use; while Redis does not answer, this
  process's own LRU stands in (fail open, one warning).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from llmrouter._sqlite import SQLiteDatabase
from llmrouter.errors import StateUnavailableError
from llmrouter.state._outage import Outages

if TYPE_CHECKING:
    import redis

__all__ = ["LocalThreads", "RedisThreads", "SQLiteThreads", "ThreadMemory"]

Entry = tuple[str | None, str]
"""(the task the conversation had, the model that answered it)."""

DEFAULT_TTL_S = 86400.0
"""A conversation unused for a day may move to another model."""


class ThreadMemory(ABC):
    """Thread id -> (task, model) for one router."""

    @abstractmethod
    def get(self, thread_id: str) -> Entry | None:
        """The conversation's task and model, if remembered."""

    @abstractmethod
    def put(self, thread_id: str, task: str | None, model: str) -> None:
        """Remember (or refresh) the conversation's task and model."""


class LocalThreads(ThreadMemory):
    """The ``max_threads`` most recently used conversations of this process."""

    def __init__(self, max_threads: int = 10_000) -> None:
        self.max_threads = max_threads
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, thread_id: str) -> Entry | None:
        with self._lock:
            entry = self._entries.get(thread_id)
            if entry is not None:
                self._entries.move_to_end(thread_id)
            return entry

    def put(self, thread_id: str, task: str | None, model: str) -> None:
        with self._lock:
            self._entries[thread_id] = (task, model)
            self._entries.move_to_end(thread_id)
            while len(self._entries) > self.max_threads:
                self._entries.popitem(last=False)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    router TEXT NOT NULL, thread_id TEXT NOT NULL, task TEXT, model TEXT NOT NULL,
    used REAL NOT NULL, PRIMARY KEY (router, thread_id)
);
CREATE INDEX IF NOT EXISTS threads_used ON threads (used);
"""


class SQLiteThreads(ThreadMemory):
    """Conversations in the state's SQLite file, shared by the processes of one machine."""

    def __init__(self, path: str, router: str, ttl: float = DEFAULT_TTL_S) -> None:
        self.router = router
        self.ttl = ttl
        self._db = SQLiteDatabase(path, _SCHEMA)
        self._writes = 0

    def get(self, thread_id: str) -> Entry | None:
        rows = self._db.fetch(
            "SELECT task, model FROM threads WHERE router = ? AND thread_id = ? AND used >= ?",
            (self.router, thread_id, time.time() - self.ttl),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def put(self, thread_id: str, task: str | None, model: str) -> None:
        now = time.time()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO threads (router, thread_id, task, model, used) "
                "VALUES (?, ?, ?, ?, ?)",
                (self.router, thread_id, task, model, now),
            )
            self._writes += 1
            if self._writes % 1000 == 0:  # now and then, forget the expired ones
                conn.execute("DELETE FROM threads WHERE used < ?", (now - self.ttl,))


class RedisThreads(ThreadMemory):
    """Conversations in Redis, shared by every replica; this process's LRU while it is down."""

    def __init__(
        self,
        client: redis.Redis,
        router: str,
        *,
        namespace: str = "llmrouter",
        ttl: float = DEFAULT_TTL_S,
        max_threads: int = 10_000,
        outages: Outages | None = None,
    ) -> None:
        self.client = client
        self.prefix = f"{namespace}:thread:{{{router}}}:"
        self.ttl = ttl
        self.local = LocalThreads(max_threads)
        """Used while Redis does not answer."""
        self._outages = outages or Outages("redis", "redis")

    def _shared(self, action: Any) -> Any:
        return self._outages.call("threads", action, "each process keeps its own conversations")

    def get(self, thread_id: str) -> Entry | None:
        try:
            raw = self._shared(lambda: self.client.get(self.prefix + thread_id))
        except StateUnavailableError:
            return self.local.get(thread_id)
        if raw is None:
            return None
        task, model = json.loads(raw)
        return task, model

    def put(self, thread_id: str, task: str | None, model: str) -> None:
        self.local.put(thread_id, task, model)
        value, key = json.dumps([task, model]), self.prefix + thread_id
        # while Redis is down it is remembered locally; the next answer refreshes it there
        with contextlib.suppress(StateUnavailableError):
            self._shared(lambda: self.client.set(key, value, ex=int(self.ttl)))
