"""Where shared state lives: `MemoryState`, `SQLiteState`, `RedisState`, and `open_state`.

A state hands each concern its store: `SharedState.ledger` (spend and budget
reservations), `SharedState.breaker_board` (circuit breakers) and
`SharedState.experiment_store` (A/B records, ramps and rollbacks). Routers take
one with ``state=`` -- an instance or a URL:

* ``"memory://"`` -- this process only (the default behaviour);
* ``"sqlite:///spend.db"`` (relative) or ``"sqlite:////abs/state.db"`` -- one
  machine, several processes;
* ``"redis://127.0.0.1:6379/0"`` -- many machines.

`open_state` returns one instance per URL in a process, so routers that name the
same URL share one connection pool and one set of stores.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llmrouter.errors import ConfigurationError
from llmrouter.resilience._token_limits import TokenRateLimiter
from llmrouter.state._ledger_api import BaseLedger
from llmrouter.state._responses import DEFAULT_TTL_S
from llmrouter.state._semantic import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    from langchain_core.caches import BaseCache
    from langchain_core.embeddings import Embeddings
    from langchain_core.rate_limiters import BaseRateLimiter

    from llmrouter.ab._store import ExperimentStore
    from llmrouter.resilience._breaker import BreakerBoard
    from llmrouter.state._semantic import SemanticResponseCache
    from llmrouter.state._threads import ThreadMemory

__all__ = [
    "MemoryState",
    "RedisState",
    "SQLiteState",
    "SharedState",
    "open_state",
    "response_cache_for",
]


class SharedState(ABC):
    """One place for the state that routers share (subclass it for another store)."""

    url: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @abstractmethod
    def ledger(self) -> BaseLedger:
        """The spend ledger (budgets reserve and settle here)."""

    @abstractmethod
    def breaker_board(self) -> BreakerBoard:
        """Where circuit-breaker states live."""

    @abstractmethod
    def experiment_store(self) -> ExperimentStore:
        """Where A/B experiments keep records, feedback, ramps and rollbacks."""

    def response_cache(self, ttl: float | None = DEFAULT_TTL_S) -> BaseCache:
        """Where routers cache answers (``response_cache=True``): entries expire ``ttl``
        seconds after they were written (``None``: never). This process only, here;
        SQLite and Redis states share it.

        Examples:
            >>> open_state("memory://").response_cache(ttl=60).ttl
            60
        """
        from llmrouter.state._responses import MemoryResponseCache

        with _opened_lock:
            cache = self._caches.get(ttl)
            if cache is None:
                cache = self._caches[ttl] = MemoryResponseCache(ttl)
            return cache

    @cached_property
    def _caches(self) -> dict[float | None, BaseCache]:
        return {}

    def semantic_cache(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        ttl: float | None = DEFAULT_TTL_S,
        embeddings: Embeddings | None = None,
        max_per_scope: int = 1000,
    ) -> SemanticResponseCache:
        """A cache that matches questions by meaning (`SemanticResponseCache`, MiniLM
        unless ``embeddings`` are given; at most ``max_per_scope`` answers per router,
        task, conversation and model). This process only, here; a SQLite state keeps
        it in its file, a Redis state on Redis for every replica.

        Examples:
            >>> from langchain_core.embeddings import DeterministicFakeEmbedding
            >>> cache = open_state("memory://").semantic_cache(
            ...     threshold=0.95, embeddings=DeterministicFakeEmbedding(size=8))
            >>> cache.threshold, cache.max_per_scope
            (0.95, 1000)
        """
        from llmrouter.state._semantic import SemanticResponseCache

        place = self._semantic_place(ttl, max_per_scope)
        return SemanticResponseCache(
            embeddings, threshold=threshold, ttl=ttl, max_per_scope=max_per_scope, **place
        )

    def _semantic_place(self, ttl: float | None, max_per_scope: int) -> dict[str, Any]:
        """Where a semantic cache keeps its entries (`SemanticResponseCache` keywords):
        in memory, here."""
        return {}

    def thread_memory(self, router: str, max_threads: int = 10_000) -> ThreadMemory:
        """Which model each conversation of ``router`` stays on (this process only, here)."""
        from llmrouter.state._threads import LocalThreads

        return LocalThreads(max_threads)

    def rate_limiter(
        self, name: str, requests_per_second: float, max_bucket_size: float = 1.0
    ) -> BaseRateLimiter:
        """A request rate limit for the model ``name``, shared where the state is.

        This process only, here (LangChain's `InMemoryRateLimiter`); SQLite and Redis
        states share it (`llmrouter.state._limits.SharedRateLimiter`).
        """
        from langchain_core.rate_limiters import InMemoryRateLimiter

        return InMemoryRateLimiter(
            requests_per_second=requests_per_second, max_bucket_size=max_bucket_size
        )

    def token_limiter(self, name: str, tokens_per_minute: int) -> TokenRateLimiter:
        """A tokens-per-minute limit for the model ``name``, shared where the state is.

        This process only, here; SQLite and Redis states share it
        (`llmrouter.state._limits.SharedTokenRateLimiter`).
        """
        return TokenRateLimiter(tokens_per_minute)


class MemoryState(SharedState):
    """This process only: an in-memory ledger; the process-wide breaker board."""

    url = "memory://"

    @cached_property
    def _ledger(self) -> BaseLedger:
        from llmrouter.state._sqlite_ledger import SpendLedger

        return SpendLedger(":memory:")

    def ledger(self) -> BaseLedger:
        return self._ledger

    def breaker_board(self) -> BreakerBoard:
        from llmrouter.resilience._breaker import DEFAULT_BOARD

        return DEFAULT_BOARD

    @cached_property
    def _store(self) -> ExperimentStore:
        from llmrouter.ab._store import SQLiteStore

        return SQLiteStore(":memory:")

    def experiment_store(self) -> ExperimentStore:
        return self._store


class SQLiteState(SharedState):
    """One SQLite file for every concern: processes on one machine share it.

    Examples:
        >>> import os, tempfile
        >>> state = SQLiteState(os.path.join(tempfile.mkdtemp(), "state.db"))
        >>> state.ledger().rows()
        []
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SQLiteState, (self.path,))

    @cached_property
    def _ledger(self) -> BaseLedger:
        from llmrouter.state._sqlite_ledger import SpendLedger

        return SpendLedger(self.path)

    @cached_property
    def _board(self) -> BreakerBoard:
        from llmrouter.resilience._breaker import SQLiteBreakerBoard

        return SQLiteBreakerBoard(self.path)

    def ledger(self) -> BaseLedger:
        return self._ledger

    def breaker_board(self) -> BreakerBoard:
        return self._board

    @cached_property
    def _store(self) -> ExperimentStore:
        from llmrouter.ab._store import SQLiteStore

        return SQLiteStore(self.path)

    def experiment_store(self) -> ExperimentStore:
        return self._store

    def rate_limiter(
        self, name: str, requests_per_second: float, max_bucket_size: float = 1.0
    ) -> BaseRateLimiter:
        from llmrouter.state._limits import SharedRateLimiter, sqlite_take

        take = sqlite_take(self.path, name, requests_per_second, max_bucket_size)
        return SharedRateLimiter(
            take, requests_per_second=requests_per_second, max_bucket_size=max_bucket_size
        )

    def token_limiter(self, name: str, tokens_per_minute: int) -> TokenRateLimiter:
        from llmrouter.state._limits import SharedTokenRateLimiter, sqlite_tokens

        take, adjust = sqlite_tokens(self.path, name, tokens_per_minute)
        return SharedTokenRateLimiter(take, adjust, tokens_per_minute=tokens_per_minute)

    def response_cache(self, ttl: float | None = DEFAULT_TTL_S) -> BaseCache:
        from llmrouter.state._responses import SQLiteResponseCache

        return SQLiteResponseCache(self.path, ttl)

    def _semantic_place(self, ttl: float | None, max_per_scope: int) -> dict[str, Any]:
        return {"path": self.path}

    def thread_memory(self, router: str, max_threads: int = 10_000) -> ThreadMemory:
        from llmrouter.state._threads import SQLiteThreads

        return SQLiteThreads(self.path, router)


