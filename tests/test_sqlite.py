"""SQLiteDatabase: a connection per thread and per process, transactions, close."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from llmrouter._sqlite import ForkedMemoryDatabaseError, SQLiteDatabase, database_path
from llmrouter.errors import ConfigurationError

SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)"


def in_thread(action: Callable[[], object]) -> object:
    """``action()`` run in a new thread; its result (or exception) comes back."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(action())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def in_fork(child: Callable[[], None], timeout: float = 60.0) -> int:
    """Run ``child()`` in a forked process; its exit code (1 if it raised or hung)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            child()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return 1


def test_a_file_database_uses_wal_a_busy_timeout_and_runs_the_schema(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "x.db", SCHEMA, timeout=7)
    conn = db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 7000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.fetch("SELECT name FROM sqlite_master WHERE type = 'table'") == [("kv",)]
    assert repr(db) == f"SQLiteDatabase('{tmp_path / 'x.db'}')"


def test_missing_folders_are_not_created(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        SQLiteDatabase(tmp_path / "no" / "such" / "x.db")


def test_each_thread_gets_its_own_connection(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "x.db", SCHEMA)
    here = db.connection()
    assert db.connection() is here  # reused within a thread
    there = in_thread(db.connection)
    assert isinstance(there, sqlite3.Connection) and there is not here
    with db.transaction() as conn:
        conn.execute("INSERT INTO kv VALUES ('a', '1')")
    assert in_thread(lambda: db.fetch("SELECT v FROM kv")) == [("1",)]


def test_a_finished_threads_connection_is_closed_when_another_thread_opens(
    tmp_path: Path,
) -> None:
    db = SQLiteDatabase(tmp_path / "x.db", SCHEMA)
    old = in_thread(db.connection)
    assert isinstance(old, sqlite3.Connection)
    in_thread(db.connection)
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        old.execute("SELECT 1")
    db.connection().execute("SELECT 1")  # the main thread's is kept


def test_an_in_memory_database_is_one_database_for_every_thread() -> None:
    db = SQLiteDatabase(":memory:", SCHEMA)

    def write(i: int) -> None:
        with db.transaction() as conn:
            conn.execute("INSERT INTO kv VALUES (?, ?)", (str(i), "x"))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.fetch("SELECT COUNT(*) FROM kv") == [(16,)]
    assert in_thread(db.connection) is db.connection()


def test_a_failed_transaction_is_rolled_back(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "x.db", SCHEMA)
    with pytest.raises(RuntimeError, match="boom"), db.transaction() as conn:
        conn.execute("INSERT INTO kv VALUES ('a', '1')")
        raise RuntimeError("boom")
    assert not db.connection().in_transaction
    assert db.fetch("SELECT * FROM kv") == []
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as conn:
        conn.execute("INSERT INTO kv VALUES ('b', '1')")
        conn.execute("INSERT INTO kv VALUES ('b', '2')")  # the first insert goes too
    assert db.fetch("SELECT * FROM kv") == []
    with db.transaction() as conn:  # usable again
        conn.execute("INSERT INTO kv VALUES ('c', '1')")
    assert SQLiteDatabase(tmp_path / "x.db").fetch("SELECT k FROM kv") == [("c",)]


def test_a_transaction_holds_the_write_lock_against_other_connections(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "x.db", SCHEMA, timeout=0.05)
    other = SQLiteDatabase(tmp_path / "x.db", timeout=0.05)
    with db.transaction():
        with pytest.raises(sqlite3.OperationalError, match="locked"), other.transaction():
            pass
        assert other.fetch("SELECT COUNT(*) FROM kv") == [(0,)]  # readers are not blocked


def test_close_closes_every_threads_connection(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "x.db", SCHEMA)
    here = db.connection()
    ready, finish = threading.Event(), threading.Event()
    opened: list[sqlite3.Connection] = []

    def hold() -> None:  # a live thread with its own connection
        opened.append(db.connection())
        ready.set()
        finish.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait(10)
    db.close()
    finish.set()
    thread.join()
    for conn in (here, opened[0]):
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        db.fetch("SELECT 1")
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"), db.transaction():
        pass


def test_a_forked_child_opens_its_own_connection_and_the_parent_sees_its_writes(
    tmp_path: Path,
) -> None:
    db = SQLiteDatabase(tmp_path / "x.db", SCHEMA)
    inherited = db.connection()
    with db.transaction() as conn:
        conn.execute("INSERT INTO kv VALUES ('parent', '1')")

    def child() -> None:
        assert db.connection() is not inherited
        assert db.fetch("SELECT k FROM kv") == [("parent",)]
        with db.transaction() as conn:
            conn.execute("INSERT INTO kv VALUES ('child', ?)", (str(os.getpid()),))
        db.close()  # closes the child's own connection only

    assert in_fork(child) == 0
    assert db.connection() is inherited  # the parent's connection is still open and used
    assert db.fetch("SELECT k FROM kv ORDER BY k") == [("child",), ("parent",)]


def test_a_fork_while_another_thread_is_in_a_transaction_does_not_deadlock_the_child(
    tmp_path: Path,
) -> None:
    db = SQLiteDatabase(tmp_path / "x.db", SCHEMA)
    inside, leave = threading.Event(), threading.Event()

    def writer() -> None:
        with db.transaction() as conn:
            conn.execute("INSERT INTO kv VALUES ('thread', '1')")
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    inside.wait(10)

    def child() -> None:  # the parent's lock was held at the fork: the child has its own
        with db.transaction() as conn:  # waits for the parent's commit, then writes
            conn.execute("INSERT INTO kv VALUES ('child', '1')")

    pid_code: list[int] = []
    forker = threading.Thread(target=lambda: pid_code.append(in_fork(child)))
    forker.start()
    time.sleep(0.2)
    leave.set()
    thread.join()
    forker.join()
    assert pid_code == [0]
    assert db.fetch("SELECT k FROM kv ORDER BY k") == [("child",), ("thread",)]


def test_a_forked_child_cannot_use_an_in_memory_database() -> None:
    db = SQLiteDatabase(":memory:", SCHEMA)

    def child() -> None:
        with pytest.raises(ForkedMemoryDatabaseError, match="use a database file"):
            db.fetch("SELECT 1")
        db.close()  # closing is fine, and the parent's copy is left alone

    assert in_fork(child) == 0
    assert db.fetch("SELECT COUNT(*) FROM kv") == [(0,)]  # still fine in its own process


def test_opening_retries_while_the_file_is_locked(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "x.db", timeout=5)
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")

    db._retry_locked(flaky)
    assert len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        db._retry_locked(lambda: db.connection().execute("SELECT * FROM missing_table"))


def test_database_path_checks_type_folder_and_expands_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert database_path("~/a.db", "db") == str(tmp_path / "a.db")
    assert database_path(":memory:", "db") == ":memory:"
    with pytest.raises(ConfigurationError, match=r"db='.*missing/a.db': the folder .* does not"):
        database_path(tmp_path / "missing" / "a.db", "db")
    with pytest.raises(ConfigurationError, match=r"must be a file path.*got int"):
        database_path(123, "db")
    with pytest.raises(ConfigurationError, match="db is empty"):
        database_path(" ", "db")
    with pytest.raises(ConfigurationError, match="is a folder"):
        database_path(tmp_path, "db")
    made = database_path(tmp_path / "new" / "deeper" / "a.db", "db", create_parent=True)
    assert Path(made).parent.is_dir()
