"""The official ``openai`` client, unmodified, against ``llmrouter serve``.

The server (``routed_server``: a config file built with ``load_config``, served
by uvicorn in a thread) routes ``support-router`` to llm-katan's echo backend,
which answers ``[echo] model=... time=<now> ...\\nUser: <prompt>`` and counts
words as tokens. The last tests start the real ``llmrouter serve`` command and
stop it with SIGTERM while a stream is in flight.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from _fixtures.katan import KatanFactory
from _fixtures.serve import (
    API_KEY,
    LIMITED_KEY,
    RoutedServer,
    free_port,
    routed_config,
    wait_healthy,
)
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk

PROMPT = "Which plan fits a team of five?"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def user(text: str = PROMPT) -> list[Any]:
    return [{"role": "user", "content": text}]


def stable(text: str | None) -> str:
    """llm-katan's answer without its timestamp (``time=2026-01-01T00:00:00Z``)."""
    return re.sub(r"time=\S+", "time=<t>", text or "")


@pytest.fixture(scope="module")
def client(routed_server: RoutedServer) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=routed_server.base_url, api_key=routed_server.api_key, max_retries=0, timeout=30
    ) as c:
        yield c


@dataclass
class Streamed:
    """What a client saw of one stream."""

    chunks: list[ChatCompletionChunk]

    @property
    def content(self) -> str:
        return "".join(c.choices[0].delta.content or "" for c in self.chunks if c.choices)

    @property
    def usages(self) -> list[Any]:
        return [c.usage for c in self.chunks if c.usage is not None]

    @property
    def finish_reasons(self) -> list[str]:
        return [
            c.choices[0].finish_reason
            for c in self.chunks
            if c.choices and c.choices[0].finish_reason
        ]


def stream(client: OpenAI, **kwargs: Any) -> Streamed:
    with client.chat.completions.create(stream=True, **kwargs) as events:
        return Streamed(list(events))


def usage_of(completion: ChatCompletion) -> tuple[int, int, int]:
    usage = completion.usage
    assert usage is not None
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


# ------------------------------------------------------------ completions


def test_create_echoes_the_prompt_with_usage_and_route(
    client: OpenAI, routed_server: RoutedServer
) -> None:
    reply = client.chat.completions.create(model=routed_server.router, messages=user())

    assert reply.object == "chat.completion" and reply.model == "support-router"
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content or ""
    assert content.startswith("[echo] model=tiny-echo") and content.endswith(f"User: {PROMPT}")
    prompt, completion, total = usage_of(reply)
    assert prompt == len(PROMPT.split())  # llm-katan counts words
    assert completion == len(content.split()) and total == prompt + completion

    route = (reply.model_extra or {})["route"]  # the extra field, kept by the client
    assert route["router"] == "support-router" and route["model"] == "echo"
    assert route["router_type"] == "CostAwareRouter" and route["streamed"] is False
    assert [a["model"] for a in route["attempts"]] == ["echo"]
    assert route["usage"]["input_tokens"] == prompt
    # priced at the config's 0.15 / 0.60 USD per million tokens
    assert route["cost_usd"] == pytest.approx((0.15 * prompt + 0.60 * completion) / 1e6)


async def test_async_create(routed_server: RoutedServer) -> None:
    async with AsyncOpenAI(
        base_url=routed_server.base_url, api_key=routed_server.api_key, max_retries=0
    ) as aclient:
        reply = await aclient.chat.completions.create(
            model=routed_server.router, messages=user("async hello"), max_tokens=32
        )
    content = reply.choices[0].message.content or ""
    assert content.endswith("User: async hello") and "max_tokens=32" in content
    assert min(usage_of(reply)) > 0
    assert (reply.model_extra or {})["route"]["model"] == "echo"


def test_a_model_is_served_by_its_own_name(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="echo", messages=user())
    assert reply.model == "echo"
    assert (reply.choices[0].message.content or "").endswith(f"User: {PROMPT}")
    assert (reply.model_extra or {})["route"]["model"] == "echo"


def test_call_parameters_reach_the_backend(client: OpenAI, routed_server: RoutedServer) -> None:
    reply = client.chat.completions.create(
        model=routed_server.router,
        messages=[{"role": "system", "content": "Be brief."}, *user()],
        max_completion_tokens=40,
        temperature=0.25,
        stop=["\n\n"],
        seed=7,
    )
    content = reply.choices[0].message.content or ""
    assert "messages=2 max_tokens=40 temperature=0.25" in content  # as llm-katan received them


