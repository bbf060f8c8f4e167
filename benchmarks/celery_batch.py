"""Batch jobs on Celery: throughput with 1 worker vs 4 workers, over llm-katan.

What it measures
    One ``llmrouter batch`` job (`llmrouter.integrations.celery.run_batch_on_celery`)
    of ``--requests`` prompts (default 96), sent to a ``ModelRouter`` over llm-katan's
    echo backend with ``--latency-ms`` per answer (default 200 ms: a model that takes
    its time, as a real one does), by Celery workers on a redis-server broker.

    Four workers (``--concurrency`` pool processes each, default 2) run the whole
    time. A "1 worker" round tells three of them to stop taking tasks (Celery's
    ``cancel_consumer``), a "4 workers" round lets them all take tasks
    (``add_consumer``), so both settings see the same processes and machine load;
    the rounds alternate, ``--repeats`` times each (default 3), after one untimed
    warm-up job per setting (each pool process builds its router once).

    A round's wall time runs from the first task sent to the last result written.
    Reported per setting: median requests per second over the rounds, and the
    ratio 4 workers / 1 worker. For scale, the same job run in this process by
    `llmrouter.batch.run_batch` at the same number of requests in flight as the
    4 workers' pool processes (the local row) shows what the tasks' trip through
    Redis costs.

    llm-katan answers one request at a time per process (its delay blocks), so it
    runs ``--katan-workers`` processes (default 32). A process that accepted two
    connections still answers them one after the other, so some rounds lose a
    few slots to such collisions: compare medians.

Run
    .venv/bin/python benchmarks/celery_batch.py [--requests 96] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from rich.console import Console
from rich.table import Table

from llmrouter.batch import BatchItem, run_batch
from llmrouter.config import load_router
from llmrouter.integrations.celery import create_app, run_batch_on_celery
from llmrouter.testing import start_celery_worker, start_echo_server, start_redis_server


def items(n: int, round_: str) -> list[BatchItem]:
    return [BatchItem(f"{round_}-{i}", [HumanMessage(f"question {i}")]) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--katan-workers", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    console = Console()
    rates: dict[str, list[float]] = {"1 worker": [], "4 workers": [], "local": []}
    with (
        tempfile.TemporaryDirectory(prefix="celery-bench-") as folder,
        start_redis_server(fsync="everysec") as redis,
        start_echo_server(
            ["--latency-ms", str(args.latency_ms), "--workers", str(args.katan_workers)]
        ) as katan,
    ):
        work = Path(folder)
        config = work / "router.yaml"
        config.write_text(
            f"""
models:
  echo: {{factory: openai_compatible, model: {katan.model}, base_url: {katan.base_url},
          api_key: {katan.api_key}, timeout: 30}}
routers:
  main: {{type: task, models: [echo], default: echo}}
"""
        )
        broker = redis.url
        app = create_app(broker)
        names = [f"w{i}" for i in range(1, 5)]
        with contextlib.ExitStack() as stack:
            workers = [
                stack.enter_context(
                    start_celery_worker(broker, name=n, concurrency=args.concurrency, workdir=work)
                )
                for n in names
            ]
            idle = [w.name for w in workers[1:]]

            def job(label: str, n: int) -> float:
                out = work / f"{time.time_ns()}.jsonl"
                batch = items(n, f"{label}{time.time_ns()}")
                if label == "local":
                    router = load_router(config)
                    started = time.perf_counter()
                    asyncio.run(run_batch(router, batch, out, concurrency=4 * args.concurrency))
                    return n / (time.perf_counter() - started)
                if label == "1 worker":
                    app.control.cancel_consumer("celery", destination=idle, reply=True)
                else:
                    app.control.add_consumer("celery", destination=idle, reply=True)
                started = time.perf_counter()
                report = run_batch_on_celery(batch, out, config=config, app=app, concurrency=64)
                assert report.answered == n, report
                return n / (time.perf_counter() - started)

            for label in rates:  # warm-up: every pool process builds its router
                job(label, 8 * args.concurrency)
            for _ in range(args.repeats):
                for label in rates:
                    rates[label].append(job(label, args.requests))
                    console.print(f"  {label:>9}: {rates[label][-1]:6.1f} requests/s")
    median = {label: statistics.median(values) for label, values in rates.items()}
    table = Table(title=f"{args.requests} requests, {args.latency_ms} ms per answer")
    for column in ("setting", "slots", "requests/s (median)", "rounds"):
        table.add_column(column)
    slots = {"1 worker": args.concurrency, "4 workers": 4 * args.concurrency}
    slots["local"] = 4 * args.concurrency
    for label, value in median.items():
        rounds = ", ".join(f"{v:.1f}" for v in rates[label])
        table.add_row(label, str(slots[label]), f"{value:.1f}", rounds)
    console.print(table)
    ratio = median["4 workers"] / median["1 worker"]
    ideal = 1000 / args.latency_ms
    console.print(
        f"4 workers / 1 worker: {ratio:.2f}x  (each slot's ceiling: {ideal:.1f} requests/s; "
        f"4 workers reach {median['4 workers'] / (slots['4 workers'] * ideal):.0%} of "
        f"theirs, 1 worker {median['1 worker'] / (slots['1 worker'] * ideal):.0%}); "
        f"Celery / local at the same slots: {median['4 workers'] / median['local']:.2f}x"
    )
    if args.json:
        numbers: dict[str, Any] = {"rates": rates, "median": median, "ratio": ratio}
        args.json.write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
