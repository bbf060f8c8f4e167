"""`SQLiteDatabase`: one SQLite file shared safely by threads and forked processes.

Every SQLite layer (spend ledger, experiment store, breaker board) opens its
database through this helper, so they agree on the rules:

* a connection per thread and per process: a connection opened before a
  ``fork()`` is never used in the child (SQLite forbids it: the child would
  share the parent's file locks), nor closed there; the child opens its own.
  A fork waits for the transactions open in other threads to end (a lock held
  at the fork would stay held in the child's copy of SQLite's lock state, and
  block every write of the child);
* WAL journal (readers never block the writer), ``synchronous=NORMAL`` (durable
  across application crashes in WAL mode) and a busy timeout, so writers in
  other processes wait instead of failing;
* writes in `SQLiteDatabase.transaction`: ``BEGIN IMMEDIATE`` takes the write
  lock up front (check-then-write is atomic across processes), then commit,
  or roll back on any error.

``":memory:"`` is one private database of the process that opened it: its
threads share one connection behind a lock, and a forked child cannot use it
(`ForkedMemoryDatabaseError`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrouter.errors import ConfigurationError

__all__ = ["ForkedMemoryDatabaseError", "SQLiteDatabase", "database_path"]

_FORKED_AWAY: list[sqlite3.Connection] = []
"""Connections a forked child inherited: kept referenced, because closing one in the
child (on garbage collection) would release locks that the child's own connections hold."""


_DATABASES: weakref.WeakSet[SQLiteDatabase] = weakref.WeakSet()
"""Every open database, so that a fork can wait for their transactions."""
_HELD: list[threading.RLock] = []
"""Transaction locks taken for the duration of a fork."""


def _before_fork() -> None:
    pid = os.getpid()
    for db in list(_DATABASES):
        process = db._processes.get(pid)
        # bounded: a transaction waiting on the forking thread must not hang the fork
        if process is not None and process.lock.acquire(timeout=db.timeout):
            _HELD.append(process.lock)


def _after_fork_in_parent() -> None:
    while _HELD:
        _HELD.pop().release()


def _after_fork_in_child() -> None:
    _HELD.clear()  # the child never uses the parent's locks (see SQLiteDatabase._process)


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def database_path(path: object, what: str, *, create_parent: bool = False) -> str:
    """``path`` as a database location: ``":memory:"``, or a file whose folder exists.

    ``~`` is expanded. A missing folder is an error (a typo in a folder name would
    otherwise scatter databases over the disk) unless ``create_parent`` (for
    llmrouter's own default locations).

    Raises:
        ConfigurationError: ``path`` is not a str or path, is empty, or names a
            folder that does not exist.
    """
    if not isinstance(path, str | os.PathLike):
        raise ConfigurationError(
            f"{what} must be a file path (str or pathlib.Path) or ':memory:', "
            f"got {type(path).__name__} {path!r}"
        )
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{what} is empty: give a file path or ':memory:'")
    if text == ":memory:":
        return text
    file = Path(text).expanduser()
    if create_parent:
        file.parent.mkdir(parents=True, exist_ok=True)
    elif not file.parent.is_dir():
        raise ConfigurationError(
            f"{what}={text!r}: the folder {str(file.parent)!r} does not exist; create it "
            "first (e.g. mkdir -p) or choose a path in an existing folder"
        )
    if file.is_dir():
        raise ConfigurationError(f"{what}={text!r} is a folder; give a file path inside it")
    return str(file)


class ForkedMemoryDatabaseError(sqlite3.ProgrammingError):
    """An in-memory database was used in a process forked from the one that opened it."""


@dataclass
class _Process:
    """What one process opened; a forked child starts a new one."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    """Serialises this process's transactions (and every use of an in-memory database)."""
    guard: threading.Lock = field(default_factory=threading.Lock)
    """Protects ``connections`` while a thread adds or prunes one."""
    connections: dict[threading.Thread | None, sqlite3.Connection] = field(default_factory=dict)
    """Each thread's connection (``None``: the one an in-memory database shares)."""


