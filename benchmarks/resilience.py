"""Resilience under injected errors: success rate and latency with and without the router.

What it measures
    One llm-katan server (echo backend) fails 30% of requests with HTTP 500
    (``--error-rate 0.3``); a second one never fails. The same N requests (default
    500, 16 in flight) go through each contender:

    * ``direct``                ``ChatOpenAI(max_retries=0)`` to the flaky server;
    * ``direct + SDK retries``  ``ChatOpenAI`` with the openai SDK's default
                                ``max_retries=2`` (its own backoff, 0.5 s and up);
    * ``router``                a ``ModelRouter`` over the flaky server alone, with its
                                defaults (2 retries with backoff, circuit breaker);
    * ``router, no breaker``    the same with ``circuit_breaker=None``;
    * ``router + fallback``     the router's defaults, the healthy server as fallback.

    Per contender: success rate, p50 and p99 latency of every call (failed calls
    included: that is what the caller waited), and mean HTTP requests per call
    (counted by an httpx event hook on each contender's own client, so SDK retries
    count too). Contenders run in rounds of 50 requests each, in rotating order, so
    machine load affects them alike. Ratios are against ``direct``. Each router has
    its own breaker board (breaker state is otherwise shared by model name).

How to run
    python benchmarks/resilience.py                   # ~30-60 s on 2 cores
    python benchmarks/resilience.py --requests 2000 --concurrency 32 --json out.json
    python benchmarks/resilience.py --error-rate 0.5 --latency-ms 50

The script starts and stops the servers itself (127.0.0.1, free ports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from _servers import free_port
from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import llmrouter
from llmrouter import ModelRouter, models
from llmrouter.resilience import CircuitBreaker, MemoryBreakerBoard

API_KEY = "sk-bench"  # llm-katan checks that the header is there, not its value
CHUNK = 50  # requests per contender per round
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# ------------------------------------------------------------------- servers


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    name: str

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def stop(self) -> None:
        """SIGTERM the server's process group; SIGKILL if it lingers."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait)


