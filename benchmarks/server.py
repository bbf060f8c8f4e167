"""`llmrouter serve` vs the backend straight: requests/s and p50/p99 at concurrency 1/16/64.

What it measures
    One llm-katan echo server on 127.0.0.1 (the backend) and one ``llmrouter serve``
    process (a ``cost`` router whose only model is that backend), both started and
    stopped by the script. One client (``httpx.AsyncClient``, keep-alive, as many
    connections as the concurrency) posts the same chat-completions body
    (non-streamed) to two targets:

    * ``direct``  the backend's ``/v1/chat/completions``;
    * ``served``  our server's ``/v1/chat/completions`` with ``model`` = the router,
                  which routes, calls the backend (one more HTTP hop), records the
                  route and answers.

    At each concurrency a round is a fixed number of requests taken by that many
    workers; the targets alternate round by round after an untimed warm-up round
    each. Reported per level: median requests/s over the repeats and the ratio
    served / direct; p50 and p99 latency over every timed request, and the p50
    overhead in ms. Targets (the issue): >= 0.9x the throughput at 64; p50 overhead
    <= 2 ms (LiteLLM's published proxy median).

    Client, server and backend share the machine (2 cores here), so at high
    concurrency the CPU our server spends per request is taken from the backend
    and the client: the throughput ratio shows that cost, not network latency.

    With ``--litellm``, LiteLLM's proxy server (one worker, in front of the same
    backend; see ``_litellm_proxy.py`` for its settings and venv) is a third target
    in the same rounds, so the two gateways' overheads are measured side by side on
    the same machine at the same moment.

    With ``--floor``, a bare forwarder (``_floor_proxy.py``: Starlette under uvicorn
    passing the body to the backend with one ``httpx.AsyncClient``, no parsing) is a
    target too: its overhead is the extra HTTP hop alone, the part of ours that no
    Python gateway on this machine avoids.

    With ``--httpcore``, a second ``llmrouter serve`` whose openai clients cannot
    import httpx-aiohttp (so they use httpcore's pool, as without the ``serve``
    extra) is a target too: the share of the HTTP client library in our overhead.

How to run
    python benchmarks/server.py                  # ~1 min on 2 cores
    python benchmarks/server.py --litellm        # + LiteLLM's proxy (~2 min; its venv once)
    python benchmarks/server.py --floor          # + a bare forwarder: the hop's own cost
    python benchmarks/server.py --httpcore       # + our server with httpcore, not aiohttp
    python benchmarks/server.py --repeats 9 --requests 384

Needs the extras ``llmrouter[serve,testing]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _servers import free_port, wait_ready

from llmrouter.testing import start_echo_server

LEVELS = (1, 16, 64)
HTTPCORE_SERVE = """
import sys
sys.modules["httpx_aiohttp"] = sys.modules["httpx_aiohttp.httpx2"] = None  # imports fail
from llmrouter.cli import app
sys.argv = ["llmrouter", "serve", *sys.argv[1:]]
app()
"""
"""``llmrouter serve`` with httpx-aiohttp hidden: its openai clients fall back to httpcore."""
KEY = "sk-bench-key-0000"


def start(cmd: list[str], port: int, what: str) -> subprocess.Popen[bytes]:
    """Run ``cmd`` (a server on 127.0.0.1:``port``) until its ``/health`` answers."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/health"
        wait_ready(proc, url, what, lambda: proc.stderr.read().decode(), 60)  # type: ignore[union-attr]
    except RuntimeError:
        proc.kill()
        raise
    return proc


