"""``examples/router.yaml`` as a user runs it: tiny local models built offline, an
OpenAI-compatible endpoint (a real llm-katan server), the CLI and the Python API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmrouter import CostAwareRouter, load_config, load_router, route_of
from llmrouter.cli import app
from llmrouter.testing import KatanServer, build_tiny_chat_model

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    build_tiny_chat_model(workdir / "tiny-chat", seed=0)
    build_tiny_chat_model(workdir / "tiny-coder", seed=1)
    return workdir


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch, demo_dir: Path, katan_server: KatanServer
) -> KatanServer:
    monkeypatch.setenv("LLMROUTER_DEMO_DIR", str(demo_dir))
    monkeypatch.setenv("OPENAI_BASE_URL", katan_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", katan_server.api_key)
    monkeypatch.setenv("OPENAI_MODEL", katan_server.model)
    return katan_server


def test_the_example_checks_and_loads_its_default_router(environment: KatanServer) -> None:
    result = CliRunner().invoke(app, ["check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    router = load_router(EXAMPLE)
    assert isinstance(router, CostAwareRouter) and router.router_name == "support-router"
    remote = load_config(EXAMPLE).build().models["remote"]
    assert remote.input_cost == 0.15 and remote.context_window == 128_000


def test_code_goes_to_the_remote_endpoint_through_the_cli(environment: KatanServer) -> None:
    result = CliRunner().invoke(
        app,
        ["run", str(EXAMPLE), "Write quicksort in Python", "--task", "code_generation", "--json"],
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    inner = answer["route"]["inner"]
    assert inner["router"] == "by-task" and inner["model"] == "remote"
    assert "Write quicksort in Python" in answer["content"]  # llm-katan echoes the prompt
    assert inner["cost_usd"] > 0  # priced at the remote's declared prices


def test_chat_goes_to_the_local_model_sync_async_and_streamed(environment: KatanServer) -> None:
    router = load_router(EXAMPLE)
    reply = router.invoke("Hello! How are you today?")
    assert route_of(reply).inner is not None
    assert route_of(reply).inner["model"] == "tiny-chat"
    chunks = list(router.stream("Hello again"))
    assert "".join(c.text for c in chunks)

    areply = asyncio.run(router.ainvoke("Summarize: the launch moved to Friday."))
    assert route_of(areply).inner["model"] == "tiny-chat"


def test_without_the_endpoint_code_falls_back_to_the_local_coder(
    monkeypatch: pytest.MonkeyPatch, demo_dir: Path
) -> None:
    monkeypatch.setenv("LLMROUTER_DEMO_DIR", str(demo_dir))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    reply = load_router(EXAMPLE).invoke("Write a python function", task="code_generation")
    inner = route_of(reply).inner
    assert inner is not None and inner["model"] == "tiny-coder"
    assert [a["model"] for a in inner["attempts"] if not a["ok"]] == ["remote", "remote"]
