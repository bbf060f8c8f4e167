"""Fault injection against real servers: the router keeps answering while backends fail.

Real parts: llm-katan processes (echo backend) with their fault flags, and tiny
stdlib HTTP servers on 127.0.0.1 for what llm-katan cannot do (a 400, a 429 with
``Retry-After``, a backend that "recovers") -- a `Stub` answers with a scripted
reply, or forwards to a llm-katan server and counts every hit.

llm-katan facts these tests rely on (0.22, echo backend): ``--error-rate`` -> 500,
``--rate-limit-after N`` / ``--timeout-after N`` -> 429 / 504 from request N+1 on
(``0`` disables them; no ``Retry-After`` header), ``--latency-ms`` sleeps before
answering, ``--itl-ms`` between stream chunks of 4 characters. Requests are
served one at a time unless ``--max-concurrent`` says otherwise, and a request
the client gave up on keeps its slot until its sleep ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from _fixtures.fakes import InOrder, joined
from _fixtures.katan import KatanFactory, KatanServer
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from tenacity import wait_fixed

from llmrouter import (
    AllModelsFailedError,
    LLMRouterError,
    ModelRouter,
    ModelSpec,
    RouteRecord,
    models,
    route_of,
)
from llmrouter.core._execution import CONTINUE_PROMPT
from llmrouter.errors import InvalidRequestError, StreamInterruptedError
from llmrouter.resilience import CircuitBreaker, RetryPolicy, _breaker

CHAT_PATH = "/v1/chat/completions"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# ---------------------------------------------------------------- helpers


def remote(server: KatanServer | Stub, name: str, **kwargs: Any) -> ModelSpec:
    """An `openai_compatible` spec for a llm-katan server or a stub."""
    return models.openai_compatible(
        getattr(server, "model", "stub"),
        base_url=server.base_url,
        api_key=getattr(server, "api_key", "sk-stub"),
        name=name,
        **kwargs,
    )


def start_all(
    katan_factory: KatanFactory, *args: Sequence[str], **kwargs: Any
) -> list[KatanServer]:
    """Start several llm-katan servers at once (each takes ~2 s to come up)."""
    with ThreadPoolExecutor(max_workers=len(args)) as pool:
        return list(pool.map(lambda a: katan_factory(a, **kwargs), args))


def kill(server: KatanServer) -> None:
    """SIGKILL the server's process group: no graceful shutdown, streams cut dead."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def completion(text: str, model: str = "stub") -> bytes:
    """A minimal OpenAI chat completion body."""
    return json.dumps(
        {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


def error(status: int, message: str, **headers: str) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return status, headers, json.dumps(body).encode()


Reply = tuple[int, dict[str, str], bytes]
"""Status, extra headers, body."""
Responder = Callable[[bytes, Message], Reply]


class Stub:
    """A stdlib HTTP server on 127.0.0.1 whose ``respond`` answers each chat completion.

    Every ``POST /v1/chat/completions`` is counted in ``hits`` (monotonic times);
    replace ``respond`` at any time to change what the "backend" does.
    """

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.hits: list[float] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != CHAT_PATH:
                    status, headers, payload = error(404, f"no route {self.path}")
                else:
                    stub.hits.append(time.monotonic())
                    status, headers, payload = stub.respond(body, self.headers)
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def forward_to(server: KatanServer) -> Responder:
    """Relay requests to a llm-katan server (status and body as it answered)."""

    def respond(body: bytes, headers: Message) -> Reply:
        request = urllib.request.Request(
            server.url + CHAT_PATH,
            data=body,
            method="POST",
            headers={
                "Authorization": headers.get("Authorization", ""),
                "Content-Type": "application/json",
            },
        )
        try:
            with _NO_PROXY.open(request, timeout=30) as response:
                return response.status, {}, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, {}, exc.read()

    return respond


@pytest.fixture
def stub() -> Iterator[Callable[[Responder], Stub]]:
    """Start `Stub` servers; all are stopped at teardown."""
    started: list[Stub] = []

    def start(respond: Responder) -> Stub:
        server = Stub(respond)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def kinds(record: RouteRecord) -> list[tuple[str, str | None]]:
    return [(a.model, a.kind) for a in record.attempts]


# ------------------------------------------- 2,000 requests, one healthy backend


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_2000_requests_at_concurrency_32_all_succeed_with_one_healthy_backend(
    katan_factory: KatanFactory,
) -> None:
    """Four broken backends ranked before one healthy one; every request must succeed.

    Tuning, and why: ``max_retries=0`` -- retrying a backend that is down only
    delays the fallback (the retry path itself is covered below and in the unit
    tests); a breaker that opens after 3 failures and cools down for 1 s, so during
    the run it opens, lets a trial through, and opens again many times. On 2 cores
    the 2,000 requests take 10-16 s, plus ~8 s to start the five servers in parallel.
    The time bound is 45 s, or more on a machine that serves the same load from the
    healthy backend alone so slowly that 45 s would only measure the machine.
    """
    rate_after = gateway_after = 3
    errors, rate_limited, gateway, slow, healthy = start_all(
        katan_factory,
        ["--error-rate", "1.0"],  # every request: 500
        ["--rate-limit-after", str(rate_after)],  # then 429 (no Retry-After)
        ["--timeout-after", str(gateway_after)],  # then 504, at once
        # 2 s per answer, far beyond the 0.25 s attempt timeout; enough server slots
        # that abandoned requests do not queue up for the final shutdown
        ["--latency-ms", "2000", "--max-concurrent", "64"],
        [],
    )
    specs = [
        remote(errors, "errors", tasks={"chat"}),
        remote(rate_limited, "rate-limited", tasks={"chat"}),
        remote(gateway, "gateway", tasks={"chat"}),
        remote(slow, "slow", tasks={"chat"}, attempt_timeout=0.25),
        remote(healthy, "healthy", tasks={"chat"}),
    ]
    router = ModelRouter(
        models=specs,
        max_retries=0,
        circuit_breaker=CircuitBreaker(failure_threshold=3, window=30.0, cooldown=1.0),
    )
    n, concurrency = 2000, 32
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, through: ModelRouter = router) -> AIMessage:
        async with gate:
            return await through.ainvoke(f"request {i}", task="chat")

    # the yardstick: this machine, now, serving a tenth of the load from healthy alone
    alone = ModelRouter(models=[remote(healthy, "alone", tasks={"chat"})], circuit_breaker=None)
    began = time.perf_counter()
    await asyncio.gather(*(one(i, alone) for i in range(n // 10)))
    yardstick = (time.perf_counter() - began) * 10

    began = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    elapsed = time.perf_counter() - began

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} requests failed, first: {failures[0]!r}"
    answers = [r for r in results if isinstance(r, AIMessage)]
    assert len(answers) == n
    for i, answer in enumerate(answers):  # each caller got the answer to its own request
        assert answer.text.endswith(f"User: request {i}"), answer.text
    records = [route_of(a) for a in answers]
    answered = collections.Counter(r.model for r in records)
    assert set(answered) <= {"healthy", "rate-limited", "gateway"}
    assert answered["rate-limited"] <= rate_after and answered["gateway"] <= gateway_after
    assert answered["healthy"] >= n - rate_after - gateway_after

    tried = collections.Counter(
        a.model for r in records for a in r.attempts if a.kind != "circuit_open"
    )
    skipped = collections.Counter(
        a.model for r in records for a in r.attempts if a.kind == "circuit_open"
    )
    for name in ("errors", "rate-limited", "gateway", "slow"):
        # the breaker kept the broken backends out of most requests
        assert skipped[name] > n // 2, (name, skipped[name], tried[name])
        assert tried[name] < n // 5, (name, tried[name])
        assert router.health()[name]["opens"] >= 1
    # breakers open only after failures: the first request really tried the broken ones
    assert kinds(records[0])[0] == ("errors", "retryable")
    assert router.health()["healthy"]["state"] == "closed"
    timeouts = [
        a for r in records for a in r.attempts if a.model == "slow" and a.kind == "retryable"
    ]
    assert timeouts and {a.error_type for a in timeouts} == {"AttemptTimeoutError"}
    assert all(a.latency_s < 1.5 for a in timeouts)  # cut at 0.25 s, not the server's 2 s
    assert elapsed < max(45, 4 * yardstick), f"2,000 requests took {elapsed:.1f} s"
    print(
        f"\n2000 requests at concurrency 32: {elapsed:.1f} s "
        f"(healthy alone: {yardstick:.1f} s); answered {dict(answered)}"
    )


# ------------------------------------------------------- status codes and Retry-After


async def test_a_400_is_never_retried_and_falls_back_to_the_next_model(
    stub: Callable[[Responder], Stub], katan_server: KatanServer
) -> None:
    bad = stub(lambda body, headers: error(400, "unsupported parameter: temperature"))
    router = InOrder(
        models=[remote(bad, "rejects"), remote(katan_server, "healthy")],
        max_retries=5,
        circuit_breaker=CircuitBreaker(failure_threshold=2, cooldown=60.0),
    )
    sync_answer = router.invoke("hello")
    assert len(bad.hits) == 1
    async_answer = await router.ainvoke("hello")
    assert len(bad.hits) == 2
    streamed = joined([c async for c in router.astream("hello")])
    assert len(bad.hits) == 3  # one hit per request: a 400 is the request's fault
    for answer in (sync_answer, async_answer, streamed):
        record = route_of(answer)
        assert kinds(record) == [("rejects", "fatal"), ("healthy", None)]
        assert "unsupported parameter" in (record.attempts[0].error or "")
        assert answer.text.endswith("User: hello")
    # the model answered (it refused the request): three 400s do not open its breaker
    assert router.health()["rejects"]["state"] == "closed"


def test_a_429_with_retry_after_1_is_waited_for(
    stub: Callable[[Responder], Stub], katan_server: KatanServer
) -> None:
    replies = [error(429, "slow down", **{"Retry-After": "1"})]

    def respond(body: bytes, headers: Message) -> Reply:
        return replies.pop(0) if replies else (200, {}, completion("second time lucky"))

    limited = stub(respond)
    router = InOrder(
        models=[remote(limited, "limited"), remote(katan_server, "healthy")], max_retries=2
    )
    began = time.monotonic()
    answer = router.invoke("hello")
    elapsed = time.monotonic() - began
    assert answer.text == "second time lucky"
    assert kinds(route_of(answer)) == [("limited", "retryable"), ("limited", None)]
    assert "slow down" in (route_of(answer).attempts[0].error or "")
    assert len(limited.hits) == 2
    waited = limited.hits[1] - limited.hits[0]
    assert 0.95 <= waited < 2.0, f"waited {waited:.3f} s for Retry-After: 1"
    assert elapsed < 3.0


async def test_a_429_asking_for_120_s_falls_back_at_once(
    stub: Callable[[Responder], Stub], katan_server: KatanServer
) -> None:
    limited = stub(lambda body, headers: error(429, "quota", **{"Retry-After": "120"}))
    router = InOrder(
        models=[remote(limited, "limited"), remote(katan_server, "healthy")], max_retries=5
    )
    for call in (router.ainvoke, router.invoke):
        began = time.monotonic()
        result = call("hello")
        answer = await result if asyncio.iscoroutine(result) else result
        elapsed = time.monotonic() - began
        assert kinds(route_of(answer)) == [("limited", "retryable"), ("healthy", None)]
        assert elapsed < 1.5, f"fell back after {elapsed:.2f} s"
    assert len(limited.hits) == 2  # one per request: no retry into a 120 s wait


# ------------------------------------------------------------------ circuit breaker


def test_breaker_opens_skips_and_closes_against_a_real_server(
    stub: Callable[[Responder], Stub],
    katan_factory: KatanFactory,
    katan_server: KatanServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A counting proxy plays the backend: first relaying to a llm-katan that fails
    every request (``--error-rate 1.0``), later -- "recovered" -- to a healthy one
    (llm-katan cannot change its error rate at run time).

    The breakers' clock is the test's: the real calls take what they take (much more
    on a loaded machine), and only ``wait_for_cooldown`` ends a cool-down."""
    now = [time.time()]
    monkeypatch.setattr(_breaker, "time", SimpleNamespace(time=lambda: now[0]))
    (broken,) = start_all(katan_factory, ["--error-rate", "1.0"])
    proxy = stub(forward_to(broken))
    threshold, cooldown = 3, 1.0
    router = InOrder(
        models=[remote(proxy, "flaky"), remote(katan_server, "healthy")],
        max_retries=0,
        circuit_breaker=CircuitBreaker(failure_threshold=threshold, cooldown=cooldown),
    )

    def state() -> str:
        return str(router.health()["flaky"]["state"])

    def wait_for_cooldown() -> None:
        assert router.health()["flaky"]["open_for_s"] > 0
        now[0] += cooldown
        assert router.health()["flaky"]["open_for_s"] == 0

    for i in range(threshold):  # closed: every request reaches the server, and fails
        assert state() == "closed"
        answer = router.invoke("hello")
        assert kinds(route_of(answer)) == [("flaky", "retryable"), ("healthy", None)]
        assert len(proxy.hits) == i + 1
        assert "internal server error" in (route_of(answer).attempts[0].error or "").lower()
    assert state() == "open" and router.health()["flaky"]["opens"] == 1
    assert 0 < router.health()["flaky"]["open_for_s"] <= cooldown

    for _ in range(5):  # open: skipped without a request
        answer = router.invoke("hello")
        assert kinds(route_of(answer)) == [("flaky", "circuit_open"), ("healthy", None)]
    assert len(proxy.hits) == threshold

    wait_for_cooldown()  # half-open: one trial; it fails, so the breaker opens again
    answer = router.invoke("hello")
    assert kinds(route_of(answer)) == [("flaky", "retryable"), ("healthy", None)]
    assert len(proxy.hits) == threshold + 1
    assert state() == "open" and router.health()["flaky"]["opens"] == 2
    router.invoke("hello")
    assert len(proxy.hits) == threshold + 1

    proxy.respond = forward_to(katan_server)  # the backend recovers
    router.invoke("hello")
    assert len(proxy.hits) == threshold + 1  # still open: nobody knows yet
    wait_for_cooldown()
    answer = router.invoke("hello")  # the trial succeeds and closes the breaker
    assert kinds(route_of(answer)) == [("flaky", None)]
    assert len(proxy.hits) == threshold + 2
    assert state() == "closed"
    for _ in range(3):
        assert route_of(router.invoke("hello")).model == "flaky"
    assert len(proxy.hits) == threshold + 5


def test_a_late_success_does_not_close_an_open_breaker(
    stub: Callable[[Responder], Stub], katan_server: KatanServer
) -> None:
    release = threading.Event()

    def respond(body: bytes, headers: Message) -> Reply:
        if b"slow" in body:  # admitted while the breaker was closed; answers later
            release.wait(10)
            return 200, {}, completion("late but fine")
        return error(500, "internal server error")

    flaky = stub(respond)
    router = InOrder(
        models=[remote(flaky, "flaky"), remote(katan_server, "healthy")],
        max_retries=0,
        circuit_breaker=CircuitBreaker(failure_threshold=1, cooldown=60.0),
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(router.invoke, "slow")
        try:
            deadline = time.monotonic() + 5
            while not flaky.hits and time.monotonic() < deadline:
                time.sleep(0.01)
            assert route_of(router.invoke("fail")).model == "healthy"
            assert router.health()["flaky"]["state"] == "open"
        finally:
            release.set()
        assert route_of(slow.result(timeout=10)).model == "flaky"
    # the breaker opened 1 s ago with a 60 s cool-down: it must still be open
    assert router.health()["flaky"]["state"] == "open"


# ------------------------------------------------------------ killed mid-stream


def test_a_server_killed_mid_stream_is_continued_by_the_next_one(
    katan_factory: KatanFactory,
) -> None:
    first, second = start_all(katan_factory, ["--itl-ms", "100"], [], served_model_name="echo")
    router = InOrder(
        models=[remote(first, "first"), remote(second, "second")],
        stream_recovery="continue",
        max_retries=0,
    )
    chunks: list[AIMessageChunk] = []
    before_kill = ""
    began = time.monotonic()
    for chunk in router.stream("tell me a story"):
        chunks.append(chunk)
        if not before_kill and sum(1 for c in chunks if c.text) == 3:
            before_kill = "".join(c.text for c in chunks)
            kill(first)  # ~3 s of answer still to come
    assert time.monotonic() - began < 10
    full = joined(chunks)
    record = route_of(full)
    assert record.model == "second" and record.streamed
    assert [(a.model, a.ok, a.partial) for a in record.attempts] == [
        ("first", False, True),
        ("second", True, False),
    ]
    assert record.attempts[0].kind == "retryable"  # a dropped connection
    (continued,) = record.extra["continued"]
    assert continued["from"] == "first"
    head, tail = full.text[: continued["chars"]], full.text[continued["chars"] :]
    # one coherent answer: what the first server sent before it died, then the rest
    assert before_kill == "[echo] model"  # three 4-character chunks
    # (chunks already in flight when the server died may follow; the answer was cut short)
    assert head.startswith(before_kill) and len(head) < 40
    assert tail.startswith("[echo] model=echo")
    assert f":{second.url.rsplit(':', 1)[1]} " in tail  # (the echo names its own port)
    # the second server got the partial answer and was asked to continue it
    assert "messages=3" in tail and tail.endswith(f"User: {CONTINUE_PROMPT}")


async def test_a_server_killed_mid_stream_raises_when_recovery_is_raise(
    katan_factory: KatanFactory,
) -> None:
    first, second = start_all(katan_factory, ["--itl-ms", "100"], [])
    router = InOrder(
        models=[remote(first, "first"), remote(second, "second")],
        stream_recovery="raise",
        max_retries=0,
    )
    received = ""
    with pytest.raises(StreamInterruptedError) as caught:
        async for chunk in router.astream("tell me a story"):
            received += chunk.text
            if len(received) >= 8 and first.process.poll() is None:
                kill(first)
    record = caught.value.record
    # two 4-character chunks, the kill, and at most what was already on its way
    assert received.startswith("[echo] m") and len(received) < 40
    assert [(a.model, a.ok, a.partial, a.kind) for a in record.attempts] == [
        ("first", False, True, "retryable")
    ]
    assert record.model is None
    assert second.requests_served() == 0  # no silent switch to another model
    assert "Connection" in str(caught.value)


async def test_stream_interrupted_error_names_the_model_that_failed(
    katan_factory: KatanFactory,
) -> None:
    first, second = start_all(katan_factory, ["--itl-ms", "100"], [])
    router = InOrder(
        models=[remote(first, "first"), remote(second, "second")], stream_recovery="raise"
    )
    with pytest.raises(StreamInterruptedError) as caught:
        async for chunk in router.astream("tell me a story"):
            if chunk.text and first.process.poll() is None:
                kill(first)
    assert "model 'first' failed mid-stream" in str(caught.value)


# ------------------------------------------------------------------- bad inputs

WRONG_INPUTS: dict[str, Any] = {
    "no messages": [],
    "empty text": "",
    "only empty messages": [HumanMessage(""), ("user", "")],
    "non-UTF-8 bytes": b"caf\xe9 \xff\xfe",
    "int": 42,
    "float": 3.5,
    "dict": {"role": "user", "content": "hi"},
    "None": None,
    "list of int": [42],
    "list with None": ["hi", None],
    "unknown role": [{"role": "wizard", "content": "hi"}],
}


@pytest.mark.parametrize("value", list(WRONG_INPUTS.values()), ids=list(WRONG_INPUTS))
async def test_unusable_input_is_refused_before_any_server_is_called(
    value: Any, stub: Callable[[Responder], Stub], katan_server: KatanServer
) -> None:
    proxy = stub(forward_to(katan_server))
    router = InOrder(models=[remote(proxy, "counted")], timeout=5)

    async def astream() -> list[AIMessageChunk]:
        return [c async for c in router.astream(value)]

    calls: dict[str, Callable[[], Any]] = {
        "invoke": lambda: router.invoke(value),
        "stream": lambda: list(router.stream(value)),
        "batch": lambda: router.batch([value]),
    }
    for call in calls.values():
        with pytest.raises(InvalidRequestError):
            call()
    began = time.monotonic()
    for acall in (lambda: router.ainvoke(value), astream):
        with pytest.raises(InvalidRequestError) as caught:
            await asyncio.wait_for(acall(), timeout=5)
        assert "pass" in str(caught.value) or "give" in str(caught.value)  # says what to do
    assert time.monotonic() - began < 1
    assert proxy.hits == []  # refused before any model was tried
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_text_that_cannot_be_encoded_fails_typed_without_a_request(
    stub: Callable[[Responder], Stub], katan_server: KatanServer
) -> None:
    """A str with a lone surrogate (what ``bytes.decode(errors="surrogateescape")``
    makes of non-UTF-8 bytes) cannot be sent as JSON: refused up front, typed."""
    proxy = stub(forward_to(katan_server))
    router = InOrder(models=[remote(proxy, "a"), remote(proxy, "b")], max_retries=5)
    text = b"caf\xe9".decode("utf-8", errors="surrogateescape")
    for call in (router.invoke, router.ainvoke):
        with pytest.raises(LLMRouterError) as caught:
            result = call(text)
            if asyncio.iscoroutine(result):
                await asyncio.wait_for(result, timeout=5)
        assert isinstance(caught.value, InvalidRequestError)
        assert "not valid Unicode" in str(caught.value)
    assert proxy.hits == []


async def test_a_2_mb_prompt_gets_an_answer_or_a_typed_error_in_bounded_time(
    katan_server: KatanServer,
) -> None:
    router = InOrder(models=[remote(katan_server, "echo")], timeout=20)
    prompt = "All work and no play makes Jack a dull boy. " * 48_000  # ~2.1 MB
    assert len(prompt.encode()) > 2_000_000
    for call in (router.ainvoke, router.invoke):
        began = time.monotonic()
        try:
            result = call(prompt)
            answer = await result if asyncio.iscoroutine(result) else result
        except LLMRouterError as exc:  # acceptable: typed, and said so quickly
            assert time.monotonic() - began < 30, exc
            continue
        assert time.monotonic() - began < 30
        # llm-katan echoes it whole (an echo stream would take minutes: 4 chars a chunk)
        assert answer.text.endswith(prompt[-200:])
        assert route_of(answer).usage is not None


# ----------------------------------------------------------------- no leaks


Usage = tuple[int, int, int]
"""Threads, TCP sockets, open file descriptors."""


def _usage() -> Usage:
    """(threads, TCP sockets, open file descriptors) of this process."""
    process = psutil.Process()
    return (
        threading.active_count(),
        len(process.net_connections(kind="tcp")),
        process.num_fds(),
    )


def _settled(ceiling: Usage | None = None, timeout: float = 8.0) -> Usage:
    """Usage once abandoned calls have ended: at or below ``ceiling``, or stable."""
    deadline = time.monotonic() + timeout
    history: list[Usage] = []
    while True:
        gc.collect()
        now = _usage()
        history.append(now)
        if ceiling is not None and all(a <= b for a, b in zip(now, ceiling, strict=True)):
            return now
        if ceiling is None and len(history) >= 4 and len(set(history[-4:])) == 1:
            return now
        if time.monotonic() > deadline:
            return now
        time.sleep(0.25)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_no_threads_sockets_or_tasks_leak_across_bursts_of_failures(
    katan_factory: KatanFactory, katan_server: KatanServer
) -> None:
    """Sync and async calls through 500s, attempt and first-token timeouts, fallbacks
    and total failures; a second identical burst must not leave more behind than the
    first (pools warm up once; sync deadlines leave helper threads that end when
    their call does)."""
    errors, slow = start_all(
        katan_factory, ["--error-rate", "1.0"], ["--latency-ms", "600", "--max-concurrent", "64"]
    )
    quick = RetryPolicy.attempts(2, wait=wait_fixed(0.01))
    router = InOrder(
        models=[
            remote(errors, "errors"),
            # answers after 0.6 s: every attempt times out at 0.2 s, and the helper thread
            # of a sync call (or a stream's first chunk) finishes on its own later
            remote(slow, "slow", attempt_timeout=0.2, first_token_timeout=0.2, timeout=5.0),
            remote(katan_server, "healthy"),
        ],
        retry=quick,
        circuit_breaker=None,  # every request goes through every failure
    )
    doomed = InOrder(models=[remote(errors, "errors-only")], retry=quick, circuit_breaker=None)

    async def aburst() -> None:
        async def astream(i: int) -> str:
            return "".join([c.text async for c in router.astream(f"astream {i}")])

        results = await asyncio.gather(
            *(router.ainvoke(f"async {i}") for i in range(12)),
            *(astream(i) for i in range(3)),
            doomed.ainvoke("x"),
            return_exceptions=True,
        )
        assert all(isinstance(r, AIMessage) for r in results[:12]), results
        for i, text in enumerate(results[12:15]):
            assert isinstance(text, str) and text.endswith(f"User: astream {i}"), text
        assert isinstance(results[15], AllModelsFailedError)
        await asyncio.sleep(0)
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    def burst() -> None:
        for i in range(3):
            answer = router.invoke(f"sync {i}")
            assert [a.model for a in route_of(answer).attempts] == [
                "errors",
                "errors",
                "slow",
                "slow",
                "healthy",
            ]
            assert route_of(answer).attempts[2].error_type == "AttemptTimeoutError"
        streamed = joined(list(router.stream("sync stream")))
        assert route_of(streamed).model == "healthy"
        with pytest.raises(AllModelsFailedError):
            doomed.invoke("x")
        asyncio.run(aburst())

    burst()  # warm-up: connection pools, executors, lazily built clients
    burst()
    after_two = _settled()
    burst()
    after_three = _settled(ceiling=after_two)
    print(f"\nthreads, sockets, fds after burst 2: {after_two}, after burst 3: {after_three}")
    threads, sockets, fds = (b - a for a, b in zip(after_two, after_three, strict=True))
    assert threads <= 0, f"{threads} more threads after an identical burst"
    assert sockets <= 0, f"{sockets} more TCP sockets after an identical burst"
    assert fds <= 0, f"{fds} more file descriptors after an identical burst"
