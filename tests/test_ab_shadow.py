"""Shadow runs of routers dropped without close() (issue 9, item 14): no threads or
file descriptors left behind, and no shadow record lost."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from _fixtures.fakes import spec

from llmrouter import ABRouter
from llmrouter.ab._store import SQLiteStore


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _shadow_threads() -> int:
    return sum(t.name.startswith("llmrouter-shadow") for t in threading.enumerate())


def _settle(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():  # type: ignore[operator]
        time.sleep(0.05)


def _shadow_router(path: Path, **candidate: object) -> ABRouter:
    return ABRouter(
        variants={"control": spec("control"), "candidate": spec("candidate", **candidate)},
        experiment="leak",
        mode="shadow",
        store=f"sqlite:///{path}",
    )


def test_dropped_shadow_routers_release_threads_and_files(tmp_path: Path) -> None:
    fds, threads = _open_fds(), _shadow_threads()
    for i in range(60):
        router = _shadow_router(tmp_path / f"e{i}.db")
        router.invoke("hi", thread_id="u")
        router.wait_shadows(5)
        del router  # no close(), no gc.collect(): reference counting alone must do
    _settle(lambda: _shadow_threads() <= threads)
    assert _shadow_threads() <= threads
    assert _open_fds() - fds <= 2  # was +50 and 10 threads for 60 routers


def test_dropped_async_shadow_routers_release_files(tmp_path: Path) -> None:
    fds = _open_fds()

    async def main() -> None:
        for i in range(60):
            router = _shadow_router(tmp_path / f"a{i}.db")
            await router.ainvoke("hi", thread_id="u")
            await router.await_shadows(5)
            del router

    asyncio.run(main())
    assert _open_fds() - fds <= 2


def test_a_shadow_in_flight_is_still_booked_after_its_router_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "inflight.db"
    router = _shadow_router(path, sleep=0.3)
    router.invoke("hi", thread_id="u")
    del router  # the shadow run is still sleeping in its thread
    store = SQLiteStore(path)
    _settle(lambda: any(r.shadow for r in store.records("leak")))
    shadows = [r for r in store.records("leak") if r.shadow]
    assert [r.variant for r in shadows] == ["candidate"]
    store.close()