@pytest.mark.parametrize(
    "stream_options", [None, {"include_usage": True}], ids=["plain", "include_usage"]
)
def test_streaming_matches_the_non_streamed_answer(
    client: OpenAI, routed_server: RoutedServer, stream_options: Any
) -> None:
    kwargs: dict[str, Any] = {"model": routed_server.router, "messages": user(), "max_tokens": 64}
    reference = client.chat.completions.create(**kwargs)
    extra = {"stream_options": stream_options} if stream_options else {}
    seen = stream(client, **kwargs, **extra)

    assert len(seen.chunks) > 3  # really streamed, not one blob
    assert {c.object for c in seen.chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in seen.chunks}) == 1
    assert seen.chunks[0].choices[0].delta.role == "assistant"
    assert stable(seen.content) == stable(reference.choices[0].message.content)
    assert seen.content.endswith(f"User: {PROMPT}")
    assert seen.finish_reasons == ["stop"]

    assert len(seen.usages) == 1  # exactly once, whether asked for or not
    usage = seen.usages[0]
    expected = usage_of(reference)  # the timestamp changes no word count
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == expected
    last = seen.chunks[-1]
    assert last.usage is usage
    if stream_options:  # OpenAI's form: a last chunk with no choices
        assert last.choices == []
        route = (seen.chunks[-2].model_extra or {})["route"]
    else:
        assert last.choices[0].finish_reason == "stop"
        route = (last.model_extra or {})["route"]
    assert route["model"] == "echo" and route["streamed"] is True


def test_models_list(client: OpenAI, routed_server: RoutedServer) -> None:
    models = client.models.list()
    assert [m.id for m in models] == ["support-router", "dead-router", "echo", "dead"]
    assert [(m.model_extra or {}).get("kind") for m in models] == ["router"] * 2 + ["model"] * 2

    with OpenAI(base_url=routed_server.base_url, api_key=LIMITED_KEY, max_retries=0) as limited:
        assert [m.id for m in limited.models.list()] == ["support-router"]


def test_raw_response_headers(client: OpenAI, routed_server: RoutedServer) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=routed_server.router, messages=user()
    )
    assert raw.status_code == 200
    assert raw.headers["x-llmrouter-model"] == "echo"
    assert raw.headers["x-llmrouter-router"] == "support-router"
    assert raw.headers["x-llmrouter-attempts"] == "1"
    assert float(raw.headers["x-llmrouter-latency-ms"]) > 0
    route = (raw.parse().model_extra or {})["route"]
    assert raw.headers["x-llmrouter-request-id"] == route["request_id"]
    assert float(raw.headers["x-llmrouter-cost-usd"]) == pytest.approx(route["cost_usd"], abs=1e-8)


# ------------------------------------------------------------ tools


def test_tools_reach_the_backend(client: OpenAI, routed_server: RoutedServer) -> None:
    # llm-katan answers any request with tools by calling the first one (dummy arguments)
    for choice in ("auto", "required", {"type": "function", "function": {"name": "get_weather"}}):
        reply = client.chat.completions.create(
            model=routed_server.router,
            messages=user("What is the weather in Lyon?"),
            tools=[WEATHER_TOOL],
            tool_choice=choice,  # type: ignore[arg-type]
        )
        message = reply.choices[0]
        assert message.finish_reason == "tool_calls"
        (call,) = message.message.tool_calls or []
        assert call.type == "function" and call.id
        assert call.function.name == "get_weather"
        assert isinstance(json.loads(call.function.arguments)["city"], str)
        assert (reply.model_extra or {})["route"]["model"] == "echo"


def test_a_tool_result_conversation_reaches_the_backend(
    client: OpenAI, routed_server: RoutedServer
) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
    }
    reply = client.chat.completions.create(
        model=routed_server.router,
        messages=[
            {"role": "user", "content": "What is the weather in Lyon?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 24 C"},
        ],
    )
    content = reply.choices[0].message.content or ""
    assert "messages=3" in content and content.endswith("User: What is the weather in Lyon?")


def test_a_stream_that_sends_nothing_is_an_error(
    client: OpenAI, routed_server: RoutedServer
) -> None:
    # llm-katan answers a streamed tool request with a non-streamed body, which the
    # router's ChatOpenAI reads as an empty stream: a failed attempt (EmptyStreamError),
    # so with no other model the request fails before its first chunk, with a status
    with pytest.raises(openai.APIStatusError) as caught:
        stream(client, model=routed_server.router, messages=user(), tools=[WEATHER_TOOL])
    assert caught.value.status_code == 503
    assert "EmptyStreamError" in caught.value.message


# ------------------------------------------------------------ errors


