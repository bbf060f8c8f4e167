"""`openai_compatible` against a real llm-katan server (echo and transformers backends)."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from typing import Any

import openai
import pytest
from _fixtures.fakes import InOrder
from _fixtures.katan import KatanFactory, KatanServer
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessageChunk
from langchain_openai import ChatOpenAI
from tenacity import wait_none

from llmrouter import ModelSpec
from llmrouter.errors import AllModelsFailedError, ConfigurationError
from llmrouter.models import openai_compatible
from llmrouter.resilience import RetryPolicy

SECRET = "sk-llmrouter-test-SECRET-4f9c2a"


@pytest.fixture
def echo(katan_server: KatanServer) -> ModelSpec:
    return openai_compatible(katan_server.model, katan_server.base_url, api_key=SECRET)


def assert_echo(message: AIMessage | BaseMessageChunk, prompt: str) -> None:
    """The echo backend's answer to ``prompt``, with usage that adds up."""
    assert isinstance(message.content, str)
    assert message.content.startswith("[echo] model=tiny-echo ")
    assert message.content.endswith(f"User: {prompt}")
    usage = message.usage_metadata  # type: ignore[union-attr]
    assert usage is not None
    # llm-katan counts words: the prompt's, and the answer's.
    assert usage["input_tokens"] == len(prompt.split())
    assert usage["output_tokens"] == len(message.content.split())
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    assert len(chunks) > 2, "expected a real stream, not one chunk"
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def test_invoke(echo: ModelSpec) -> None:
    reply = echo.chat_model.invoke("hello there world")
    assert_echo(reply, "hello there world")
    assert reply.response_metadata["model_name"] == "tiny-echo"
    assert reply.response_metadata["finish_reason"] == "stop"


async def test_ainvoke(echo: ModelSpec) -> None:
    reply = await echo.chat_model.ainvoke("async hello")
    assert_echo(reply, "async hello")


def test_stream_reports_usage_once(echo: ModelSpec) -> None:
    chunks = list(echo.chat_model.stream("stream me please"))
    assert sum(c.usage_metadata is not None for c in chunks) == 1
    assert_echo(merged(chunks), "stream me please")


async def test_astream_reports_usage(echo: ModelSpec) -> None:
    chunks = [chunk async for chunk in echo.chat_model.astream("astream me")]
    assert_echo(merged(chunks), "astream me")


def test_batch(echo: ModelSpec) -> None:
    prompts = ["first one", "second prompt here", "third"]
    for prompt, reply in zip(prompts, echo.chat_model.batch(prompts), strict=True):
        assert_echo(reply, prompt)


def test_async_calls_work_from_successive_event_loops(echo: ModelSpec) -> None:
    # langchain-openai shares one async HTTP client per URL; its connections
    # belonged to the first loop, so the second asyncio.run failed.
    async def streamed(prompt: str) -> AIMessageChunk:
        return merged([chunk async for chunk in echo.chat_model.astream(prompt)])

    for prompt in ["loop one", "loop two", "loop three"]:
        assert_echo(asyncio.run(echo.chat_model.ainvoke(prompt)), prompt)
        assert_echo(asyncio.run(streamed(prompt)), prompt)


def test_keywords_split_between_spec_and_chat_model(katan_server: KatanServer) -> None:
    spec = openai_compatible(
        katan_server.model,
        katan_server.base_url,
        api_key=SECRET,
        name="echo-cheap",
        tasks={"code_generation", "chat"},
        input_cost=0.15,
        output_cost=0.6,
        context_window=4096,
        quality={"chat": 0.4},
        tags="local",
        timeout=7.5,
        max_tokens=5,
        temperature=0.0,
        max_retries=0,
    )
    assert spec.name == "echo-cheap"
    assert spec.tasks == {"code_generation", "chat"}
    assert (spec.input_cost, spec.output_cost) == (0.15, 0.6)
    assert spec.context_window == 4096
    assert spec.quality == {"chat": 0.4}
    assert spec.tags == {"local"}
    chat = spec.chat_model
    assert isinstance(chat, ChatOpenAI)
    assert (chat.request_timeout, chat.max_tokens, chat.max_retries) == (7.5, 5, 0)
    assert chat.stream_usage is True
    # ... and the server receives them: echo reports what the request carried.
    # (ChatOpenAI alone sends `max_completion_tokens`, which llm-katan ignores.)
    assert "max_tokens=5 temperature=0.0" in str(chat.invoke("hi").content)


def test_default_name_is_the_model(echo: ModelSpec) -> None:
    assert echo.name == "tiny-echo"


def test_key_and_base_url_from_environment(
    katan_server: KatanServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", katan_server.base_url)
    spec = openai_compatible("tiny-echo")
    assert_echo(spec.chat_model.invoke("from env"), "from env")


def test_missing_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY") as caught:
        openai_compatible("gpt-4o-mini")
    assert "api_key=" in str(caught.value)
    assert "EMPTY" in str(caught.value)


def test_rejected_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="temperature"):
        openai_compatible("m", "http://127.0.0.1:9/v1", api_key=SECRET, temperature="hot")
    with pytest.raises(ConfigurationError, match="api_key="):
        openai_compatible("m", "http://127.0.0.1:9/v1", openai_api_key=SECRET)


