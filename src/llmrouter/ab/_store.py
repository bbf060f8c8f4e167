"""Persisted experiment state: per-request records, feedback and events.

`ExperimentStore` is the interface (implement it for a shared server store such
as Redis or PostgreSQL); `SQLiteStore` is the default, on the standard library's
``sqlite3`` (through `llmrouter._sqlite`): WAL journal, a busy timeout, one
short ``BEGIN IMMEDIATE`` transaction per write, safe under threads, asyncio
(through `aadd_record`) and several processes writing one file.

`open_store` turns what users pass as ``store=`` into a store:
``"sqlite:///experiments.db"`` (relative path), ``"sqlite:////abs/path.db"``,
``":memory:"``, a plain path, ``None`` (in memory) or an `ExperimentStore`.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from llmrouter._sqlite import ForkedMemoryDatabaseError, SQLiteDatabase, database_path
from llmrouter.errors import (
    ConfigurationError,
    ExperimentError,
    StoreClosedError,
    UnknownRequestError,
)


class ExperimentStoreWarning(RuntimeWarning):
    """A record could not be written; the user's call went on regardless."""


@dataclass
class ExperimentRecord:
    """One request of an experiment (or one shadow run of a candidate)."""

    request_id: str
    experiment: str
    variant: str
    """The variant the request was assigned to (errors count against it)."""
    model: str | None = None
    """The model that answered (the control after a fallback; ``None`` if all failed)."""
    key: str | None = None
    """The assignment key (user, thread, ``key_fn``); ``None`` for random assignment."""
    shadow: bool = False
    """True for a candidate's background run on a copy of a control request."""
    parent_id: str | None = None
    """For a shadow run: the request id of the control request it copies."""
    created_at: float = field(default_factory=time.time)
    """Unix time the request finished."""
    latency_s: float | None = None
    """What the user waited (for shadows: the candidate's own call)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    error_type: str | None = None
    """Error of the assigned variant's attempt; ``None`` if it answered."""
    error: str | None = None
    prompt: str | None = None
    """Shadow runs with ``record_outputs``: the last user message."""
    output: str | None = None
    """Shadow runs with ``record_outputs``: the candidate's answer."""
    reference_output: str | None = None
    """Shadow runs with ``record_outputs``: the control's answer to the same request."""

    @property
    def ok(self) -> bool:
        """True if the assigned variant answered."""
        return self.error_type is None


@dataclass
class Feedback:
    """A score given to one request (e.g. thumbs up = 1, down = 0)."""

    request_id: str
    experiment: str
    score: float
    created_at: float = field(default_factory=time.time)


@dataclass
class ExperimentEvent:
    """Something that changed an experiment: a ramp or a rollback."""

    experiment: str
    kind: str
    """``"ramp"`` or ``"rollback"``."""
    variant: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    """Shares after the change, the guard's measurements, ..."""
    created_at: float = field(default_factory=time.time)


class ExperimentStore(ABC):
    """Where experiments keep their records, feedback and events.

    Implementations must make each ``add_*`` call atomic and durable on return,
    safe to call from several threads at once, and (for a shared store) from
    several processes or hosts. ``add_feedback`` must raise `UnknownRequestError`
    when no record has the request id. The async methods run the sync ones in a
    worker thread; override them for a natively async client.
    """

    @abstractmethod
    def add_record(self, record: ExperimentRecord) -> None:
        """Store one request record (its ``request_id`` is unique)."""

    @abstractmethod
    def add_feedback(self, feedback: Feedback) -> None:
        """Store a score for a known request of ``feedback.experiment``.

        Raises:
            UnknownRequestError: if the store has no such request in that experiment.
        """

    @abstractmethod
    def add_event(self, event: ExperimentEvent) -> None:
        """Store an experiment event (ramp, rollback)."""

    @abstractmethod
    def records(self, experiment: str) -> list[ExperimentRecord]:
        """Every record of ``experiment``, oldest first."""

    @abstractmethod
    def feedback(self, experiment: str) -> list[Feedback]:
        """Every feedback score of ``experiment``, oldest first."""

    @abstractmethod
    def events(self, experiment: str) -> list[ExperimentEvent]:
        """Every event of ``experiment``, oldest first."""

    def close(self) -> None:  # noqa: B027 - optional for stores without resources
        """Release connections; the default does nothing."""

    async def aadd_record(self, record: ExperimentRecord) -> None:
        """Async `add_record` (runs it in a worker thread)."""
        await asyncio.to_thread(self.add_record, record)

    async def aadd_event(self, event: ExperimentEvent) -> None:
        """Async `add_event` (runs it in a worker thread)."""
        await asyncio.to_thread(self.add_event, event)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiment_records (
    request_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    model TEXT,
    key TEXT,
    shadow INTEGER NOT NULL DEFAULT 0,
    parent_id TEXT,
    created_at REAL NOT NULL,
    latency_s REAL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER,
    cost_usd REAL,
    error_type TEXT,
    error TEXT,
    prompt TEXT,
    output TEXT,
    reference_output TEXT
);
CREATE INDEX IF NOT EXISTS experiment_records_by_experiment
    ON experiment_records (experiment, created_at);