def test_a_wrong_key_is_an_authentication_error(routed_server: RoutedServer) -> None:
    with OpenAI(base_url=routed_server.base_url, api_key="sk-wrong-0123456", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as caught:
            c.chat.completions.create(model=routed_server.router, messages=user())
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            c.models.list()


def test_a_key_limited_to_a_router_may_not_use_another(routed_server: RoutedServer) -> None:
    with OpenAI(base_url=routed_server.base_url, api_key=LIMITED_KEY, max_retries=0) as c:
        assert c.chat.completions.create(model=routed_server.router, messages=user()).choices
        with pytest.raises(openai.PermissionDeniedError) as caught:
            c.chat.completions.create(model="echo", messages=user())
    assert caught.value.status_code == 403 and caught.value.param == "model"


def test_an_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nope", messages=user())
    error = caught.value
    assert error.status_code == 404 and error.code == "model_not_found" and error.param == "model"
    assert "support-router" in error.message  # names what the server has


def test_an_unknown_parameter_is_a_bad_request(client: OpenAI, routed_server: RoutedServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=routed_server.router, messages=user(), extra_body={"frobnicate": True}
        )
    error = caught.value
    assert error.status_code == 400 and error.param == "frobnicate"
    assert "unknown parameter" in error.message


def test_an_invalid_value_is_a_bad_request(client: OpenAI, routed_server: RoutedServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=routed_server.router, messages=user(), temperature=5)
    assert caught.value.param == "temperature"


@pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])
def test_an_unreachable_backend_is_503(
    client: OpenAI, routed_server: RoutedServer, streamed: bool
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:  # 5xx; 503 here
        if streamed:  # the status comes before any chunk: the first is awaited first
            stream(client, model=routed_server.dead_router, messages=user())
        else:
            client.chat.completions.create(model=routed_server.dead_router, messages=user())
    error = caught.value
    assert isinstance(error, openai.APIStatusError) and error.status_code == 503
    assert error.code == "all_models_failed" and error.type == "service_unavailable"
    assert "dead" in error.message and "OpenAIConnectionError" in error.message
    assert int(error.response.headers["retry-after"]) >= 1


# ------------------------------------------------------------ the command, and SIGTERM

SHUTDOWN_TIMEOUT = 10.0


@dataclass
class SigtermRun:
    """`llmrouter serve` answering one stream, then SIGTERM during a second one."""

    port: int
    log: str
    first: Streamed
    in_flight: Streamed
    content_before_signal: str
    returncode: int | None
    exit_seconds: float


def _serve_command(config: Path, port: int) -> list[str]:
    script = Path(sys.executable).with_name("llmrouter")
    if script.exists():
        return [str(script), "serve", str(config), "--port", str(port)]
    launch = "from llmrouter.cli import app; app()"
    return [sys.executable, "-c", launch, "serve", str(config), "--port", str(port)]


@pytest.fixture(scope="module")
def sigterm_run(
    katan_factory: KatanFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SigtermRun]:
    # a paced backend (20 ms between 4-character chunks): a stream lasts ~0.7 s
    slow = katan_factory(["--itl-ms", "20"])
    workdir = tmp_path_factory.mktemp("serve-cli")
    config = workdir / "router.yaml"
    config.write_text(routed_config(slow, serve={"shutdown_timeout": SHUTDOWN_TIMEOUT}))
    for _attempt in range(3):  # the free port may be taken before the server binds it
        port = free_port()
        log_path = workdir / f"serve-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                _serve_command(config, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        if wait_healthy(url, 60, alive=lambda p=process: p.poll() is None):
            break
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if "address already in use" not in log_path.read_text().lower():
            raise RuntimeError(f"llmrouter serve did not start:\n{log_path.read_text()}")
    else:
        raise RuntimeError("llmrouter serve found no free port")
    try:
        with OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=30) as c:
            first = stream(c, model="support-router", messages=user("first"))
            chunks: list[ChatCompletionChunk] = []
            with c.chat.completions.create(
                model="support-router", messages=user("in flight"), stream=True
            ) as events:
                iterator = iter(events)
                for chunk in iterator:  # until the first text arrives, then stop the server
                    chunks.append(chunk)
                    if chunk.choices and chunk.choices[0].delta.content:
                        break
                before = Streamed(list(chunks)).content
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                chunks.extend(iterator)
        try:
            returncode: int | None = process.wait(timeout=SHUTDOWN_TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            returncode = None
        yield SigtermRun(
            port=port,
            log=log_path.read_text(errors="replace"),
            first=first,
            in_flight=Streamed(chunks),
            content_before_signal=before,
            returncode=returncode,
            exit_seconds=time.monotonic() - signalled,
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_the_command_answers_a_streamed_request(sigterm_run: SigtermRun) -> None:
    assert f"127.0.0.1:{sigterm_run.port}/v1 (2 API keys)" in sigterm_run.log
    first = sigterm_run.first
    assert first.content.startswith("[echo] model=tiny-echo") and first.content.endswith(
        "User: first"
    )
    assert first.finish_reasons == ["stop"] and len(first.usages) == 1


def test_a_stream_in_flight_at_sigterm_is_completed(sigterm_run: SigtermRun) -> None:
    run = sigterm_run
    assert run.content_before_signal and not run.content_before_signal.endswith("User: in flight")
    assert run.in_flight.content.startswith(run.content_before_signal)
    assert run.in_flight.content.endswith("User: in flight")  # every chunk after the signal
    assert run.in_flight.finish_reasons == ["stop"] and len(run.in_flight.usages) == 1
    assert run.returncode is not None, "the server did not exit within the shutdown timeout"
    assert run.exit_seconds < SHUTDOWN_TIMEOUT


def test_the_command_exits_0_after_sigterm(sigterm_run: SigtermRun) -> None:
    assert sigterm_run.returncode == 0, sigterm_run.log
