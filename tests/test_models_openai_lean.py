"""The lean ``chat.completions`` of `openai_compatible`, against a real llm-katan server.

What must hold: the same answers (content, usage, finish reason) and the same
errors as ``ChatOpenAI`` through the SDK's ``create``, which these calls no
longer run.
"""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

import openai
import pytest
from _fixtures.fakes import joined
from _fixtures.katan import KatanFactory, KatanServer
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_openai import ChatOpenAI

from llmrouter.models import openai_compatible
from llmrouter.models._openai_lean import (
    AsyncLeanCompletions,
    LeanCompletions,
    RawResponse,
    _httpx,
    request_parts,
)

KEY = "sk-lean-test-0000"
PROMPT = "how lean is this call"


def lean_and_plain(server: KatanServer, **kwargs: Any) -> tuple[ChatOpenAI, ChatOpenAI]:
    """(``openai_compatible``'s model, a bare ``ChatOpenAI`` with the same settings)."""
    lean = openai_compatible(server.model, server.base_url, api_key=KEY, **kwargs).chat_model
    plain = ChatOpenAI(
        model=server.model, base_url=server.base_url, api_key=KEY, stream_usage=True, **kwargs
    )
    assert isinstance(lean, ChatOpenAI)
    assert isinstance(lean.async_client, AsyncLeanCompletions)
    assert isinstance(lean.client, LeanCompletions)
    assert not isinstance(plain.client, LeanCompletions)
    return lean, plain


def summary(message: BaseMessage) -> tuple[Any, ...]:
    meta = message.response_metadata
    usage = meta.get("token_usage") or {}
    return (
        re.sub(r"time=\S+ ", "", str(message.content)),  # the echo's clock, to the second
        getattr(message, "usage_metadata", None),
        meta.get("model_name"),
        meta.get("finish_reason"),
        {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
    )


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    assert len(chunks) > 2, "expected a real stream"
    total: AIMessageChunk = joined(chunks)
    return total


async def astreamed(model: ChatOpenAI, prompt: str) -> AIMessageChunk:
    return merged([chunk async for chunk in model.astream(prompt)])


@pytest.fixture
def no_sdk_create(katan_server: KatanServer, monkeypatch: pytest.MonkeyPatch) -> ChatOpenAI:
    """A lean model whose SDK ``create`` (and so its transform) fails if it is called."""
    lean, _ = lean_and_plain(katan_server)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the SDK's chat.completions.create was called")

    for resource in (lean.client, lean.async_client):
        monkeypatch.setattr(resource._resource, "create", refuse)  # type: ignore[union-attr]
    return lean


def test_answers_are_the_sdk_paths(katan_server: KatanServer) -> None:
    lean, plain = lean_and_plain(katan_server)
    assert summary(lean.invoke(PROMPT)) == summary(plain.invoke(PROMPT))
    assert summary(merged(list(lean.stream(PROMPT)))) == summary(merged(list(plain.stream(PROMPT))))

    async def both() -> None:  # one loop: a bare ChatOpenAI's async client is bound to it
        assert summary(await lean.ainvoke(PROMPT)) == summary(await plain.ainvoke(PROMPT))
        assert summary(await astreamed(lean, PROMPT)) == summary(await astreamed(plain, PROMPT))

    asyncio.run(both())
    short, _ = lean_and_plain(katan_server, max_tokens=40)
    assert "max_tokens=40" in str(short.invoke(PROMPT).content)


def test_the_sdk_create_is_not_run(no_sdk_create: ChatOpenAI) -> None:
    lean = no_sdk_create
    assert str(lean.invoke(PROMPT).content).endswith(f"User: {PROMPT}")
    assert str(asyncio.run(lean.ainvoke(PROMPT)).content).endswith(f"User: {PROMPT}")
    assert str(merged(list(lean.stream(PROMPT))).content).endswith(f"User: {PROMPT}")
    assert str(asyncio.run(astreamed(lean, PROMPT)).content).endswith(f"User: {PROMPT}")


def test_extra_body_and_sampling_fields_reach_the_server(katan_server: KatanServer) -> None:
    lean, _ = lean_and_plain(katan_server, extra_body={"max_tokens": 7})
    assert "max_tokens=7" in str(lean.invoke(PROMPT).content)
    warm, _ = lean_and_plain(katan_server, temperature=0.25)
    assert "temperature=0.25" in str(asyncio.run(warm.ainvoke(PROMPT)).content)


def test_response_headers_when_asked_for(katan_server: KatanServer) -> None:
    lean, _ = lean_and_plain(katan_server, include_response_headers=True)
    headers = lean.invoke(PROMPT).response_metadata["headers"]
    assert headers["content-type"].startswith("application/json")
    assert "headers" in asyncio.run(lean.ainvoke(PROMPT)).response_metadata
    # A raw stream is the SDK's own: it still streams, with the headers on the first chunk.
    chunks = list(lean.stream(PROMPT))
    assert "headers" in chunks[0].response_metadata
    assert str(merged(chunks).content).endswith(f"User: {PROMPT}")


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--error-rate", "1.0"], openai.InternalServerError),
        (["--validate-keys", "--api-keys", "openai=another-key"], openai.AuthenticationError),
    ],
    ids=["500", "401"],
)
def test_errors_are_the_sdk_paths(
    katan_factory: KatanFactory, flags: list[str], error: type[Exception]
) -> None:
    server = katan_factory(flags)
    lean, plain = lean_and_plain(server, max_retries=0)

    async def failed(model: ChatOpenAI) -> BaseException:
        with pytest.raises(error) as caught:
            await model.ainvoke(PROMPT)
        return caught.value

    for model in (lean, plain):
        with pytest.raises(error) as sync_error:
            model.invoke(PROMPT)
        with pytest.raises(error):
            list(model.stream(PROMPT))
        assert type(sync_error.value) is type(asyncio.run(failed(model)))
    with pytest.raises(error) as from_lean:
        lean.invoke(PROMPT)
    with pytest.raises(error) as from_plain:
        plain.invoke(PROMPT)
    assert type(from_lean.value) is type(from_plain.value)
    assert from_lean.value.status_code == from_plain.value.status_code  # type: ignore[attr-defined]


