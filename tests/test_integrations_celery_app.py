"""The ``llmrouter.route`` task body and the Celery app's settings (no worker here;
tests/test_integrations_celery_jobs.py runs real workers)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from celery import Celery

from llmrouter.errors import ConfigurationError
from llmrouter.integrations.celery import (
    DEFAULT_BROKER,
    TASK_NAME,
    create_app,
    register,
    route_request,
)

FAKE = "langchain_core.language_models:FakeListChatModel"


def write_config(path: Path, answer: str, *, failing: bool = False) -> Path:
    model = (
        f'{{factory: "{FAKE}", responses: ["{answer}"]}}'
        if not failing
        else '{factory: openai_compatible, model: m, base_url: "http://127.0.0.1:9/v1", '
        "api_key: sk-test-secret-123, timeout: 1}"
    )
    path.write_text(
        f"""
models:
  fake: {model}
default: main
routers:
  main: {{type: task, models: [fake], default: fake, max_retries: 1}}
  other: {{type: task, models: [fake], default: fake}}
"""
    )
    return path


def test_a_request_gets_its_result_line_as_plain_json(tmp_path: Path) -> None:
    config = write_config(tmp_path / "router.yaml", "hello there")
    line = route_request(
        {"id": "q1", "messages": [{"role": "user", "content": "hi"}], "task": "chat"},
        router="other",
        config=str(config),
    )
    assert (line["id"], line["ok"], line["content"], line["model"]) == (
        "q1",
        True,
        "hello there",
        "fake",
    )
    assert line["route"]["router"] == "other" and line["route"]["task"] == "chat"
    assert json.loads(json.dumps(line)) == line  # what a JSON result backend stores


def test_a_failed_routed_call_is_a_failed_result_not_an_exception(tmp_path: Path) -> None:
    config = write_config(tmp_path / "router.yaml", "", failing=True)
    line = route_request({"id": "q2", "prompt": "hi"}, config=str(config))
    assert line["ok"] is False and line["error"] == "AllModelsFailedError"
    assert "sk-test-secret-123" not in line["message"]  # redacted as in every record


def test_the_config_comes_from_the_workers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "router.yaml", "from env")
    monkeypatch.setenv("LLMROUTER_CONFIG", str(config))
    assert route_request({"id": "a", "prompt": "x"})["content"] == "from env"
    monkeypatch.delenv("LLMROUTER_CONFIG")
    with pytest.raises(ConfigurationError, match="LLMROUTER_CONFIG"):
        route_request({"id": "a", "prompt": "x"})


def test_a_config_missing_on_the_worker_says_where_it_must_be(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="every worker needs the config file"):
        route_request({"id": "a", "prompt": "x"}, config=str(tmp_path / "nope.yaml"))


def test_an_edited_config_is_built_again(tmp_path: Path) -> None:
    config = write_config(tmp_path / "router.yaml", "first")
    assert route_request({"id": "a", "prompt": "x"}, config=str(config))["content"] == "first"
    write_config(config, "second")
    stamp = time.time() + 5  # a new modification time even on a coarse clock
    os.utime(config, (stamp, stamp))
    assert route_request({"id": "a", "prompt": "x"}, config=str(config))["content"] == "second"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"prompt": "no id"}, "with an id"),
        ("just text", "with an id"),
        ({"id": "a", "prompt": "x", "tsak": "chat"}, "unknown keys"),
        ({"id": "a"}, "either prompt"),
    ],
)
def test_a_malformed_request_is_refused(tmp_path: Path, request_: object, message: str) -> None:
    config = write_config(tmp_path / "router.yaml", "x")
    with pytest.raises(ConfigurationError, match=message):
        route_request(request_, config=str(config))  # type: ignore[arg-type]


def test_the_task_acks_late_and_is_never_retried_by_celery() -> None:
    app = Celery("mine", broker="memory://", set_as_current=False)
    task = register(app)
    assert register(app) is task  # registering twice keeps the one task
    assert (task.name, task.acks_late, task.reject_on_worker_lost, task.max_retries) == (
        TASK_NAME,
        True,
        True,
        0,
    )


def test_the_app_reads_the_standard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    monkeypatch.delenv("LLMROUTER_CELERY_VISIBILITY_TIMEOUT", raising=False)
    plain = create_app()
    assert plain.conf.broker_url == DEFAULT_BROKER
    assert plain.conf.broker_transport_options == {"visibility_timeout": 3600.0}
    assert plain.conf.worker_prefetch_multiplier == 1 and plain.conf.accept_content == ["json"]
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6390/3")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6390/4")
    monkeypatch.setenv("LLMROUTER_CELERY_VISIBILITY_TIMEOUT", "6")
    app = create_app()
    assert app.conf.broker_url == "redis://127.0.0.1:6390/3"
    assert app.conf.result_backend == "redis://127.0.0.1:6390/4"
    # a short timeout is also looked for often: a killed worker's task comes back quickly
    assert app.conf.broker_transport_options == {
        "visibility_timeout": 6.0,
        "unacked_restore_interval": 2,
        "unacked_restore_throttle": 1,
    }


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_visibility_timeout_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LLMROUTER_CELERY_VISIBILITY_TIMEOUT", value)
    with pytest.raises(ConfigurationError, match=r"LLMROUTER_CELERY_VISIBILITY_TIMEOUT|positive"):
        create_app("memory://")


def test_a_pool_process_builds_the_workers_config_when_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from llmrouter.integrations.celery import _app

    config = write_config(tmp_path / "router.yaml", "warm")
    _app._import_before_forking()  # what the worker's main process does before forking
    _app._built.cache_clear()
    monkeypatch.setenv("LLMROUTER_CONFIG", str(config))
    _app._build_the_workers_config()
    assert _app._built.cache_info().currsize == 1
    route_request({"id": "a", "prompt": "x"})
    assert _app._built.cache_info().hits >= 1  # the task found it built
    monkeypatch.setenv("LLMROUTER_CONFIG", str(tmp_path / "missing.yaml"))
    _app._build_the_workers_config()  # a broken config is the tasks' to report
    assert "could not be built" in caplog.text