def test_openai_itself_keeps_max_completion_tokens() -> None:
    chat = openai_compatible("gpt-4o-mini", api_key=SECRET, max_tokens=9).chat_model
    payload = chat._get_request_payload("hi")  # type: ignore[attr-defined]
    assert payload["max_completion_tokens"] == 9
    assert "max_tokens" not in payload


def test_construction_makes_no_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"network call while building a spec: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for url in ["http://10.255.255.1:8000/v1", None]:
        spec = openai_compatible("gpt-4o-mini", url, api_key=SECRET)
        assert isinstance(spec.chat_model, ChatOpenAI)


def test_api_key_is_never_shown(
    echo: ModelSpec, katan_server: KatanServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chat = echo.chat_model
    reply = chat.invoke("is my key safe")
    chunks = list(chat.stream("and when streaming"))
    shown = [
        repr(echo),
        str(echo),
        repr(chat),
        str(chat),
        str(chat.model_dump()),
        dumps(chat),
        repr(reply),
        str(reply.response_metadata),
        str(reply.additional_kwargs),
        repr(chunks),
        caplog.text,
        *(repr(record.args) for record in caplog.records),
    ]
    assert caplog.records, "expected debug logs from the HTTP stack"
    for text in shown:
        assert SECRET not in text
    # The key did travel, where it belongs: llm-katan answered (it 401s without one).
    assert_echo(reply, "is my key safe")


def test_server_errors_surface_as_openai_errors(katan_factory: KatanFactory) -> None:
    # Routers classify these: 429 (and --error-rate's 500, --timeout-after's 504,
    # --max-inflight's 503) arrive as openai.APIStatusError subclasses.
    limited = katan_factory(["--rate-limit-after", "1"])
    spec = openai_compatible(limited.model, limited.base_url, api_key=SECRET, max_retries=0)
    assert_echo(spec.chat_model.invoke("first is free"), "first is free")
    with pytest.raises(openai.RateLimitError) as caught:
        spec.chat_model.invoke("second is limited")
    assert caught.value.status_code == 429


def test_transformers_backend(katan_transformers_server: KatanServer) -> None:
    server = katan_transformers_server
    spec = openai_compatible(server.model, server.base_url, api_key=SECRET, max_tokens=3)
    reply = spec.chat_model.invoke("Hello, tiny model!")
    assert isinstance(reply.content, str)
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 5  # the chat template's tokens, not words
    assert 1 <= usage["output_tokens"] <= 3  # max_tokens reached the model's generate()
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    chunks = list(spec.chat_model.stream("Hello again"))
    streamed = sum(chunks[1:], chunks[0])
    assert streamed.usage_metadata is not None
    assert streamed.usage_metadata["output_tokens"] <= 3


# ------------------------------------------------------------ settings checked early


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"api_key": 123}, "api_key must be a str"),
        ({"api_key": ["sk"]}, "api_key must be a str"),
        ({"timeout": "x"}, "timeout must be a positive number of seconds or None"),
        ({"timeout": 0}, "timeout must be a positive number of seconds or None"),
        ({"timeout": -2.5}, "timeout must be a positive number of seconds or None"),
        ({"timeout": True}, "timeout must be a positive number of seconds or None"),
        ({"base_url": "not a url"}, "base_url must be an http(s) URL"),
        ({"base_url": "ftp://127.0.0.1/v1"}, "base_url must be an http(s) URL"),
        ({"base_url": "http://"}, "base_url must be an http(s) URL"),
        ({"base_url": 123}, "base_url must be an http(s) URL"),
    ],
)
def test_bad_key_timeout_or_url_is_a_configuration_error(
    given: dict[str, Any], expected: str
) -> None:
    settings: dict[str, Any] = {"base_url": "http://127.0.0.1:9/v1", "api_key": SECRET, **given}
    with pytest.raises(ConfigurationError, match=re.escape(expected)) as caught:
        openai_compatible("m", **settings)
    assert "openai_compatible('m')" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_bad_base_url_from_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000")
    with pytest.raises(ConfigurationError, match="OPENAI_BASE_URL"):
        openai_compatible("m", api_key=SECRET)


@pytest.mark.parametrize("timeout", [None, 5, 2.5, openai.Timeout(10.0, connect=2.0)])
def test_good_timeouts_reach_the_client(timeout: Any) -> None:
    chat = openai_compatible("m", "https://127.0.0.1:9/v1", api_key=SECRET, timeout=timeout)
    assert chat.chat_model.request_timeout == timeout  # type: ignore[attr-defined]


