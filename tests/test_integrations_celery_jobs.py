"""Batch jobs on real Celery workers: a redis-server broker and result backend, a
worker process of llmrouter.integrations.celery, llm-katan as the model."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from langchain_core.messages import HumanMessage

from llmrouter.batch import BatchItem, read_results
from llmrouter.errors import ConfigurationError
from llmrouter.integrations.celery import TASK_NAME, check_workers, create_app, run_batch_on_celery
from llmrouter.testing import CeleryWorker, KatanServer, RedisServer, start_celery_worker


class Failing:
    """An OpenAI-compatible endpoint that answers every chat request with a 500
    and counts them (the worker is another process: the count is ours)."""

    def __init__(self) -> None:
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.hits += 1
                payload = b'{"error": {"message": "down", "type": "server_error"}}'
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def failing() -> Iterator[Failing]:
    server = Failing()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broker(redis_server: RedisServer) -> str:
    return redis_server.url.rsplit("/", 1)[0] + "/1"


@pytest.fixture(scope="module")
def worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    with start_celery_worker(
        broker, concurrency=2, workdir=tmp_path_factory.mktemp("celery")
    ) as running:
        yield running


@pytest.fixture(scope="module")
def config(
    katan_server: KatanServer, failing: Failing, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("config") / "router.yaml"
    path.write_text(
        f"""
models:
  echo:
    factory: openai_compatible
    model: {katan_server.model}
    base_url: {katan_server.base_url}
    api_key: {katan_server.api_key}
  down:
    factory: openai_compatible
    model: m
    base_url: {failing.base_url}
    api_key: sk-never-shown
default: main
routers:
  main: {{type: task, models: [echo], default: echo}}
  broken: {{type: task, models: [down], default: down, max_retries: 2, circuit_breaker: null}}
"""
    )
    return path


def items(n: int, prefix: str = "q") -> list[BatchItem]:
    return [BatchItem(f"{prefix}{i}", [HumanMessage(f"{prefix} number {i}")]) for i in range(n)]


def test_every_request_is_answered_by_a_worker_once(
    worker: CeleryWorker, broker: str, config: Path, katan_server: KatanServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    served = katan_server.requests_served()
    seen: list[str] = []
    report = run_batch_on_celery(
        items(12),
        out,
        config=config,
        app=create_app(broker),
        concurrency=4,
        on_result=lambda r: seen.append(r["id"]),
    )
    assert (report.answered, report.failed, report.skipped) == (12, 0, 0)
    results = read_results(out)
    assert sorted(results) == sorted(seen) == sorted(f"q{i}" for i in range(12))
    for key, result in results.items():
        assert result["ok"] and result["model"] == "echo"
        assert f"{key[0]} number {key[1:]}" in result["content"]
        assert result["route"]["router"] == "main"
    assert katan_server.requests_served() - served == 12
    assert not out.with_name("out.jsonl.tasks").exists()  # nothing left to wait for
    # the results were read and then forgotten: the result backend keeps nothing
    assert redis.Redis.from_url(broker).keys("celery-task-meta-*") == []


def test_a_failed_request_is_retried_by_the_router_only(
    worker: CeleryWorker, broker: str, config: Path, failing: Failing, tmp_path: Path
) -> None:
    before = failing.hits
    report = run_batch_on_celery(
        items(3), tmp_path / "out.jsonl", config=config, router="broken", app=create_app(broker)
    )
    assert (report.answered, report.failed) == (0, 3)
    assert set(report.failures.values()) == {"AllModelsFailedError"}
    # max_retries: 2 -> 3 attempts per request, all the router's: Celery adds none
    assert failing.hits - before == 9
    messages = [r["message"] for r in read_results(tmp_path / "out.jsonl").values()]
    assert all("sk-never-shown" not in m for m in messages)


def test_a_task_that_raises_on_the_worker_is_a_failed_result(
    worker: CeleryWorker, broker: str, tmp_path: Path
) -> None:
    missing = tmp_path / "not-there.yaml"
    out = tmp_path / "out.jsonl"
    app = create_app(broker)
    with pytest.raises(ConfigurationError, match="not found"):  # nothing is sent for it
        run_batch_on_celery(items(1), out, config=missing, app=app, worker_timeout=1)
    # a config on this machine but not where the worker looks: the task raises there
    task = app.tasks[TASK_NAME]
    result = task.delay({"id": "x", "prompt": "hi"}, config=str(missing)).get(
        timeout=30, propagate=False
    )
    assert isinstance(result, ConfigurationError) and "every worker needs" in str(result)


def test_a_job_stopped_midway_waits_for_the_tasks_it_sent(
    worker: CeleryWorker, broker: str, config: Path, katan_server: KatanServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    app = create_app(broker)
    served = katan_server.requests_served()

    def stop_after_three(result: dict[str, Any]) -> None:
        if len(read_results(out)) >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch_on_celery(
            items(16), out, config=config, app=app, concurrency=6, on_result=stop_after_three
        )
    sent = [json.loads(line) for line in out.with_name("out.jsonl.tasks").read_text().splitlines()]
    waiting = {e["id"] for e in sent if e["task"]} - {e["id"] for e in sent if not e["task"]}
    assert len(read_results(out)) == 3 and len(waiting) >= 3, "tasks were out when it stopped"
    report = run_batch_on_celery(items(16), out, config=config, app=app, concurrency=6)
    assert (report.skipped, report.answered) == (3, 13)
    assert sorted(read_results(out)) == sorted(f"q{i}" for i in range(16))
    assert katan_server.requests_served() - served == 16  # no request was sent twice


def test_without_a_worker_the_job_says_how_to_start_one(
    redis_server: RedisServer, config: Path, tmp_path: Path
) -> None:
    lonely = create_app(redis_server.url.rsplit("/", 1)[0] + "/7")  # no worker listens there
    start = re.escape("celery -A llmrouter.integrations.celery worker")
    with pytest.raises(ConfigurationError, match=start):
        run_batch_on_celery(
            items(1), tmp_path / "o.jsonl", config=config, app=lonely, worker_timeout=0.5
        )
    assert not (tmp_path / "o.jsonl").exists() or (tmp_path / "o.jsonl").read_text() == ""


def test_an_unreachable_broker_is_named_without_its_password(tmp_path: Path) -> None:
    app = create_app("redis://:hunter2@127.0.0.1:9/0")
    with pytest.raises(ConfigurationError, match="cannot reach the Celery broker") as info:
        check_workers(app, timeout=0.5)
    assert "hunter2" not in str(info.value)


def test_the_worker_answers_a_ping(worker: CeleryWorker, broker: str) -> None:
    assert check_workers(create_app(broker), timeout=5) == [worker.name]


def test_an_outage_is_waited_out_up_to_its_limit() -> None:
    from llmrouter.errors import StateUnavailableError
    from llmrouter.integrations.celery._jobs import _Patience

    app = create_app("redis://:hunter2@127.0.0.1:9/0")
    answers: list[object] = [OSError("down"), ConnectionRefusedError("down"), "back"]

    def flaky() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert _Patience(app, 5.0)(flaky) == "back"  # two failures, half a second apart

    def down() -> object:
        raise OSError("still down")

    started = time.monotonic()
    with pytest.raises(StateUnavailableError, match="run the same job again") as info:
        _Patience(app, 0.6)(down)
    assert 0.6 <= time.monotonic() - started < 3 and "hunter2" not in str(info.value)
    with pytest.raises(KeyError):  # not an outage: raised at once
        _Patience(app, 60)(lambda: {}["missing"])
