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

How to run
    python benchmarks/server.py                  # ~1 min on 2 cores
    python benchmarks/server.py --repeats 9 --requests 384

Needs the extras ``llmrouter[serve,testing]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from llmrouter.testing import start_echo_server

LEVELS = (1, 16, 64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(config: Path, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("llmrouter")
    cmd = [str(exe), "serve", str(config), "--port", str(port), "--no-log"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"llmrouter serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    proc.kill()
    raise RuntimeError("llmrouter serve did not answer /health within 60 s")


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
        limits = httpx.Limits(max_connections=level, max_keepalive_connections=level)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            headers = {"Authorization": "Bearer bench-key-0000"}
            client.headers.update(headers)
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
        d, s = statistics.median(rps["direct"]), statistics.median(rps["served"])
        rows.append(
            {
                "concurrency": level,
                "direct_rps": d,
                "served_rps": s,
                "ratio": s / d,
                "direct_p50_ms": pct(lat["direct"], 0.5) * 1000,
                "served_p50_ms": pct(lat["served"], 0.5) * 1000,
                "direct_p99_ms": pct(lat["direct"], 0.99) * 1000,
                "served_p99_ms": pct(lat["served"], 0.99) * 1000,
            }
        )
        print(f"  concurrency {level}: done", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--requests", type=int, default=192)
    args = parser.parse_args()
    flags = ["--log-level", "warning", "--max-concurrent", "1024"]
    with start_echo_server(flags) as katan, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "router.yaml"
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
  keys: [{{key: bench-key-0000, name: bench}}]
"""
        )
        port = free_port()
        server = start_server(config, port)
        try:
            message = [{"role": "user", "content": "Summarise routing in one line."}]
            targets: dict[str, tuple[str, dict[str, object]]] = {
                "direct": (
                    f"{katan.base_url}/chat/completions",
                    {"model": katan.model, "messages": message},
                ),
                "served": (
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    {"model": "bench", "messages": message},
                ),
            }
            rows = asyncio.run(measure(targets, args.repeats, args.requests))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"\nllmrouter serve vs llm-katan direct ({os.cpu_count()} CPUs, {args.repeats} repeats)")
    head = (
        f"{'conc':>4}  {'direct rps':>10}  {'served rps':>10}  {'ratio':>5}  "
        f"{'p50 direct':>10}  {'p50 served':>10}  {'p50 +ms':>7}  "
        f"{'p99 direct':>10}  {'p99 served':>10}"
    )
    print(head)
    for row in rows:
        print(
            f"{row['concurrency']:>4}  {row['direct_rps']:>10.1f}  {row['served_rps']:>10.1f}  "
            f"{row['ratio']:>5.2f}  {row['direct_p50_ms']:>10.2f}  {row['served_p50_ms']:>10.2f}  "
            f"{row['served_p50_ms'] - row['direct_p50_ms']:>7.2f}  "
            f"{row['direct_p99_ms']:>10.2f}  {row['served_p99_ms']:>10.2f}"
        )
    at64 = rows[-1]["ratio"]
    overhead = rows[0]["served_p50_ms"] - rows[0]["direct_p50_ms"]
    print(f"target >= 0.90x at 64: {at64:.2f}x ({'met' if at64 >= 0.9 else 'NOT met'})")
    print(
        f"target p50 overhead <= 2 ms at 1: {overhead:.2f} ms "
        f"({'met' if overhead <= 2 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
