"""Celery workers as they fail in production: a worker killed with SIGKILL mid-job
(its pool processes with it), and ``llmrouter batch --celery`` over two workers
that share one budget on Redis. Real redis-server, real workers, llm-katan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _fixtures.katan import KatanFactory
from langchain_core.messages import HumanMessage

from llmrouter.batch import BatchItem, BatchReport, read_results
from llmrouter.config import load_router
from llmrouter.integrations.celery import create_app, run_batch_on_celery
from llmrouter.testing import (
    CeleryWorker,
    KatanServer,
    RedisServer,
    start_celery_worker,
    start_redis_server,
)

QUICK_REDELIVERY = {"LLMROUTER_CELERY_VISIBILITY_TIMEOUT": "8"}
"""A killed worker's tasks go to another after 8 s: well above a task's time here even
on a loaded machine (a task running longer than this would be handed out twice)."""


def write_config(
    path: Path,
    server: KatanServer,
    extra: str = "",
    router: str = "{type: task, models: [echo], default: echo}",
) -> Path:
    path.write_text(
        f"""
{extra}
models:
  echo:
    factory: openai_compatible
    model: {server.model}
    base_url: {server.base_url}
    api_key: {server.api_key}
    input_cost: 1.0
    output_cost: 2.0
routers:
  main: {router}
"""
    )
    return path


def test_a_worker_killed_mid_job_loses_no_request(
    redis_server: RedisServer, katan_factory: KatanFactory, tmp_path: Path
) -> None:
    slow = katan_factory(["--latency-ms", "200"])  # one answer at a time, 0.2 s each
    config = write_config(tmp_path / "router.yaml", slow)
    broker = redis_server.url.rsplit("/", 1)[0] + "/2"
    out = tmp_path / "out.jsonl"
    items = [BatchItem(f"r{i}", [HumanMessage(f"n{i}")]) for i in range(24)]
    served = slow.requests_served()
    first = CeleryWorker(broker, "first", tmp_path, concurrency=2, env=QUICK_REDELIVERY)
    first.start()
    reports: list[BatchReport] = []
    job = threading.Thread(
        target=lambda: reports.append(
            run_batch_on_celery(
                items, out, config=config, app=create_app(broker, visibility_timeout=8)
            )
        )
    )
    job.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(read_results(out)) < 4:
            time.sleep(0.05)
        first.kill()  # SIGKILL to the worker and its pool: the tasks in hand are not acked
        done_by_first = len(read_results(out))
        assert 4 <= done_by_first < 24, "killed mid-job"
        with start_celery_worker(
            broker, name="second", concurrency=2, env=QUICK_REDELIVERY, workdir=tmp_path
        ) as second:
            job.join(timeout=120)
            assert not job.is_alive(), second.log()
    finally:
        first.kill()
        job.join(timeout=1)
    (report,) = reports
    results = read_results(out)
    assert (report.answered, report.failed) == (24, 0)
    assert sorted(results) == sorted(item.id for item in items)
    assert all(r["ok"] and r["content"] for r in results.values())
    lines = out.read_text().splitlines()
    assert len(lines) == 24  # one line per request: no request answered twice in the output
    # only the (at most 2) tasks the killed worker had in hand can have been asked twice
    asked = slow.requests_served() - served
    print(f"\nworker killed after {done_by_first} of 24 results: 24 results, katan asked {asked}x")
    assert 24 <= asked <= 26, asked


def test_batch_on_two_workers_charges_one_shared_budget(
    redis_server: RedisServer, katan_server: KatanServer, tmp_path: Path
) -> None:
    base = redis_server.url.rsplit("/", 1)[0]
    config = write_config(
        tmp_path / "router.yaml",
        katan_server,
        extra=f"state: {base}/3",
        router="{type: cost, models: [echo], budget: {usd: 10, per: day}}",
    )
    requests = tmp_path / "in.jsonl"
    requests.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(20)))
    out = tmp_path / "out.jsonl"
    broker = f"{base}/4"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    command = [
        str(Path(sys.executable).with_name("llmrouter")), "batch", str(config), str(requests),
        "--out", str(out), "--celery", "--broker", broker, "--concurrency", "6",
    ]  # fmt: skip
    with (
        start_celery_worker(broker, name="a", concurrency=1, workdir=tmp_path) as a,
        start_celery_worker(broker, name="b", concurrency=1, workdir=tmp_path) as b,
    ):
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        logs = a.log(), b.log()
    assert run.returncode == 0, run.stderr
    assert "20 answered, 0 failed, 0 already done" in run.stderr
    results: dict[str, dict[str, Any]] = read_results(out)
    assert sorted(results, key=int) == [str(i) for i in range(1, 21)]  # ids: line numbers
    assert all(log.count("succeeded in") > 0 for log in logs), "both workers took tasks"
    spent = sum(r["cost_usd"] for r in results.values())
    assert spent > 0
    (status,) = load_router(config).budget_status()  # the ledger both workers charged
    assert abs(status.spent_usd - spent) < 1e-9 and status.open_reservations == 0


def test_a_redis_restart_mid_job_loses_no_request(
    katan_factory: KatanFactory, tmp_path: Path
) -> None:
    """The broker and result backend (one redis-server, every write synced) killed with
    SIGKILL and started again mid-job: the job waits for it, the workers reconnect, a
    result that could not be stored meanwhile is stored when Redis is back."""
    slow = katan_factory(["--latency-ms", "100"])
    config = write_config(tmp_path / "router.yaml", slow)
    out = tmp_path / "out.jsonl"
    items = [BatchItem(f"r{i}", [HumanMessage(f"n{i}")]) for i in range(30)]
    reports: list[BatchReport] = []
    with (
        start_redis_server() as redis,
        start_celery_worker(redis.url, concurrency=2, workdir=tmp_path) as worker,
    ):
        job = threading.Thread(
            target=lambda: reports.append(
                run_batch_on_celery(items, out, config=config, app=create_app(redis.url))
            )
        )
        job.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(read_results(out)) < 5:
            time.sleep(0.05)
        redis.kill()
        time.sleep(1.0)  # tasks finish meanwhile: their results wait for Redis
        redis.start()
        job.join(timeout=120)
        assert not job.is_alive(), worker.log()
    (report,) = reports
    assert (report.answered, report.failed) == (30, 0), report.failures
    assert sorted(read_results(out)) == sorted(item.id for item in items)
    assert len(out.read_text().splitlines()) == 30