CREATE TABLE IF NOT EXISTS experiment_feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    experiment TEXT NOT NULL,
    score REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS experiment_feedback_by_experiment
    ON experiment_feedback (experiment, created_at);
CREATE TABLE IF NOT EXISTS experiment_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT NOT NULL,
    kind TEXT NOT NULL,
    variant TEXT,
    detail TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

_RECORD_COLUMNS = (
    "request_id",
    "experiment",
    "variant",
    "model",
    "key",
    "shadow",
    "parent_id",
    "created_at",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "error_type",
    "error",
    "prompt",
    "output",
    "reference_output",
)


class SQLiteStore(ExperimentStore):
    """Experiment store in one SQLite file (or in memory).

    A connection per thread and per process (a forked child opens its own); WAL
    journal so readers never block the writer; ``busy_timeout`` so writers in
    other processes wait instead of failing; each write is one ``BEGIN
    IMMEDIATE`` transaction.

    Examples:
        >>> from llmrouter.ab._store import ExperimentRecord, Feedback, SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> store.add_record(ExperimentRecord(request_id="r1", experiment="e", variant="a"))
        >>> store.add_feedback(Feedback(request_id="r1", experiment="e", score=1.0))
        >>> [(r.variant, r.ok) for r in store.records("e")], store.feedback("e")[0].score
        ([('a', True)], 1.0)
        >>> store.close()
    """

    def __init__(self, path: str | Path = ":memory:", *, busy_timeout_s: float = 30.0) -> None:
        self.path = database_path(path, "store")
        """The database file (``~`` expanded), or ``":memory:"``."""
        self.busy_timeout_s = busy_timeout_s
        """How long a write waits for another process's transaction."""
        self._closed = False
        # opened now: a bad path or a file that is no database fails here, not on first write
        self._db = SQLiteDatabase(self.path, _SCHEMA, timeout=busy_timeout_s)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # the copy opens the same file (":memory:": a new, empty database)
        return (partial(SQLiteStore, busy_timeout_s=self.busy_timeout_s), (self.path,))

    # ------------------------------------------------------------ connection

    @contextmanager
    def _database(self) -> Iterator[SQLiteDatabase]:
        """The database, with this store's errors for a closed or forked in-memory store."""
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed; open a new store to use it again")
        try:
            yield self._db
        except ForkedMemoryDatabaseError as exc:
            raise ExperimentError(
                "an in-memory store cannot be shared with a forked process; "
                'use a file store, e.g. store="sqlite:///experiments.db"'
            ) from exc

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one statement in its own write transaction; return the row count."""
        with self._database() as db, db.transaction() as conn:
            return conn.execute(sql, params).rowcount

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._database() as db:
            return db.fetch(sql, params)

    def close(self) -> None:
        """Close the connection; later calls raise `StoreClosedError`."""
        self._closed = True
        self._db.close()

    # ----------------------------------------------------------------- writes

    def add_record(self, record: ExperimentRecord) -> None:
        values = tuple(getattr(record, name) for name in _RECORD_COLUMNS)
        placeholders = ", ".join("?" for _ in _RECORD_COLUMNS)
        self._write(
            f"INSERT INTO experiment_records ({', '.join(_RECORD_COLUMNS)}) "
            f"VALUES ({placeholders})",
            values,
        )

    def add_feedback(self, feedback: Feedback) -> None:
        # One statement: the request must exist in this experiment at insert time.
        count = self._write(
            "INSERT INTO experiment_feedback (request_id, experiment, score, created_at) "
            "SELECT request_id, experiment, ?, ? FROM experiment_records "
            "WHERE request_id = ? AND experiment = ?",
            (feedback.score, feedback.created_at, feedback.request_id, feedback.experiment),
        )
        if count == 0:
            rows = self._read(
                "SELECT experiment FROM experiment_records WHERE request_id = ?",
                (feedback.request_id,),
            )
            raise UnknownRequestError(
                feedback.request_id, feedback.experiment, rows[0][0] if rows else None
            )

    def add_event(self, event: ExperimentEvent) -> None:
        self._write(
            "INSERT INTO experiment_events (experiment, kind, variant, detail, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                event.experiment,
                event.kind,
                event.variant,
                json.dumps(event.detail, default=str),
                event.created_at,
            ),
        )

    # ------------------------------------------------------------------ reads

    def records(self, experiment: str) -> list[ExperimentRecord]:
        rows = self._read(
            f"SELECT {', '.join(_RECORD_COLUMNS)} FROM experiment_records "
            "WHERE experiment = ? ORDER BY created_at, rowid",
            (experiment,),
        )
        out = []
        for row in rows:
            values = dict(zip(_RECORD_COLUMNS, row, strict=True))
            values["shadow"] = bool(values["shadow"])
            out.append(ExperimentRecord(**values))
        return out

    def feedback(self, experiment: str) -> list[Feedback]:
        rows = self._read(
            "SELECT request_id, experiment, score, created_at FROM experiment_feedback "
            "WHERE experiment = ? ORDER BY id",
            (experiment,),
        )
        return [Feedback(*row) for row in rows]

    def events(self, experiment: str) -> list[ExperimentEvent]:
        rows = self._read(
            "SELECT experiment, kind, variant, detail, created_at FROM experiment_events "
            "WHERE experiment = ? ORDER BY id",
            (experiment,),
        )
        return [
            ExperimentEvent(experiment=e, kind=k, variant=v, detail=json.loads(d), created_at=t)
            for e, k, v, d, t in rows
        ]


def open_store(store: ExperimentStore | str | Path | None) -> ExperimentStore:
    """Build the store a router's ``store=`` names.

    Accepts an `ExperimentStore` (returned as is), ``None`` or ``":memory:"``
    (an in-memory SQLite store), ``"sqlite:///relative.db"``,
    ``"sqlite:////absolute/path.db"``, or a plain file path.

    Raises:
        ConfigurationError: for a URL scheme with no store (e.g. ``redis://``).
    """
    if isinstance(store, ExperimentStore):
        return store
    if store is None:
        return SQLiteStore(":memory:")
    if isinstance(store, Path):
        return SQLiteStore(store)
    if not isinstance(store, str):
        raise ConfigurationError(
            f"store must be an ExperimentStore, a file path, 'sqlite:///path.db' or "
            f"':memory:', got {type(store).__name__} {store!r}"
        )
    text = str(store).strip()
    if text in (":memory:", "sqlite://", "sqlite:///:memory:"):
        return SQLiteStore(":memory:")
    if text.startswith("sqlite:///"):
        return SQLiteStore(text.removeprefix("sqlite:///"))
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigurationError(
            f"store={text!r}: no built-in store for {scheme!r}. Use "
            '"sqlite:///path.db", or implement llmrouter.ab._store.ExperimentStore for your '
            "server store and pass an instance"
        )
    if not text:
        raise ConfigurationError('store is empty: pass "sqlite:///experiments.db" or ":memory:"')
    return SQLiteStore(text)
