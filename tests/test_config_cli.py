"""The config-file commands through the real ``llmrouter`` typer app: check, schema,
run, chat, models list, and their exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmrouter.cli import app
from llmrouter.config._cli import EXIT_CALL, EXIT_CONFIG

FAKE = "langchain_core.language_models:FakeListChatModel"

CONFIG = f"""
models:
  chat: {{factory: "{FAKE}", responses: [hello from chat], tasks: [chat], input_cost: 1}}
  coder: {{factory: "{FAKE}", responses: ["def f(): pass"], tasks: [code_generation]}}
routers:
  by-task:
    type: task
    routes: {{code_generation: coder}}
    default: chat
    classifier: {{type: keyword, rules: {{code_generation: [python]}}}}
  cheap:
    type: cost
    models: [by-task, chat]
default: cheap
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(CONFIG)
    return path


def test_check_lists_the_routers_and_calls_nothing(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(app, ["check", str(config)])
    assert result.exit_code == 0, result.output
    assert "by-task" in result.output and "CostAwareRouter" in result.output
    assert "2 models, 2 routers; no model was called" in result.output


def test_check_of_a_bad_file_exits_2_naming_the_line(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(CONFIG.replace("    models: [by-task, chat]", "    modles: [by-task, chat]"))
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == EXIT_CONFIG
    line = CONFIG.splitlines().index("    models: [by-task, chat]") + 1
    assert f"bad.yaml:{line}" in result.output
    assert "did you mean 'models'?" in result.output


def test_check_of_a_missing_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == EXIT_CONFIG
    assert "no such file" in result.output


def test_schema_prints_a_json_schema_and_writes_a_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert {"models", "routers", "default"} <= set(schema["properties"])
    out = tmp_path / "schema.json"
    assert runner.invoke(app, ["schema", "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == schema


def test_run_prints_the_answer_on_stdout_and_the_route_on_stderr(
    runner: CliRunner, config: Path
) -> None:
    result = runner.invoke(app, ["run", str(config), "please write python"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "def f(): pass\n"
    assert "model by-task -> coder" in result.stderr


def test_run_json_names_router_and_task(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(
        app,
        ["run", str(config), "hi", "--router", "by-task", "--task", "code_generation", "--json"],
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["content"] == "def f(): pass"
    assert answer["route"]["router"] == "by-task"
    assert answer["route"]["task"] == "code_generation"
    assert answer["route"]["task_source"] == "explicit"


def test_run_streams_and_reads_the_prompt_from_stdin(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(app, ["run", str(config), "-", "--stream"], input="just chatting\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hello from chat"
    assert "model by-task -> chat" in result.stderr


def test_run_with_an_unknown_router_exits_2(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(app, ["run", str(config), "hi", "--router", "by-tsak"])
    assert result.exit_code == EXIT_CONFIG
    assert "did you mean 'by-task'?" in result.output


def test_run_exits_3_when_every_model_fails(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "down.yaml"
    path.write_text(
        """
models:
  down:
    factory: openai_compatible
    model: gpt-4o-mini
    base_url: http://127.0.0.1:9/v1
    api_key: sk-test
    retry: {attempts: 1}
routers:
  only: {type: cost, models: [down]}
"""
    )
    result = runner.invoke(app, ["run", str(path), "hi"])
    assert result.exit_code == EXIT_CALL
    assert "AllModelsFailedError" in result.output


def test_chat_keeps_the_task_and_shows_each_route(runner: CliRunner, config: Path) -> None:
    session = "hello\n/task code_generation\nanything\n/reset\n/task\nagain\n/exit\n"
    result = runner.invoke(app, ["chat", str(config), "--router", "by-task"], input=session)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.count("-> model chat") == 2 and out.count("-> model coder") == 1
    assert "(task: code_generation)" in out and "(conversation cleared)" in out
    assert "session cost: $" in out


def test_models_list_shows_prices_tasks_and_breaker_state(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(app, ["models", "list", str(config)])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert set(rows) >= {"chat", "coder"}
    assert "FakeListChatModel" in rows["chat"] and "code_generation" in rows["coder"]
    assert "closed" in rows["chat"]


def test_every_config_command_has_help(runner: CliRunner) -> None:
    for command in (["check"], ["schema"], ["run"], ["chat"], ["models", "list"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_serve_puts_the_model_calls_on_aiohttp(
    runner: CliRunner, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    import uvicorn

    from llmrouter.models import _http

    seen: dict[str, object] = {}

    def run(app: object, **options: object) -> None:  # instead of serving
        seen.update(options, aiohttp=_http._aiohttp, app=app)

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's handler
    monkeypatch.setattr(_http, "_aiohttp", False)
    result = runner.invoke(app, ["serve", str(config), "--port", "8089", "--no-log"])
    assert result.exit_code == 0, result.output
    assert seen["aiohttp"] is True and seen["port"] == 8089 and seen["app"] is not None