def test_a_client_passed_in_is_left_alone(katan_server: KatanServer) -> None:
    own = openai.OpenAI(base_url=katan_server.base_url, api_key=KEY, max_retries=0)
    chat = openai_compatible(
        katan_server.model, katan_server.base_url, api_key=KEY, client=own.chat.completions
    ).chat_model
    assert chat.client is own.chat.completions  # type: ignore[attr-defined]
    assert isinstance(chat.async_client, AsyncLeanCompletions)  # type: ignore[attr-defined]


def test_the_lean_resource_copies(katan_server: KatanServer) -> None:
    lean, _ = lean_and_plain(katan_server)
    twin = copy.copy(lean.async_client)
    assert isinstance(twin, AsyncLeanCompletions)
    assert twin.parse == lean.async_client.parse  # still the SDK's, through the copy
    assert not hasattr(AsyncLeanCompletions.__new__(AsyncLeanCompletions), "parse")


def test_openai_itself_keeps_the_sdk_resource() -> None:
    chat = openai_compatible("gpt-4o-mini", api_key="sk-x").chat_model
    assert not isinstance(chat.client, LeanCompletions)  # type: ignore[attr-defined]


def test_request_parts_split_body_and_options() -> None:
    body, options = request_parts(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": False,
            "extra_headers": {"X-Trace": "1"},
            "extra_query": {"api-version": "2"},
            "extra_body": {"top_k": 4},
            "timeout": None,
            "seed": openai.NOT_GIVEN,
            "user": openai.omit,
            "logit_bias": None,
        }
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "logit_bias": None,
    }
    assert options == {
        "security": {"bearer_auth": True},
        "headers": {"X-Trace": "1"},
        "params": {"api-version": "2"},
        "extra_json": {"top_k": 4},
        "timeout": None,
    }
    assert "timeout" not in request_parts({"model": "m", "extra_body": None})[1]


def test_a_non_json_answer_is_handed_over_as_text() -> None:
    page = RawResponse(_httpx.Response(200, text="<html>proxy login</html>"))
    assert page.parse() == "<html>proxy login</html>"
    data = RawResponse(_httpx.Response(200, json={"id": "x"}, headers={"x-a": "1"}))
    assert data.parse() == {"id": "x"}
    assert data.headers["x-a"] == "1"
