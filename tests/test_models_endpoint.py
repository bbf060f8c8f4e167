"""`huggingface_endpoint` against a real llm-katan server.

``ChatHuggingFace`` over an endpoint URL posts to ``<url>/v1/chat/completions``
through ``huggingface_hub``, which refuses every request while ``HF_HUB_OFFLINE=1``
(set for the whole test run). Tests that make requests lift that flag for the
test only, with a guard that lets sockets reach loopback and nothing else.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
from _fixtures.katan import KatanServer
from huggingface_hub.errors import OfflineModeIsEnabled
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessageChunk
from langchain_huggingface import ChatHuggingFace, HuggingFaceEndpoint

from llmrouter import ModelSpec
from llmrouter.errors import ConfigurationError
from llmrouter.models import huggingface_endpoint

SECRET = "hf_llmrouterTESTsecret7d41"
_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        raise AssertionError(f"test guard: network beyond loopback ({address!r})")
    return _real_connect(self, address)


def _no_network(self: socket.socket, address: Any) -> None:
    raise AssertionError(f"network call while building a spec: {address!r}")


@pytest.fixture
def hub_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let huggingface_hub make HTTP requests, to 127.0.0.1 only."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture
def echo(katan_server: KatanServer, hub_http: None) -> ModelSpec:
    return huggingface_endpoint(katan_server.url, api_key=SECRET, max_tokens=7)


def assert_echo(message: AIMessage | BaseMessageChunk, prompt: str) -> None:
    """The echo backend's answer to ``prompt``, with usage that adds up."""
    assert isinstance(message.content, str)
    assert message.content.startswith("[echo] model=tiny-echo ")
    assert "max_tokens=7 " in message.content  # the request carried our max_tokens
    assert message.content.endswith(f"User: {prompt}")
    usage = message.usage_metadata  # type: ignore[union-attr]
    assert usage is not None
    assert usage["input_tokens"] == len(prompt.split())  # llm-katan counts words
    assert usage["output_tokens"] == len(message.content.split())
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    assert len(chunks) > 2, "expected a real stream, not one chunk"
    return sum(chunks[1:], chunks[0])


def test_invoke(echo: ModelSpec, katan_server: KatanServer) -> None:
    reply = echo.chat_model.invoke("hello there world")
    assert_echo(reply, "hello there world")
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["model_name"] == katan_server.url


async def test_ainvoke(echo: ModelSpec) -> None:
    assert_echo(await echo.chat_model.ainvoke("async hello"), "async hello")


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
    # Upstream's AsyncInferenceClient keeps the first loop's HTTP client for good.
    async def streamed(prompt: str) -> AIMessageChunk:
        return merged([chunk async for chunk in echo.chat_model.astream(prompt)])

    for prompt in ["loop one", "loop two", "loop three"]:
        assert_echo(asyncio.run(echo.chat_model.ainvoke(prompt)), prompt)
        assert_echo(asyncio.run(streamed(prompt)), prompt)


def test_keywords_split_between_spec_chat_model_and_endpoint(
    katan_server: KatanServer, hub_http: None
) -> None:
    spec = huggingface_endpoint(
        katan_server.url,
        api_key=SECRET,
        name="tgi-echo",
        tasks={"chat"},
        input_cost=0.1,
        output_cost=0.2,
        context_window=2048,
        tags={"local", "tgi"},
        max_tokens=7,
        temperature=0.25,
        timeout=9,
        model_id="my-served-model",
    )
    assert spec.name == "tgi-echo"
    assert spec.tasks == {"chat"}
    assert (spec.input_cost, spec.output_cost, spec.context_window) == (0.1, 0.2, 2048)
    assert spec.tags == {"local", "tgi"}
    chat = spec.chat_model
    assert isinstance(chat, ChatHuggingFace)
    assert isinstance(chat.llm, HuggingFaceEndpoint)
    assert (chat.max_tokens, chat.temperature, chat.stream_usage) == (7, 0.25, True)
    assert chat.llm.timeout == 9
    assert chat.llm.client.timeout == chat.llm.async_client.timeout == 9
    reply = chat.invoke("split check")
    assert_echo(reply, "split check")
    assert "temperature=0.25" in str(reply.content)
    assert reply.response_metadata["model_name"] == "my-served-model"
    assert "model=my-served-model " in katan_server.log()  # the model name sent


def test_default_name_is_the_url_or_repo_id(katan_server: KatanServer) -> None:
    assert huggingface_endpoint(katan_server.url, api_key=SECRET).name == katan_server.url
    assert huggingface_endpoint("org/model", api_key=SECRET).name == "org/model"


def test_api_key_is_never_shown(echo: ModelSpec) -> None:
    chat = echo.chat_model
    reply = chat.invoke("is my key safe")
    chunks = list(chat.stream("and when streaming"))
    shown = [
        repr(echo),
        str(echo),
        repr(chat),
        str(chat),
        repr(chat.llm),
        str(chat.model_dump()),
        repr(reply),
        str(reply.response_metadata),
        repr(chunks),
    ]
    for text in shown:
        assert SECRET not in text
    assert_echo(reply, "is my key safe")  # the key did reach llm-katan (401 without)


def test_unknown_keyword_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="frobnicate"):
        huggingface_endpoint("http://127.0.0.1:9", api_key=SECRET, frobnicate=True)
    with pytest.raises(ConfigurationError, match="max_new_tokens"):
        huggingface_endpoint("http://127.0.0.1:9", api_key=SECRET, max_new_tokens="many")


def test_repo_id_without_any_token_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ["HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HUGGING_FACE_HUB_TOKEN"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "none"))
    with pytest.raises(ConfigurationError, match="HF_TOKEN"):
        huggingface_endpoint("HuggingFaceH4/zephyr-7b-beta")
    # A server of your own may need no token at all.
    assert huggingface_endpoint("http://127.0.0.1:9").name == "http://127.0.0.1:9"
    monkeypatch.setenv("HUGGINGFACEHUB_API_TOKEN", SECRET)
    spec = huggingface_endpoint("HuggingFaceH4/zephyr-7b-beta")
    assert spec.chat_model.llm.client.token == SECRET  # type: ignore[attr-defined]


def test_construction_makes_no_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    for target in ["HuggingFaceH4/zephyr-7b-beta", "https://xyz.endpoints.huggingface.cloud"]:
        chat = huggingface_endpoint(target, api_key=SECRET).chat_model
        assert isinstance(chat, ChatHuggingFace)
        assert chat.model_id == target  # taken as given, not looked up on the Hub
        assert chat.tokenizer is None  # and no tokenizer downloaded


def test_offline_mode_blocks_even_a_local_endpoint(katan_server: KatanServer) -> None:
    # Pins the upstream limit documented in llmrouter.models._endpoint: when this
    # starts failing, huggingface_hub lets local URLs through in offline mode.
    assert huggingface_hub.constants.HF_HUB_OFFLINE
    spec = huggingface_endpoint(katan_server.url, api_key=SECRET)
    with pytest.raises(OfflineModeIsEnabled):
        spec.chat_model.invoke("hi")


def test_transformers_backend(katan_transformers_server: KatanServer, hub_http: None) -> None:
    server = katan_transformers_server
    spec = huggingface_endpoint(server.url, api_key=SECRET, max_tokens=3, model_id=server.model)
    reply = spec.chat_model.invoke("Hello, tiny model!")
    assert isinstance(reply.content, str)
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 5  # the chat template's tokens, not words
    assert 1 <= usage["output_tokens"] <= 3
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