def start_server(name: str, args: list[str], workdir: Path, timeout: float = 60.0) -> Server:
    """Start llm-katan (echo backend) on 127.0.0.1 and wait for ``/health``."""
    port = free_port()
    log = (workdir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "llm_katan.cli", "--backend", "echo"),
            *("--model", name, "--served-model-name", name),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--stats-file", str(workdir / f"{name}-stats.json"), "--disable-dashboard"),
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stop() reaches every child
    )
    server = Server(f"http://127.0.0.1:{port}", process, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with (
            contextlib.suppress(OSError, ValueError),
            _NO_PROXY.open(server.url + "/health", timeout=1) as response,
        ):
            if json.loads(response.read()).get("status") == "ok":
                return server
        time.sleep(0.1)
    server.stop()
    tail = (workdir / f"{name}.log").read_text(errors="replace")[-2000:]
    raise SystemExit(f"llm-katan {name!r} did not start within {timeout:.0f} s:\n{tail}")


@contextlib.contextmanager
def servers(error_rate: float, latency_ms: int) -> Iterator[tuple[Server, Server]]:
    common = ["--latency-ms", str(latency_ms), "--max-concurrent", "256"]
    with tempfile.TemporaryDirectory(prefix="llmrouter-resilience-") as tmp:
        started: list[Server] = []
        try:
            started.append(
                start_server("flaky", ["--error-rate", str(error_rate), *common], Path(tmp))
            )
            started.append(start_server("healthy", common, Path(tmp)))
            yield started[0], started[1]
        finally:
            for server in started:
                server.stop()


# --------------------------------------------------------------- contenders


@dataclass
class Contender:
    name: str
    call: Callable[[str], Awaitable[BaseMessage]]
    http_requests: list[int] = field(default_factory=lambda: [0])
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def counting_client(counter: list[int]) -> openai.DefaultAsyncHttpxClient:
    """The openai SDK's default async client, counting every HTTP request it sends."""

    async def count(request: Any) -> None:
        counter[0] += 1

    return openai.DefaultAsyncHttpxClient(event_hooks={"request": [count]})


def contenders(flaky: Server, healthy: Server) -> list[Contender]:
    out: list[Contender] = []

    def direct(name: str, max_retries: int) -> None:
        counter = [0]
        chat = ChatOpenAI(
            model=flaky.name,
            base_url=flaky.base_url,
            api_key=API_KEY,
            max_retries=max_retries,
            http_async_client=counting_client(counter),
        )
        out.append(Contender(name, chat.ainvoke, counter))

    def routed(name: str, *servers: Server, breaker: bool = True) -> None:
        counter = [0]
        specs = [
            models.openai_compatible(
                s.name,
                base_url=s.base_url,
                api_key=API_KEY,
                tasks={"chat"},
                http_async_client=counting_client(counter),
            )
            for s in servers
        ]
        router = ModelRouter(
            models=specs,
            routes={"chat": specs[0].name},
            # defaults, on a board of its own: breaker state is shared by model name
            circuit_breaker=CircuitBreaker(board=MemoryBreakerBoard()) if breaker else None,
        )

        async def call(prompt: str) -> BaseMessage:
            return await router.ainvoke(prompt, task="chat")

        out.append(Contender(name, call, counter))

    direct("direct", 0)
    direct("direct + SDK retries", 2)
    routed("router", flaky)
    routed("router, no breaker", flaky, breaker=False)
    routed("router + fallback", flaky, healthy)
    return out


# ------------------------------------------------------------------ running


async def run(
    cs: list[Contender], requests: int, concurrency: int, tick: Callable[[Contender], None]
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(c: Contender, i: int) -> None:
        async with gate:
            began = time.perf_counter()
            try:
                await c.call(f"request {i}")
            except Exception as exc:  # counted, never raised: we measure failures
                key = type(exc).__name__
                c.errors[key] = c.errors.get(key, 0) + 1
            else:
                c.ok += 1
            c.latencies.append(time.perf_counter() - began)
            tick(c)

    for start in range(0, requests, CHUNK):
        rotation = (start // CHUNK) % len(cs)
        for c in cs[rotation:] + cs[:rotation]:
            await asyncio.gather(*(one(c, i) for i in range(start, min(start + CHUNK, requests))))


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(cs: list[Contender], requests: int) -> dict[str, dict[str, Any]]:
    return {
        c.name: {
            "success_rate": c.ok / requests,
            "p50_ms": pct(c.latencies, 0.50) * 1000,
            "p99_ms": pct(c.latencies, 0.99) * 1000,
            "http_requests_per_call": c.http_requests[0] / requests,
            "errors": dict(c.errors),
        }
        for c in cs
    }


def show(console: Console, rows: dict[str, dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    columns = ("contender", "success", "p50 ms", "p99 ms", "HTTP req/call", "failed")
    for col in columns:
        table.add_column(col, justify="left" if col == "contender" else "right", no_wrap=True)
    for name, row in rows.items():
        failed = str(sum(row["errors"].values()))
        table.add_row(
            name,
            f"{row['success_rate']:.1%}",
            f"{row['p50_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            f"{row['http_requests_per_call']:.2f}",
            failed,
        )
    console.print(table)
    base_name, base = next(iter(rows.items()))
    for name, row in list(rows.items())[1:]:
        lost, base_lost = 1 - row["success_rate"], 1 - base["success_rate"]
        fewer = f"failures x{lost / base_lost:.2f}" if base_lost > 0 else f"failed {lost:.1%}"
        success = (
            f"success x{row['success_rate'] / base['success_rate']:.2f}"
            if base["success_rate"] > 0
            else f"success {row['success_rate']:.1%}"
        )
        console.print(
            f"  {name} / {base_name}: {success} ({fewer}), "
            f"p50 x{row['p50_ms'] / base['p50_ms']:.2f}, p99 x{row['p99_ms'] / base['p99_ms']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per contender")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--error-rate", type=float, default=0.3, help="flaky server's 500 rate")
    parser.add_argument(
        "--latency-ms", type=int, default=20, help="both servers' answer time (a model's work)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers")
    args = parser.parse_args()

    console = Console()
    began = time.monotonic()
    with servers(args.error_rate, args.latency_ms) as (flaky, healthy):
        cs = contenders(flaky, healthy)
        with Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            bars = {c.name: progress.add_task(c.name, total=args.requests) for c in cs}
            asyncio.run(
                run(cs, args.requests, args.concurrency, lambda c: progress.advance(bars[c.name]))
            )
    rows = summarize(cs, args.requests)
    console.print(
        f"[dim]{args.requests} requests per contender, {args.concurrency} in flight; flaky "
        f"server: HTTP 500 on {args.error_rate:.0%} of requests; both servers answer in "
        f"{args.latency_ms} ms; {time.monotonic() - began:.0f} s in all; python "
        f"{platform.python_version()}, openai {openai.__version__}, llmrouter "
        f"{llmrouter.__version__}[/dim]"
    )
    show(console, rows, f"Resilience: {args.error_rate:.0%} injected errors")
    if args.json:
        settings = {k: getattr(args, k) for k in ("requests", "concurrency", "error_rate")}
        settings["latency_ms"] = args.latency_ms
        args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
