"""Throughput and first chunk: a `ModelRouter` vs a direct `ChatOpenAI`, one real server.

What it measures
    One llm-katan echo server on 127.0.0.1 (``llmrouter.testing.start_echo_server``,
    started and stopped by the script) and two contenders with the same settings
    (``max_retries=0``, the same ``timeout``, ``stream_usage=True``, no ``max_tokens``,
    so both send the same request body):

    * ``direct``  ``langchain_openai.ChatOpenAI(model=..., base_url=..., api_key=...)``;
    * ``router``  a ``ModelRouter`` whose only model is
                  ``llmrouter.models.openai_compatible(...)`` for the same server, called
                  without a task (its ``default`` model answers).

    (a) Async throughput at concurrency 1, 16 and 64: a round is a fixed number of
        ``ainvoke`` requests (default 192; a third of that at concurrency 1, which has
        no target) taken by that many concurrent workers; requests/s = requests / wall
        time of the round. The contenders alternate round by round (the first one
        alternates too), after one untimed warm-up round each (it also opens the
        connections); the levels run one after another. Reported: median requests/s over the
        repeats (default 13), the ratio router / direct of the medians, and the middle
        half (25th-75th percentile) of the ratios paired repeat by repeat, which shows
        the noise. Target: >= 0.95 at 16 and 64. Failed requests, and retries the
        router made (from its route records), are counted and printed if any. Why
        levels are not interleaved: httpx drops a pooled connection after 5 s idle,
        and uvicorn closes it after 5 s idle too; a connection reused right at 5 s
        fails ("Connection error", a broken pipe). With levels interleaved, the extra
        connections of concurrency 64 idled about that long between repeats, so a few
        requests failed (direct) or were retried after a 0.1 s backoff (router).
    (b) Time to first chunk of ``stream`` and ``astream``: from the call to the first
        chunk it yields (the role chunk, no text yet); also to the first chunk with
        text and to the end of the stream. Requests alternate between ``stream`` and
        ``astream`` and between the contenders' order; medians over 200 requests per
        contender and call (default), after 20 untimed ones. Target: router / direct
        <= 1.05 for the first chunk.

    Timing uses ``time.perf_counter_ns`` with the garbage collector disabled (collected
    between rounds, and every 25 requests in (b), untimed); all async work runs on one
    event loop. Client and server share the machine: with no delay injected the
    client's one thread is the bottleneck (a full core; the server needs well under
    one), so (a) compares the CPU each contender spends per request. On a shared
    2-core VM that rate moves by 10-15% from one 0.5 s window to the next, so the
    ratios carry a few percent of noise at the defaults; ``--repeats 40`` narrows it.

    No fault flags by default. The echo answer streams as ~35 chunks, and the first
    arrives well before the last (about 3-4 ms vs 8-12 ms here), so the first-chunk
    time is already distinct from the whole stream; a TTFT would add the same constant
    to both contenders and pull the ratio towards 1 without saying anything about the
    router. ``--ttft-ms N`` passes a TTFT to llm-katan to see a more realistic server
    (llm-katan 0.22 then delays every answer by N ms, and a stream's first chunk by
    2N ms; (a) becomes latency-bound at low concurrency). The server runs with
    ``--log-level warning`` (fewer log lines per request; uvicorn's access log stays
    on) and ``--max-concurrent 1024`` (the echo backend otherwise answers one request
    at a time, which matters once a delay is injected).

How to run
    python benchmarks/throughput.py                      # ~60-80 s on 2 cores
    python benchmarks/throughput.py --repeats 3 --stream-requests 100   # quicker, noisier
    python benchmarks/throughput.py --repeats 40 --json throughput.json # steadier ratios
    python benchmarks/throughput.py --ttft-ms 20

Needs the extra ``llmrouter[testing]`` (llm-katan).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import re
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import langchain_core
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, BaseMessageChunk
from langchain_openai import ChatOpenAI
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import llmrouter
from llmrouter import ModelRouter
from llmrouter.testing import KatanServer, start_echo_server

LEVELS = (1, 16, 64)
THROUGHPUT_TARGET = 0.95  # router / direct requests/s, at every level but 1
FIRST_CHUNK_TARGET = 1.05  # router / direct median time to first chunk
GC_EVERY = 25  # stream requests between gc.collect() calls (untimed)
PROMPT = "Write quicksort in Python"


@dataclass(frozen=True)
class Contender:
    name: str
    model: BaseChatModel

    def ainvoke(self, prompt: str) -> Awaitable[BaseMessage]:
        return self.model.ainvoke(prompt)

    def stream(self, prompt: str) -> Iterator[BaseMessageChunk]:
        return self.model.stream(prompt)

    def astream(self, prompt: str) -> AsyncIterator[BaseMessageChunk]:
        return self.model.astream(prompt)


def contenders(server: KatanServer, timeout: float) -> list[Contender]:
    direct = ChatOpenAI(
        model=server.model,
        base_url=server.base_url,
        api_key=server.api_key,  # type: ignore[arg-type]
        max_retries=0,
        timeout=timeout,
        stream_usage=True,
    )
    # openai_compatible sets max_retries=0 and stream_usage=True itself.
    spec = server.spec(timeout=timeout)
    router = ModelRouter(models=[spec], default=spec.name)
    return [Contender("direct", direct), Contender("router", router)]


_TIME = re.compile(r" time=\S+")


def _same(text: str) -> str:
    return _TIME.sub("", text)  # the echo's header says when it answered


def check(cs: list[Contender], loop: asyncio.AbstractEventLoop) -> None:
    """Both contenders get the same answer (so they sent the same request), sync and async."""
    answers = {}
    for c in cs:

        async def both(c: Contender = c) -> tuple[str, str]:
            whole = await c.ainvoke(PROMPT)
            streamed = "".join([str(chunk.content) async for chunk in c.astream(PROMPT)])
            return str(whole.content), streamed

        invoked, astreamed = loop.run_until_complete(both())
        streamed = "".join(str(chunk.content) for chunk in c.stream(PROMPT))
        answers[c.name] = {_same(invoked), _same(astreamed), _same(streamed)}
    if len({frozenset(a) for a in answers.values()}) != 1 or any(
        len(a) != 1 for a in answers.values()
    ):
        raise SystemExit(f"the contenders answered differently: {answers}")
    if not next(iter(answers["direct"])).endswith(f"User: {PROMPT}"):
        raise SystemExit(f"unexpected echo: {answers['direct']}")


# --------------------------------------------------------------- throughput


async def one_round(c: Contender, requests: int, concurrency: int, problems: Counter[str]) -> float:
    """Requests/s for ``requests`` calls, ``concurrency`` at once; failures and retries
    (the router's, from its route record) are counted in ``problems``."""
    numbers = iter(range(requests))

    async def worker() -> None:
        for i in numbers:
            try:
                answer = await c.ainvoke(f"{PROMPT} (request {i})")
            except Exception as exc:  # counted and shown: a failing contender's rate means little
                problems[f"failed: {type(exc).__name__}: {str(exc)[:80]}"] += 1
            else:
                route = answer.response_metadata.get("route") or {}
                for attempt in route.get("attempts", [])[:-1]:
                    problems[f"retried: {attempt['error_type']}: {attempt['error']}"[:120]] += 1

    t0 = time.perf_counter_ns()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    t1 = time.perf_counter_ns()
    return requests / ((t1 - t0) / 1e9)


def requests_per_round(args: argparse.Namespace, concurrency: int) -> int:
    return args.requests if concurrency > 1 else max(16, args.requests // 3)


def timed_round(
    loop: asyncio.AbstractEventLoop,
    c: Contender,
    requests: int,
    concurrency: int,
    problems: Counter[str],
) -> float:
    gc.collect()
    gc.disable()
    try:
        return loop.run_until_complete(one_round(c, requests, concurrency, problems))
    finally:
        gc.enable()


def throughput(
    cs: list[Contender],
    loop: asyncio.AbstractEventLoop,
    args: argparse.Namespace,
    tick: Callable[[], None],
) -> dict[str, Any]:
    rps: dict[int, dict[str, list[float]]] = {n: {c.name: [] for c in cs} for n in LEVELS}
    problems: dict[str, Counter[str]] = {c.name: Counter() for c in cs}
    # One level after another: see the module notes on keep-alive for why not interleaved.
    for level in LEVELS:
        for repeat in range(-1, args.repeats):  # -1: warm-up
            order = cs if repeat % 2 == 0 else cs[::-1]
            for c in order:
                count = requests_per_round(args, level)
                rate = timed_round(loop, c, count, level, problems[c.name])
                if repeat >= 0:
                    rps[level][c.name].append(rate)
                tick()
    rows = []
    for level in LEVELS:
        direct, router = rps[level]["direct"], rps[level]["router"]
        per_repeat = [r / d for r, d in zip(router, direct, strict=True)]
        ratio = statistics.median(router) / statistics.median(direct)
        quantiles = statistics.quantiles(per_repeat, n=4) if len(per_repeat) > 1 else [ratio] * 3
        target = None if level == 1 else THROUGHPUT_TARGET
        rows.append(
            {
                "concurrency": level,
                "requests_per_round": requests_per_round(args, level),
                "direct_rps": statistics.median(direct),
                "router_rps": statistics.median(router),
                "ratio": ratio,
                "paired_p25": quantiles[0],
                "paired_p75": quantiles[2],
                "target": target,
                "met": None if target is None else ratio >= target,
                "samples": {"direct": direct, "router": router},
            }
        )
    return {"rows": rows, "problems": {k: dict(+v) for k, v in problems.items()}}


# -------------------------------------------------------------- first chunk


Times = tuple[int, int, int]  # ns to the first chunk, the first text, the end


def _stream_times(chunks: Iterator[BaseMessageChunk], t0: int) -> Times:
    first = text = 0
    for chunk in chunks:
        now = time.perf_counter_ns()
        first = first or now - t0
        if not text and chunk.content:
            text = now - t0
    return first, text, time.perf_counter_ns() - t0


async def _astream_times(chunks: AsyncIterator[BaseMessageChunk], t0: int) -> Times:
    first = text = 0
    async for chunk in chunks:
        now = time.perf_counter_ns()
        first = first or now - t0
        if not text and chunk.content:
            text = now - t0
    return first, text, time.perf_counter_ns() - t0


def first_chunk(
    cs: list[Contender],
    loop: asyncio.AbstractEventLoop,
    args: argparse.Namespace,
    tick: Callable[[], None],
) -> dict[str, Any]:
    calls = ("stream", "astream")
    times: dict[str, dict[str, list[Times]]] = {m: {c.name: [] for c in cs} for m in calls}
    gc.collect()
    gc.disable()
    try:
        for i in range(args.stream_warmup + args.stream_requests):
            for call in calls if i % 2 == 0 else calls[::-1]:
                for c in cs if (i // 2) % 2 == 0 else cs[::-1]:
                    t0 = time.perf_counter_ns()
                    if call == "stream":
                        got = _stream_times(c.stream(PROMPT), t0)
                    else:
                        got = loop.run_until_complete(_astream_times(c.astream(PROMPT), t0))
                    if i >= args.stream_warmup:
                        times[call][c.name].append(got)
            if i % GC_EVERY == GC_EVERY - 1:
                gc.collect()
            tick()
    finally:
        gc.enable()
    rows = []
    for call in calls:
        for k, measure in enumerate(("first chunk", "first text", "end")):
            med = {
                name: statistics.median(t[k] for t in samples) / 1e6
                for name, samples in times[call].items()
            }
            target = FIRST_CHUNK_TARGET if measure == "first chunk" else None
            ratio = med["router"] / med["direct"]
            rows.append(
                {
                    "call": call,
                    "measure": measure,
                    "direct_ms": med["direct"],
                    "router_ms": med["router"],
                    "added_ms": med["router"] - med["direct"],
                    "ratio": ratio,
                    "target": target,
                    "met": None if target is None else ratio <= target,
                }
            )
    return {"rows": rows}


# ------------------------------------------------------------------ output


def verdict(ratio: float, met: bool) -> str:
    return f"{ratio:.3f}, " + ("[green]MET[/green]" if met else "[red]NOT MET[/red]")


def show(console: Console, tp: dict[str, Any], fc: dict[str, Any], args: Any) -> None:
    counts = "/".join(str(requests_per_round(args, n)) for n in LEVELS)
    table = Table(title=f"Async throughput: {counts} ainvoke requests a round")
    for col in ("concurrency", "direct req/s", "router req/s", "router/direct", "middle half"):
        table.add_column(col, justify="right")
    for r in tp["rows"]:
        table.add_row(
            str(r["concurrency"]),
            f"{r['direct_rps']:.0f}",
            f"{r['router_rps']:.0f}",
            f"{r['ratio']:.3f}",
            f"{r['paired_p25']:.2f}-{r['paired_p75']:.2f}",
        )
    console.print(table)
    console.print(
        f"  [dim]medians over {args.repeats} rounds; middle half: of router/direct paired "
        f"round by round[/dim]"
    )
    for name, seen in tp["problems"].items():
        if seen:
            console.print(f"  [yellow]{name}: {seen}[/yellow] (warm-up included)")
    for r in tp["rows"]:
        if r["target"] is not None:
            label = f"router/direct req/s >= {r['target']} at concurrency {r['concurrency']}"
            console.print(f"  target: {label}: {verdict(r['ratio'], r['met'])}")
    console.print()

    table = Table(title=f"Streaming: {args.stream_requests} requests per contender and call")
    for col in ("call", "until", "direct ms", "router ms", "added ms", "router/direct"):
        table.add_column(col, justify="left" if col in ("call", "until") else "right")
    for r in fc["rows"]:
        table.add_row(
            r["call"],
            r["measure"],
            f"{r['direct_ms']:.2f}",
            f"{r['router_ms']:.2f}",
            f"{r['added_ms']:+.2f}",
            f"{r['ratio']:.3f}",
        )
    console.print(table)
    console.print("  [dim]medians; first chunk: the role chunk, no text yet[/dim]")
    for r in fc["rows"]:
        if r["target"] is not None:
            label = f"{r['call']} router/direct time to first chunk <= {r['target']}"
            console.print(f"  target: {label}: {verdict(r['ratio'], r['met'])}")
    console.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--requests", type=int, default=192, help="ainvoke requests a round (c=1: a third)"
    )
    parser.add_argument("--repeats", type=int, default=13, help="timed rounds per level")
    parser.add_argument("--stream-requests", type=int, default=200, help="per contender, call")
    parser.add_argument("--stream-warmup", type=int, default=20, help="untimed, per contender")
    parser.add_argument("--timeout", type=float, default=30.0, help="both clients' timeout, s")
    parser.add_argument("--ttft-ms", type=int, default=0, help="llm-katan --ttft-ms (see above)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers")
    args = parser.parse_args()

    console = Console()
    flags = ["--log-level", "warning", "--max-concurrent", "1024"]
    if args.ttft_ms:
        flags += ["--ttft-ms", str(args.ttft_ms)]
    loop = asyncio.new_event_loop()
    try:
        with start_echo_server(flags) as server:
            cs = contenders(server, args.timeout)
            check(cs, loop)
            with Progress(console=console, auto_refresh=False, transient=True) as progress:
                rounds = (args.repeats + 1) * len(LEVELS) * len(cs)
                bar = progress.add_task("async throughput", total=rounds)
                tp = throughput(
                    cs, loop, args, lambda: progress.update(bar, advance=1, refresh=True)
                )
                total = args.stream_warmup + args.stream_requests
                bar = progress.add_task("first chunk", total=total)
                fc = first_chunk(
                    cs, loop, args, lambda: progress.update(bar, advance=1, refresh=True)
                )
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    console.print(
        f"[dim]one llm-katan echo server on 127.0.0.1 (flags: {' '.join(flags)}); gc disabled "
        f"while timing; python {platform.python_version()}, langchain-core "
        f"{langchain_core.__version__}, langchain-openai "
        f"{_version('langchain-openai')}, llmrouter {llmrouter.__version__}[/dim]"
    )
    show(console, tp, fc, args)
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        payload = {"settings": {**settings, "server_flags": flags}, "throughput": tp}
        args.json.write_text(json.dumps(payload | {"first_chunk": fc}, indent=2) + "\n")
        console.print(f"wrote {args.json}")


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