@contextlib.contextmanager
def serving(cmd: list[str], port: int, what: str) -> Iterator[str]:
    """``start`` ``cmd``; yield its base URL; stop it (SIGTERM, then wait) afterwards."""
    proc = start(cmd, port, what)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def round_(
    client: httpx.AsyncClient, url: str, body: dict[str, object], n: int, workers: int
) -> tuple[float, list[float]]:
    """(wall seconds, per-request latencies) of ``n`` requests by ``workers`` workers."""
    latencies: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            t = time.perf_counter()
            r = await client.post(url, json=body)
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - start, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    targets: dict[str, tuple[str, dict[str, object]]], repeats: int, requests: int
) -> list[dict[str, float]]:
    rows = []
    for level in LEVELS:
        n = max(requests // 3, 32) if level == 1 else requests
        # idle connections expire before the servers' 5 s keep-alive closes them (a
        # request sent on one the server is closing fails with a ReadError)
        limits = httpx.Limits(
            max_connections=level, max_keepalive_connections=level, keepalive_expiry=3.0
        )
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            client.headers.update({"Authorization": f"Bearer {KEY}"})
            for url, body in targets.values():  # warm-up: connections, lazy imports
                await round_(client, url, body, n, level)
            rps: dict[str, list[float]] = {name: [] for name in targets}
            lat: dict[str, list[float]] = {name: [] for name in targets}
            for r in range(repeats):
                order = list(targets) if r % 2 == 0 else list(reversed(targets))
                for name in order:
                    url, body = targets[name]
                    gc.collect()
                    gc.disable()
                    wall, latencies = await round_(client, url, body, n, level)
                    gc.enable()
                    rps[name].append(n / wall)
                    lat[name] += latencies
        row: dict[str, float] = {"concurrency": level}
        for name in targets:
            row[f"{name}_rps"] = statistics.median(rps[name])
            row[f"{name}_p50_ms"] = pct(lat[name], 0.5) * 1000
            row[f"{name}_p99_ms"] = pct(lat[name], 0.99) * 1000
        rows.append(row)
        print(f"  concurrency {level}: done", file=sys.stderr)
    return rows


def report(rows: list[dict[str, float]], name: str, title: str) -> tuple[float, float]:
    """Print ``name`` against the backend straight; (ratio at 64, p50 overhead ms at 1)."""
    print(f"\n{title} vs llm-katan direct")
    print(
        f"{'conc':>4}  {'direct rps':>10}  {'rps':>8}  {'ratio':>5}  {'p50 direct':>10}  "
        f"{'p50':>8}  {'p50 +ms':>7}  {'p99 direct':>10}  {'p99':>8}"
    )
    for row in rows:
        print(
            f"{row['concurrency']:>4}  {row['direct_rps']:>10.1f}  {row[f'{name}_rps']:>8.1f}  "
            f"{row[f'{name}_rps'] / row['direct_rps']:>5.2f}  {row['direct_p50_ms']:>10.2f}  "
            f"{row[f'{name}_p50_ms']:>8.2f}  "
            f"{row[f'{name}_p50_ms'] - row['direct_p50_ms']:>7.2f}  "
            f"{row['direct_p99_ms']:>10.2f}  {row[f'{name}_p99_ms']:>8.2f}"
        )
    first, last = rows[0], rows[-1]
    return last[f"{name}_rps"] / last["direct_rps"], first[f"{name}_p50_ms"] - first[
        "direct_p50_ms"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--requests", type=int, default=192)
    parser.add_argument(
        "--litellm", action="store_true", help="also LiteLLM's proxy (creates its venv once)"
    )
    parser.add_argument(
        "--httpcore",
        action="store_true",
        help="also a `llmrouter serve` whose openai clients use httpcore instead of aiohttp",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also a bare forwarder (_floor_proxy.py): what the extra hop alone costs",
    )
    args = parser.parse_args()
    flags = ["--log-level", "warning", "--max-concurrent", "1024"]
    with contextlib.ExitStack() as stack:
        katan = stack.enter_context(start_echo_server(flags))
        config = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "router.yaml"
        config.write_text(
            f"""
models:
  echo:
    factory: openai_compatible
    model: {katan.model}
    base_url: {katan.base_url}
    api_key: {katan.api_key}
routers:
  bench: {{type: cost, models: [echo]}}
serve:
  keys: [{{key: {KEY}, name: bench}}]
"""
        )
        message = [{"role": "user", "content": "Summarise routing in one line."}]
        targets: dict[str, tuple[str, dict[str, object]]] = {
            "direct": (
                f"{katan.base_url}/chat/completions",
                {"model": katan.model, "messages": message},
            ),
        }
        version = None
        if args.litellm:
            from _litellm_proxy import MODEL, ensure_venv, litellm_proxy

            version = ensure_venv()
            proxy = stack.enter_context(
                litellm_proxy(katan.model, katan.base_url, katan.api_key, KEY)
            )
            targets["litellm"] = (
                f"{proxy}/chat/completions",
                {"model": MODEL, "messages": message},
            )
        if args.floor:
            port = free_port()
            script = str(Path(__file__).with_name("_floor_proxy.py"))
            cmd = [sys.executable, script, str(port), katan.base_url, katan.api_key]
            floor = stack.enter_context(serving(cmd, port, "the floor forwarder"))
            targets["floor"] = (
                f"{floor}/chat/completions",
                {"model": katan.model, "messages": message},
            )
        port = free_port()
        exe = str(Path(sys.executable).with_name("llmrouter"))
        cmd = [exe, "serve", str(config), "--port", str(port), "--no-log"]
        served = stack.enter_context(serving(cmd, port, "llmrouter serve"))
        targets["served"] = (f"{served}/chat/completions", {"model": "bench", "messages": message})
        if args.httpcore:
            port = free_port()
            cmd = [
                sys.executable,
                "-c",
                HTTPCORE_SERVE,
                str(config),
                "--port",
                str(port),
                "--no-log",
            ]
            plain = stack.enter_context(serving(cmd, port, "llmrouter serve on httpcore"))
            targets["httpcore"] = (
                f"{plain}/chat/completions",
                {"model": "bench", "messages": message},
            )
        rows = asyncio.run(measure(targets, args.repeats, args.requests))
    print(
        f"\n{os.cpu_count()} CPUs, {args.repeats} repeats; client, backend and servers share them"
    )
    at64, overhead = report(rows, "served", "llmrouter serve")
    print(f"target >= 0.90x at 64: {at64:.3f}x ({'met' if at64 >= 0.9 else 'NOT met'})")
    print(
        f"target p50 overhead <= 2 ms at 1: {overhead:.2f} ms "
        f"({'met' if overhead <= 2 else 'NOT met'})"
    )
    if args.httpcore:
        core64, core = report(rows, "httpcore", "llmrouter serve, openai clients on httpcore")
        print(
            f"the HTTP client's share: p50 overhead at 1 on aiohttp {overhead:.2f} ms, on "
            f"httpcore {core:.2f} ms; throughput at 64 {at64:.2f}x against {core64:.2f}x"
        )
    if args.floor:
        floor64, floor = report(rows, "floor", "the floor (a bare Starlette + httpx forwarder)")
        print(
            f"beyond the bare hop: p50 at 1 llmrouter {overhead:.2f} ms, the floor {floor:.2f} ms "
            f"(llmrouter adds {overhead - floor:.2f} ms); throughput at 64 llmrouter "
            f"{at64:.2f}x, the floor {floor64:.2f}x of the backend's"
        )
    if version is not None:
        their64, theirs = report(rows, "litellm", f"LiteLLM {version} proxy (1 worker)")
        print(
            f"side by side: p50 overhead at 1 llmrouter {overhead:.2f} ms, LiteLLM {theirs:.2f} ms "
            f"(ratio {overhead / theirs:.2f}); throughput at 64 llmrouter {at64:.2f}x, "
            f"LiteLLM {their64:.2f}x of the backend's"
        )


if __name__ == "__main__":
    main()