def test_without_a_timeout_the_client_still_has_one() -> None:
    """ChatOpenAI passes ``timeout=None`` to the SDK, which means "wait forever"."""
    chat = openai_compatible("m", "http://127.0.0.1:9/v1", api_key=SECRET).chat_model
    timeout = chat.request_timeout  # type: ignore[attr-defined]
    assert isinstance(timeout, openai.Timeout)
    assert timeout.read is not None and timeout.connect is not None
    assert chat.root_client.timeout == timeout  # type: ignore[attr-defined]


# ------------------------------------------------------------ one retry layer


@pytest.fixture(scope="module")
def failing(katan_factory: KatanFactory) -> KatanServer:
    """Every chat completion gets a 500 (llm-katan logs each one)."""
    return katan_factory(["--error-rate", "1.0"])


def failures_logged(server: KatanServer) -> int:
    return server.log().count("| 500 | simulated")


def requests_for(server: KatanServer, spec: ModelSpec, streamed: bool = False) -> tuple[int, int]:
    """(attempts in the route record, requests the server received) for one failed call."""
    router = InOrder(
        models=[spec], retry=RetryPolicy.attempts(3, wait=wait_none()), circuit_breaker=None
    )
    before = failures_logged(server)
    with pytest.raises(AllModelsFailedError) as caught:
        if streamed:
            list(router.stream("count my requests"))
        else:
            router.invoke("count my requests")
    time.sleep(0.2)  # the server logs after answering
    return len(caught.value.record.attempts), failures_logged(server) - before


@pytest.mark.parametrize("streamed", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize("given", ["ChatOpenAI", "openai_compatible", "factory"])
def test_one_retry_layer_whichever_way_the_model_is_given(
    given: str, streamed: bool, failing: KatanServer
) -> None:
    user = ChatOpenAI(model=failing.model, base_url=failing.base_url, api_key=SECRET)
    model: Any = {
        "ChatOpenAI": user,
        "factory": lambda: ChatOpenAI(
            model=failing.model, base_url=failing.base_url, api_key=SECRET, max_retries=4
        ),
    }.get(given)
    spec = (
        openai_compatible(failing.model, failing.base_url, api_key=SECRET, name="wrapped")
        if model is None
        else ModelSpec(name="wrapped", model=model)
    )
    started = time.monotonic()
    attempts, received = requests_for(failing, spec, streamed)
    assert (attempts, received) == (3, 3)
    assert time.monotonic() - started < 3  # no SDK backoff (0.5 s, 1 s, ...) in between
    assert user.max_retries is None  # the user's own object is left as it was
    assert user.root_client.max_retries == openai.DEFAULT_MAX_RETRIES


def test_sdk_retries_can_be_kept(failing: KatanServer) -> None:
    user = ChatOpenAI(model=failing.model, base_url=failing.base_url, api_key=SECRET, max_retries=1)
    spec = ModelSpec(name="own-retries", model=user, sdk_retries=True)
    assert spec.chat_model is user
    assert requests_for(failing, spec) == (3, 6)  # each attempt: one try + one SDK retry


def test_openai_compatible_keeps_an_explicit_max_retries(failing: KatanServer) -> None:
    spec = openai_compatible(failing.model, failing.base_url, api_key=SECRET, max_retries=1)
    assert spec.sdk_retries and spec.chat_model.max_retries == 1  # type: ignore[attr-defined]
    plain = openai_compatible(failing.model, failing.base_url, api_key=SECRET)
    assert not plain.sdk_retries and plain.chat_model.max_retries == 0  # type: ignore[attr-defined]


def test_a_misspelled_keyword_is_refused_with_the_closest_name() -> None:
    with pytest.raises(ConfigurationError, match=r"'max_tokns' \(did you mean 'max_tokens'\?\)"):
        openai_compatible("m", "http://127.0.0.1:9/v1", api_key="EMPTY", max_tokns=5)
    spec = openai_compatible(
        "m", "http://127.0.0.1:9/v1", api_key="EMPTY", max_tokens=5, extra_body={"a": 1}
    )
    assert spec.chat_model.max_tokens == 5


def _connections(chat: Any) -> list[Any]:
    """The sync client's pooled connections (httpcore's pool under our transport)."""
    return list(chat.http_client._transport._pool._pool.connections)


def test_idle_connections_expire_before_uvicorn_closes_them(
    katan_server: KatanServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn (llm-katan, vLLM) closes a connection after 5 s idle; the SDK kept them 5 s
    from llmrouter.models import _http

    assert _http.KEEPALIVE_EXPIRY < 5
    monkeypatch.setattr(_http, "KEEPALIVE_EXPIRY", 0.3)
    chat = openai_compatible(katan_server.model, katan_server.base_url, api_key=SECRET).chat_model
    chat.invoke("one")
    first = _connections(chat)
    chat.invoke("two")  # at once: the same connection
    assert _connections(chat) == first and len(first) == 1
    time.sleep(0.5)
    chat.invoke("three")  # idle longer than the expiry: a new one
    assert _connections(chat) and _connections(chat)[0] is not first[0]