class RedisState(SharedState):
    """State on a Redis server: every process and machine that names it shares it.

    ``budgets`` says what a budget does while Redis does not answer: ``"closed"``
    (the default) refuses calls with `StateUnavailableError`; ``"open"`` lets them
    through unchecked and writes their spend once Redis is back. Breakers always
    fall back to this process's own state meanwhile. Every Redis call has a
    ``timeout`` (seconds; default ``LLMROUTER_REDIS_TIMEOUT`` or 0.5). Keys start
    with ``namespace``.

    Examples:
        >>> state = RedisState("redis://127.0.0.1:6379/0", budgets="closed")
        >>> state
        RedisState('redis://127.0.0.1:6379/0')
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        budgets: Literal["closed", "open"] = "closed",
        namespace: str = "llmrouter",
        timeout: float | None = None,
    ) -> None:
        from llmrouter.state._redis_client import redacted_url

        if budgets not in ("closed", "open"):
            raise ConfigurationError(f"budgets must be 'closed' or 'open', not {budgets!r}")
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, not {timeout!r}")
        self._url = url
        self.url = redacted_url(url)
        self.budgets = budgets
        self.namespace = namespace
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        options = {"budgets": self.budgets, "namespace": self.namespace, "timeout": self.timeout}
        return (_redis_state, (self._url, options))

    @cached_property
    def client(self) -> Any:
        """The redis-py client (one connection pool, bounded timeouts)."""
        from llmrouter.state._redis_client import connect

        return connect(self._url, timeout=self.timeout)

    @cached_property
    def _outages(self) -> Any:
        from llmrouter.state._outage import Outages

        return Outages("redis", self.url)

    @cached_property
    def _ledger(self) -> BaseLedger:
        from llmrouter.state._redis_ledger import RedisSpendLedger

        return RedisSpendLedger(
            self.client,
            namespace=self.namespace,
            fail=self.budgets,
            where=self.url,
            outages=self._outages,
        )

    @cached_property
    def _board(self) -> BreakerBoard:
        from llmrouter.state._redis_breakers import RedisBreakerBoard

        return RedisBreakerBoard(
            self.client, namespace=self.namespace, where=self.url, outages=self._outages
        )

    def ledger(self) -> BaseLedger:
        return self._ledger

    def breaker_board(self) -> BreakerBoard:
        return self._board

    @cached_property
    def _store(self) -> ExperimentStore:
        from llmrouter.state._redis_experiments import RedisExperimentStore

        return RedisExperimentStore(
            self.client, namespace=self.namespace, where=self.url, outages=self._outages
        )

    def experiment_store(self) -> ExperimentStore:
        return self._store

    def rate_limiter(
        self, name: str, requests_per_second: float, max_bucket_size: float = 1.0
    ) -> BaseRateLimiter:
        from llmrouter.state._limits import SharedRateLimiter, redis_take

        key = f"{self.namespace}:limit:{name}"
        return SharedRateLimiter(
            redis_take(self.client, key, requests_per_second, max_bucket_size),
            requests_per_second=requests_per_second,
            max_bucket_size=max_bucket_size,
            outages=self._outages,
        )

    def token_limiter(self, name: str, tokens_per_minute: int) -> TokenRateLimiter:
        from llmrouter.state._limits import SharedTokenRateLimiter, redis_tokens

        take, adjust = redis_tokens(
            self.client, f"{self.namespace}:tokens:{name}", tokens_per_minute
        )
        return SharedTokenRateLimiter(
            take, adjust, tokens_per_minute=tokens_per_minute, outages=self._outages
        )

    def response_cache(self, ttl: float | None = DEFAULT_TTL_S) -> BaseCache:
        from llmrouter.state._responses import RedisResponseCache

        return RedisResponseCache(
            self.client, namespace=self.namespace, ttl=ttl, outages=self._outages, state=self
        )

    def _semantic_place(self, ttl: float | None, max_per_scope: int) -> dict[str, Any]:
        from llmrouter.state._vectors import RedisVectors

        store = RedisVectors(
            self.client, namespace=self.namespace, ttl=ttl, keep=max_per_scope,
            outages=self._outages,
        )  # fmt: skip
        return {"store": store, "state": self}  # a pickled copy opens this state again

    def thread_memory(self, router: str, max_threads: int = 10_000) -> ThreadMemory:
        from llmrouter.state._threads import RedisThreads

        return RedisThreads(
            self.client,
            router,
            namespace=self.namespace,
            max_threads=max_threads,
            outages=self._outages,
        )


def _redis_state(url: str, options: dict[str, Any]) -> RedisState:
    return RedisState(url, **options)


_opened: dict[str, SharedState] = {}
_opened_lock = threading.Lock()


def open_state(value: SharedState | str | Path) -> SharedState:
    """The state for ``value``: a `SharedState`, or a URL (one instance per URL).

    Examples:
        >>> open_state("memory://")
        MemoryState('memory://')
        >>> open_state("redis://127.0.0.1:6379/0") is open_state("redis://127.0.0.1:6379/0")
        True
    """
    if isinstance(value, SharedState):
        return value
    if not isinstance(value, (str, Path)):
        raise ConfigurationError(
            f"state must be a URL or a SharedState, not {type(value).__name__}; e.g. "
            'state="redis://127.0.0.1:6379/0" or state="sqlite:///state.db"'
        )
    text = str(value)
    with _opened_lock:
        state = _opened.get(text)
        if state is None:
            state = _opened[text] = _parse(text)
        return state


def response_cache_for(
    state: SharedState | str | Path | None, ttl: float | None = DEFAULT_TTL_S
) -> BaseCache:
    """The cache ``response_cache=True`` stands for: ``state``'s (`open_state`), or,
    without a state, one of this router's own in memory.

    Examples:
        >>> type(response_cache_for(None)).__name__
        'MemoryResponseCache'
    """
    if state is None:
        from llmrouter.state._responses import MemoryResponseCache

        return MemoryResponseCache(ttl)
    return open_state(state).response_cache(ttl)


def _parse(text: str) -> SharedState:
    if text in ("memory://", "memory"):
        return MemoryState()
    if text.startswith("sqlite:///"):
        path = text.removeprefix("sqlite:///")
        if not path or path == ":memory:":
            raise ConfigurationError(
                "an in-memory SQLite state is one process only: use state='memory://'"
            )
        return SQLiteState(path)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisState(text)
    raise ConfigurationError(
        f"state {text!r} is not a state URL: use 'memory://', 'sqlite:///path.db' "
        "or 'redis://HOST:PORT/DB'"
    )