class SQLiteDatabase:
    """A SQLite file (or ``":memory:"``) with a connection per thread and per process.

    ``schema`` (SQL statements) runs once, when the database is opened here;
    ``timeout`` is how long a statement waits for another process's write lock.
    The parent folder must exist.

    Examples:
        >>> db = SQLiteDatabase(":memory:", "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
        >>> with db.transaction() as conn:
        ...     _ = conn.execute("INSERT INTO kv VALUES ('a', '1')")
        >>> db.fetch("SELECT k, v FROM kv")
        [('a', '1')]
        >>> db.close()
    """

    def __init__(self, path: str | Path, schema: str = "", *, timeout: float = 30.0) -> None:
        self.path = str(path)
        """The database file, or ``":memory:"``."""
        self.timeout = timeout
        """Seconds a statement waits for a lock held by another connection."""
        self._pid = os.getpid()
        self._processes: dict[int, _Process] = {self._pid: _Process()}
        self._closed = False
        _DATABASES.add(self)
        conn = self.connection()  # fail early: a bad path or a file that is no database
        if not self.memory:
            # Switching to WAL needs a moment of exclusive access: several processes
            # opening a new file at once may see "locked" even with a busy timeout.
            self._retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        if schema:
            self._retry_locked(lambda: conn.executescript(schema))

    def __repr__(self) -> str:
        return f"SQLiteDatabase({self.path!r})"

    @property
    def memory(self) -> bool:
        """True for an in-memory database (private to the process that opened it)."""
        return self.path == ":memory:"

    def connection(self) -> sqlite3.Connection:
        """This thread's connection in this process, opened on first use.

        An in-memory database has one connection for all threads: use it only
        through `transaction` and `fetch`, which hold the lock.
        """
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        process = self._process()
        key = None if self.memory else threading.current_thread()
        conn = process.connections.get(key)
        if conn is None:
            conn = self._open(process, key)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE``, then commit, or roll back on error."""
        with self._process().lock:
            conn = self.connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # an error may have rolled it back already
                    conn.execute("ROLLBACK")
                raise

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query, read outside any write transaction."""
        if self.memory:
            with self._process().lock:
                return self.connection().execute(sql, params).fetchall()
        return self.connection().execute(sql, params).fetchall()

    def close(self) -> None:
        """Close this process's connections (waiting for its open transactions)."""
        self._closed = True
        process = self._processes.get(os.getpid())
        if process is None:  # forked, and nothing opened here yet
            return
        with process.lock, process.guard:
            for conn in process.connections.values():
                conn.close()
            process.connections.clear()

    # ------------------------------------------------------------------ internals

    def _process(self) -> _Process:
        pid = os.getpid()
        process = self._processes.get(pid)
        if process is None:  # forked: the parent's connections (and locks) stay unused here
            if self.memory:
                raise ForkedMemoryDatabaseError(
                    f"the in-memory database {self!r} belongs to process {self._pid}; "
                    f"process {pid} was forked from it and cannot use it: use a database file"
                )
            for inherited in list(self._processes.values()):
                _FORKED_AWAY.extend(inherited.connections.values())
            # setdefault is atomic: threads racing here all get the same record
            process = self._processes.setdefault(pid, _Process())
        return process

    def _open(self, process: _Process, key: threading.Thread | None) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,  # so close() may close another thread's connection
        )
        try:
            if not self.memory:
                conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        with process.guard:
            existing = process.connections.get(key)
            if existing is not None or self._closed:  # lost a race with another thread
                conn.close()
                if existing is None:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                return existing
            # a thread that has ended no longer needs its connection
            for thread in [t for t in process.connections if t and not t.is_alive()]:
                process.connections.pop(thread).close()
            process.connections[key] = conn
        return conn

    def _retry_locked(self, action: Callable[[], object]) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                action()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
