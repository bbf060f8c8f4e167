"""``llmrouter batch`` through the real typer app: results, progress, exit codes, resume."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from llmrouter.cli import app
from llmrouter.config._cli import EXIT_CALL, EXIT_CONFIG
from llmrouter.testing import RedisServer

FAKE = "langchain_core.language_models:FakeListChatModel"
CONFIG = f"""
models:
  chat: {{factory: "{FAKE}", responses: [hello], tasks: [chat], input_cost: 1}}
  coder: {{factory: "{FAKE}", responses: ["def f(): pass"], tasks: [code_generation]}}
routers:
  by-task: {{type: task, routes: {{code_generation: coder}}, default: chat}}
  tight: {{type: cost, models: [chat], budget: {{usd: 0.000000001, on_exceeded: refuse}}}}
default: by-task
"""


def setup(tmp_path: Path, *rows: dict[str, object]) -> tuple[Path, Path, Path]:
    config = tmp_path / "router.yaml"
    config.write_text(CONFIG)
    requests = tmp_path / "in.jsonl"
    requests.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return config, requests, tmp_path / "out.jsonl"


def test_batch_writes_a_result_per_request_and_a_summary(tmp_path: Path) -> None:
    config, requests, out = setup(
        tmp_path,
        {"id": "a", "prompt": "hi"},
        {"id": "b", "prompt": "write it", "task": "code_generation"},
    )
    result = CliRunner().invoke(app, ["batch", str(config), str(requests), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 answered, 0 failed, 0 already done" in result.output
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert results["a"]["content"] == "hello" and results["a"]["model"] == "chat"
    assert results["b"]["model"] == "coder"
    again = CliRunner().invoke(app, ["batch", str(config), str(requests), "-o", str(out)])
    assert again.exit_code == 0 and "0 answered, 0 failed, 2 already done" in again.output


def test_failed_requests_exit_3(tmp_path: Path) -> None:
    config, requests, out = setup(tmp_path, {"id": "a", "prompt": "x" * 400})
    command = ["batch", str(config), str(requests), "--out", str(out), "--router", "tight"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == EXIT_CALL
    assert "1 requests failed (BudgetExceededError)" in result.output
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["error"] == "BudgetExceededError"


def test_a_bad_request_file_exits_2_naming_the_line(tmp_path: Path) -> None:
    config, requests, out = setup(tmp_path, {"id": "a", "prompt": "x"})
    requests.write_text(requests.read_text() + "{oops\n")
    result = CliRunner().invoke(app, ["batch", str(config), str(requests), "--out", str(out)])
    assert result.exit_code == EXIT_CONFIG and "in.jsonl:2: not JSON" in result.output
    assert not out.exists()  # nothing was asked


def test_celery_without_a_worker_exits_2_saying_how_to_start_one(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config, requests, out = setup(tmp_path, {"id": "a", "prompt": "hi"})
    broker = redis_server.url.rsplit("/", 1)[0] + "/9"  # no worker listens there
    command = ["batch", str(config), str(requests), "-o", str(out), "--celery", "--broker", broker]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == EXIT_CONFIG
    assert "no Celery worker answered" in result.output
    assert "celery -A llmrouter.integrations.celery worker" in result.output
    unreachable = [*command[:-1], "redis://127.0.0.1:9/0"]
    result = CliRunner().invoke(app, unreachable)
    assert result.exit_code == EXIT_CONFIG and "cannot reach the Celery broker" in result.output
