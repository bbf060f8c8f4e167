"""Deadlines against real servers: stalled streams fall back, hung servers leave nothing behind.

Real parts: llm-katan echo servers pacing their streams (``--ttft-ms`` delays the
headers and again the first chunk; ``--itl-ms``/``--chunk-delay-ms`` wait before
every 4-character content chunk, after an immediate empty role chunk), and a plain
socket server that accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest
from _fixtures.fakes import joined
from _fixtures.katan import KatanFactory, KatanServer

from llmrouter import ModelRouter, ModelSpec, RouteRecord, models, route_of
from llmrouter.errors import AllModelsFailedError, StreamInterruptedError
from llmrouter.resilience import RetryPolicy

pytestmark = pytest.mark.timeout(120)

FLAGS = {
    # empty role chunk at once, then 2 s before each content chunk
    "itl": ["--itl-ms", "2000", "--max-concurrent", "16"],
    # no headers for 3 s, then 3 s more before the first chunk
    "ttft": ["--ttft-ms", "3000", "--max-concurrent", "16"],
    # a content chunk every 0.3 s: a ~40-chunk echo takes ~12 s
    "trickle": ["--chunk-delay-ms", "300", "--max-concurrent", "16"],
}


@pytest.fixture(scope="module")
def paced(katan_factory: KatanFactory) -> dict[str, KatanServer]:
    """One llm-katan per pacing, started together (each takes ~2 s to come up)."""
    with ThreadPoolExecutor(max_workers=len(FLAGS)) as pool:
        started = pool.map(
            lambda flags: katan_factory(flags, served_model_name="echo"), FLAGS.values()
        )
        return dict(zip(FLAGS, started, strict=True))


def remote(server: KatanServer, name: str, **kwargs: Any) -> ModelSpec:
    return models.openai_compatible(
        server.model, server.base_url, api_key=server.api_key, name=name, **kwargs
    )


def router(slow: KatanServer, healthy: KatanServer, **settings: Any) -> ModelRouter:
    return ModelRouter(
        models=[remote(slow, "slow"), remote(healthy, "healthy")],
        default="slow",
        retry=RetryPolicy.none(),
        circuit_breaker=None,
        **settings,
    )


def stream_sync(r: ModelRouter, text: str) -> Any:
    return joined(list(r.stream(text)))


def stream_async(r: ModelRouter, text: str) -> Any:
    async def collect() -> list[Any]:
        return [chunk async for chunk in r.astream(text)]

    return joined(asyncio.run(collect()))


def invoke_streaming(r: ModelRouter, text: str) -> Any:
    return r.model_copy(update={"streaming": True}).invoke(text)


MODES = {"stream": stream_sync, "astream": stream_async, "invoke-streaming": invoke_streaming}


def llmrouter_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("llmrouter-") and t.is_alive()]


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# ------------------------------------------------------------ first content chunk


@pytest.mark.parametrize("mode", sorted(MODES))
def test_an_empty_role_chunk_does_not_meet_the_first_token_deadline(
    mode: str, paced: dict[str, KatanServer], katan_server: KatanServer
) -> None:
    """The issue's stall: a role chunk at once, content only 2 s later (and 2 s apart)."""
    r = router(paced["itl"], katan_server, timeout=30, first_token_timeout=0.8)
    started = time.monotonic()
    answer = MODES[mode](r, f"stalled {mode}")
    elapsed = time.monotonic() - started
    record = route_of(answer)
    assert record.model == "healthy"
    assert answer.content.endswith(f"User: stalled {mode}")
    assert answer.content.startswith("[echo]")  # the slow model sent nothing that counts
    slow = record.attempts[0]
    assert (slow.model, slow.ok, slow.error_type, slow.partial) == (
        "slow",
        False,
        "AttemptTimeoutError",
        False,
    )
    assert "first chunk" in (slow.error or "")
    assert elapsed < 1.9, elapsed


def test_headers_that_never_come_meet_the_first_token_deadline(
    paced: dict[str, KatanServer], katan_server: KatanServer
) -> None:
    r = router(paced["ttft"], katan_server, first_token_timeout=0.8)
    started = time.monotonic()
    answer = stream_async(r, "late headers")
    assert route_of(answer).model == "healthy"
    assert route_of(answer).attempts[0].error_type == "AttemptTimeoutError"
    assert time.monotonic() - started < 2.5


# ------------------------------------------------------------ between chunks


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_stall_between_chunks_continues_on_the_next_model(
    mode: str, paced: dict[str, KatanServer], katan_server: KatanServer
) -> None:
    """First content after 2 s (within first_token_timeout=3), then a 2 s gap > idle 0.5 s."""
    r = router(paced["itl"], katan_server, first_token_timeout=3, idle_timeout=0.5)
    started = time.monotonic()
    answer = MODES[mode](r, f"idle {mode}")
    elapsed = time.monotonic() - started
    record = route_of(answer)
    assert record.model == "healthy"
    assert answer.content.startswith("[ech")  # the slow model's one chunk stays
    assert record.extra["continued"] == [{"from": "slow", "chars": 4}]
    slow = record.attempts[0]
    assert (slow.model, slow.partial, slow.error_type) == ("slow", True, "AttemptTimeoutError")
    assert "next chunk" in (slow.error or "")
    assert 2.0 < elapsed < 4.0, elapsed


