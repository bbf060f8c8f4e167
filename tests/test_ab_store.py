"""SQLiteStore: URLs, round trips, typed errors, and no record lost under concurrency."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from llmrouter import ConfigurationError
from llmrouter.ab._store import (
    ExperimentEvent,
    ExperimentRecord,
    ExperimentStore,
    Feedback,
    SQLiteStore,
    open_store,
)
from llmrouter.errors import ExperimentError, StoreClosedError, UnknownRequestError


def record(request_id: str, experiment: str = "exp", **fields: object) -> ExperimentRecord:
    return ExperimentRecord(request_id=request_id, experiment=experiment, variant="a", **fields)  # type: ignore[arg-type]


def test_open_store_accepts_urls_paths_and_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for spec in (None, ":memory:", "sqlite://", "sqlite:///:memory:"):
        store = open_store(spec)
        assert isinstance(store, SQLiteStore) and store.path == ":memory:"
    (tmp_path / "data").mkdir()
    relative = open_store("sqlite:///data/exp.db")
    assert isinstance(relative, SQLiteStore) and relative.path == "data/exp.db"
    assert (tmp_path / "data" / "exp.db").is_file()
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(absolute, SQLiteStore) and absolute.path == f"{tmp_path}/abs.db"
    assert isinstance(open_store(tmp_path / "p.db"), SQLiteStore)
    assert isinstance(open_store(str(tmp_path / "s.db")), SQLiteStore)
    assert open_store(relative) is relative


def test_open_store_refuses_missing_folders_and_non_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"folder '.*nope' does not exist.*mkdir"):
        open_store(f"sqlite:///{tmp_path}/nope/exp.db")
    assert not (tmp_path / "nope").exists()  # nothing created behind the user's back
    with pytest.raises(ConfigurationError, match=r"store must be an ExperimentStore.*got int 123"):
        open_store(123)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []  # no file called "123"


def test_a_store_path_with_a_tilde_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = SQLiteStore("~/exp.db")
    assert store.path == str(tmp_path / "exp.db")
    assert (tmp_path / "exp.db").is_file()
    assert not Path("~").exists()
    store.close()


def test_open_store_rejects_unknown_schemes_with_the_way_out() -> None:
    with pytest.raises(ConfigurationError, match=r"no built-in store for 'redis'.*ExperimentStore"):
        open_store("redis://localhost:6379/0")
    with pytest.raises(ConfigurationError, match="store is empty"):
        open_store("  ")


def test_records_feedback_and_events_round_trip(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "exp.db")
    full = record(
        "r1",
        model="m",
        key="user-1",
        latency_s=0.25,
        input_tokens=3,
        output_tokens=4,
        total_tokens=7,
        cost_usd=1e-6,
        error_type="TimeoutError",
        error="slow",
    )
    store.add_record(full)
    store.add_record(record("r2", shadow=True, parent_id="r1", output="o", reference_output="c"))
    store.add_record(record("other", experiment="exp2"))
    store.add_feedback(Feedback("r1", "exp", 1.0))
    store.add_feedback(Feedback("r1", "exp", 0.5))
    store.add_event(ExperimentEvent("exp", "rollback", "a", {"reason": "errors", "rate": 0.5}))

    again = SQLiteStore(tmp_path / "exp.db")  # a second connection sees everything
    assert again.records("exp")[0] == full and not full.ok
    shadow = again.records("exp")[1]
    assert shadow.shadow is True and shadow.parent_id == "r1" and shadow.reference_output == "c"
    assert [f.score for f in again.feedback("exp")] == [1.0, 0.5]
    (event,) = again.events("exp")
    assert (event.kind, event.variant, event.detail) == (
        "rollback",
        "a",
        {"reason": "errors", "rate": 0.5},
    )
    assert [r.request_id for r in again.records("exp2")] == ["other"]
    assert again.records("nothing") == [] and again.events("exp2") == []


def test_file_store_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "exp.db", busy_timeout_s=7)
    conn = store._db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 7000


def test_feedback_for_unknown_requests_is_a_typed_error() -> None:
    store = SQLiteStore()
    store.add_record(record("r1", experiment="other"))
    with pytest.raises(UnknownRequestError, match=r"no request 'nope'.*pass the message") as info:
        store.add_feedback(Feedback("nope", "exp", 1.0))
    assert isinstance(info.value, LookupError) and info.value.request_id == "nope"
    with pytest.raises(UnknownRequestError, match="belongs to experiment 'other'"):
        store.add_feedback(Feedback("r1", "exp", 1.0))
    assert store.feedback("exp") == []


def test_request_ids_are_unique() -> None:
    store = SQLiteStore()
    store.add_record(record("r1"))
    with pytest.raises(sqlite3.IntegrityError):
        store.add_record(record("r1"))
    assert len(store.records("exp")) == 1  # the failed transaction was rolled back


def test_a_closed_store_says_so() -> None:
    store = SQLiteStore()
    store.close()
    with pytest.raises(StoreClosedError, match="is closed"):
        store.add_record(record("r1"))


def test_a_file_that_is_not_a_database_fails_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        SQLiteStore(path)


def test_async_writes_run_off_the_event_loop() -> None:
    store = SQLiteStore()

    async def main() -> None:
        await asyncio.gather(*(store.aadd_record(record(f"r{i}")) for i in range(64)))
        await store.aadd_event(ExperimentEvent("exp", "ramp"))

    asyncio.run(main())
    assert len(store.records("exp")) == 64 and len(store.events("exp")) == 1


def _write_many(path: str, prefix: str, threads: int, per_thread: int) -> int:
    """Write ``threads * per_thread`` records from as many threads (one store instance)."""
    store = SQLiteStore(path)
    barrier = threading.Barrier(threads)

    def writer(t: int) -> None:
        barrier.wait()  # start together: real contention
        for i in range(per_thread):
            store.add_record(record(f"{prefix}-{t}-{i}", key=prefix))

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.close()
    return threads * per_thread


def test_64_threads_lose_no_record(tmp_path: Path) -> None:
    path = str(tmp_path / "threads.db")
    # 32 writer threads on one shared store, plus 32 on a second connection to the file
    shared = threading.Thread(target=_write_many, args=(path, "shared", 32, 25))
    shared.start()
    _write_many(path, "second", 32, 25)
    shared.join()
    records = SQLiteStore(path).records("exp")
    assert len(records) == 64 * 25 == len({r.request_id for r in records})


def test_4_processes_of_16_threads_lose_no_record(tmp_path: Path) -> None:
    path = str(tmp_path / "processes.db")
    # forkserver: fresh processes (no inherited connection or lock), forked from a server
    # that imported llmrouter once, so four of them start in well under a second
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["llmrouter.ab._store"])
    with ProcessPoolExecutor(4, mp_context=context) as pool:
        written = list(
            pool.map(_write_many, [path] * 4, [f"p{i}" for i in range(4)], [16] * 4, [25] * 4)
        )
    records = SQLiteStore(path).records("exp")
    assert sum(written) == 4 * 16 * 25 == len(records) == len({r.request_id for r in records})
    assert {r.key for r in records} == {"p0", "p1", "p2", "p3"}


def test_a_forked_process_writes_to_a_file_store_but_not_an_in_memory_one(
    tmp_path: Path,
) -> None:
    stores = {"file": SQLiteStore(tmp_path / "exp.db"), "memory": SQLiteStore()}
    for store in stores.values():
        store.add_record(record("parent"))

    def child() -> None:
        stores["file"].add_record(record("child"))
        with pytest.raises(ExperimentError, match=r"in-memory store cannot be shared.*sqlite:///"):
            stores["memory"].add_record(record("child"))
        for store in stores.values():
            store.close()

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert [r.request_id for r in stores["file"].records("exp")] == ["parent", "child"]
    assert [r.request_id for r in stores["memory"].records("exp")] == ["parent"]


def test_store_interface_is_abstract_with_async_defaults() -> None:
    class Memory(ExperimentStore):
        def __init__(self) -> None:
            self.items: list[ExperimentRecord] = []

        def add_record(self, record: ExperimentRecord) -> None:
            self.items.append(record)

        def add_feedback(self, feedback: Feedback) -> None:
            raise UnknownRequestError(feedback.request_id)

        def add_event(self, event: ExperimentEvent) -> None:
            pass

        def records(self, experiment: str) -> list[ExperimentRecord]:
            return self.items

        def feedback(self, experiment: str) -> list[Feedback]:
            return []

        def events(self, experiment: str) -> list[ExperimentEvent]:
            return []

    with pytest.raises(TypeError):
        ExperimentStore()  # type: ignore[abstract]
    store = Memory()
    asyncio.run(store.aadd_record(record("r1")))
    assert store.records("exp")[0].request_id == "r1"
    store.close()  # the default close does nothing