async def test_a_stall_between_chunks_raises_when_recovery_is_raise(
    paced: dict[str, KatanServer], katan_server: KatanServer
) -> None:
    r = router(
        paced["itl"],
        katan_server,
        first_token_timeout=3,
        idle_timeout=0.5,
        stream_recovery="raise",
    )
    received: list[str] = []
    started = time.monotonic()
    with pytest.raises(StreamInterruptedError) as caught:
        async for chunk in r.astream("idle raise"):
            received.append(chunk.text)
    assert "".join(received) == "[ech"
    assert caught.value.record.attempts[-1].error_type == "AttemptTimeoutError"
    assert time.monotonic() - started < 4.0


# ------------------------------------------------------------ the whole stream


@pytest.mark.parametrize("setting", ["stream_timeout", "timeout"])
@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_a_trickling_stream_is_cut_at_the_stream_deadline(
    setting: str, mode: str, paced: dict[str, KatanServer], katan_server: KatanServer
) -> None:
    """Chunks every 0.3 s (never idle) for ~12 s: ``stream_timeout`` -- or, without it,
    the router's ``timeout`` -- ends the attempt and the next model completes it."""
    r = router(paced["trickle"], katan_server, **{setting: 1.5})
    started = time.monotonic()
    answer = MODES[mode](r, f"trickle {mode}")
    elapsed = time.monotonic() - started
    record = route_of(answer)
    assert record.model == "healthy"
    assert record.attempts[0].partial and record.attempts[0].error_type == "AttemptTimeoutError"
    assert "complete answer" in (record.attempts[0].error or "")
    assert 0 < record.extra["continued"][0]["chars"] < 40
    assert elapsed < 3.5, elapsed


def test_a_stream_within_every_deadline_is_untouched(
    paced: dict[str, KatanServer], katan_server: KatanServer
) -> None:
    """Deadlines that are not hit change nothing: one attempt, no continuation."""
    fast = ModelRouter(
        models=[remote(katan_server, "healthy")],
        first_token_timeout=5,
        idle_timeout=5,
        stream_timeout=20,
        timeout=20,
    )
    answer = stream_sync(fast, "quick")
    record = route_of(answer)
    assert [a.ok for a in record.attempts] == [True] and "continued" not in record.extra
    assert answer.content.endswith("User: quick")


# ------------------------------------------------------------ nothing left behind


def test_an_abandoned_sync_stream_worker_ends_soon_after_the_deadline(
    paced: dict[str, KatanServer],
) -> None:
    """The reader thread of a timed-out sync stream must not wait ~20 s for the stalled
    server: the client's read timeout follows the router's deadline."""
    r = ModelRouter(
        models=[remote(paced["itl"], "slow")],
        retry=RetryPolicy.none(),
        circuit_breaker=None,
        first_token_timeout=3,
        idle_timeout=0.5,
        stream_recovery="raise",
    )
    before = len(llmrouter_threads())
    with pytest.raises(StreamInterruptedError):
        list(r.stream("abandon me"))
    assert wait_until(lambda: len(llmrouter_threads()) <= before, 6), llmrouter_threads()


@pytest.fixture(scope="module")
def hung_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """Accepts every connection and never answers; keeps the accepted sockets open."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, name="hung-server", daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    listener.close()


def client_sockets(port: int) -> int:
    """This process's open TCP connections to ``port`` (the client side)."""
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def test_timed_out_sync_calls_leave_no_thread_or_socket_behind(
    hung_server: tuple[int, list[socket.socket]],
) -> None:
    port, _ = hung_server
    hung = models.openai_compatible(
        "hung", f"http://127.0.0.1:{port}/v1", api_key="sk-test", name="hung"
    )
    r = ModelRouter(models=[hung], timeout=0.2, retry=RetryPolicy.none(), circuit_breaker=None)
    before = len(llmrouter_threads())
    for i in range(20):
        with pytest.raises(AllModelsFailedError) as caught:
            r.invoke(f"call {i}")
        record: RouteRecord = caught.value.record
        assert record.attempts[0].error_type == "AttemptTimeoutError"
    threads_now, sockets_now = len(llmrouter_threads()) - before, client_sockets(port)
    waited = time.monotonic()
    settled = wait_until(
        lambda: len(llmrouter_threads()) <= before and client_sockets(port) == 0, 5
    )
    waited = time.monotonic() - waited
    threads_later, sockets_later = len(llmrouter_threads()) - before, client_sockets(port)
    print(
        f"\nafter 20 timed-out calls: {threads_now} worker threads, {sockets_now} sockets; "
        f"{waited:.1f} s later: {threads_later} threads, {sockets_later} sockets"
    )
    assert settled, (threads_later, sockets_later)
