"""The OpenAI-compatible app through FastAPI's TestClient, with in-process fake models."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from _fixtures.fakes import Recorder
from fastapi.testclient import TestClient
from httpx import Response
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from prometheus_client.parser import text_string_to_metric_families

from llmrouter import Budget, CostAwareRouter, ModelRouter, ModelSpec
from llmrouter.resilience import RetryPolicy
from llmrouter.serve import ApiKey, ServeSettings, create_app

URL = "/v1/chat/completions"
HI = [{"role": "user", "content": "Hi"}]
ALICE, BOB = "sk-alice-0123456789", "sk-bob-0123456789"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


class Broken(BaseChatModel):
    """Always fails as an unreachable endpoint does."""

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise ConnectionError("connection refused")


class ToolCaller(BaseChatModel):
    """Answers with a call of ``get_weather(city="Paris")``; records what was bound."""

    bound: list[Any] = []
    choice: str | None = None

    @property
    def _llm_type(self) -> str:
        return "tool-caller"

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[Any, AIMessage]:
        self.bound, self.choice = list(tools), tool_choice
        return self.bind(tools=list(tools), **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}
        message = AIMessage("", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        pieces = [("call_1", "get_weather", '{"city": '), (None, None, '"Paris"}')]
        for call_id, name, args in pieces:
            part = {"id": call_id, "name": name, "args": args, "index": 0}
            yield ChatGenerationChunk(message=AIMessageChunk("", tool_call_chunks=[part]))


def recorder(name: str, reply: str = "Hello there friend", **kwargs: Any) -> ModelSpec:
    prices = {k: kwargs.pop(k) for k in ("input_cost", "output_cost", "tasks") if k in kwargs}
    return ModelSpec(name=name, model=Recorder(reply=reply, **kwargs), **prices)


def words(name: str, text: str) -> ModelSpec:
    return ModelSpec(name=name, model=GenericFakeChatModel(messages=iter([AIMessage(text)])))


def broken(name: str = "down") -> ModelSpec:
    return ModelSpec(name=name, model=Broken(), retry=RetryPolicy.none())


def client(
    routers: dict[str, Any], models: dict[str, ModelSpec] | None = None, **settings: Any
) -> TestClient:
    return TestClient(create_app(routers, models, ServeSettings(**settings)))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def error_of(response: Response, status: int) -> dict[str, Any]:
    """The OpenAI error object of a response, checked for shape and status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


def events(response: Response) -> list[dict[str, Any]]:
    """The JSON events of a server-sent event stream that ends with ``[DONE]``."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in response.text.split("\n\n") if b.strip()]
    assert all(b.startswith("data: ") for b in blocks), blocks
    payloads = [b.removeprefix("data: ") for b in blocks]
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    return [json.loads(p) for p in payloads[:-1]]


def samples(c: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = c.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


# ------------------------------------------------------------ completions


def test_a_completion_carries_content_usage_and_the_route() -> None:
    spec = recorder("fake", usage=(3, 4), input_cost=1.0, output_cost=2.0)
    c = client({"main": ModelRouter(models=[spec], name="support")})
    response = c.post(URL, json={"model": "main", "messages": HI})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "main"
    assert body["id"].startswith("chatcmpl-")
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Hello there friend"}
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    route = body["route"]
    assert route["model"] == "fake" and route["router"] == "support"
    assert [a["model"] for a in route["attempts"]] == ["fake"]
    headers = response.headers
    assert headers["x-llmrouter-model"] == "fake"
    assert headers["x-llmrouter-router"] == "support"
    assert headers["x-llmrouter-request-id"] == route["request_id"] != ""
    assert headers["x-llmrouter-attempts"] == "1"
    assert float(headers["x-llmrouter-latency-ms"]) >= 0
    assert float(headers["x-llmrouter-cost-usd"]) == pytest.approx(3e-6 + 8e-6)


def test_the_request_reaches_the_model_as_langchain_messages_and_keywords() -> None:
    spec = recorder("fake")
    c = client({"main": ModelRouter(models=[spec])})
    body = {
        "model": "main",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "temperature": 0.2,
        "max_tokens": 100,
        "max_completion_tokens": 50,
        "stop": "END",
    }
    assert c.post(URL, json=body).status_code == 200
    model = spec.model
    assert isinstance(model, Recorder)
    (call,) = model.calls
    assert call["temperature"] == 0.2 and call["max_tokens"] == 50
    assert call["stop"] == ["END"]
    assert [type(m).__name__ for m in call["messages"]] == ["SystemMessage", "HumanMessage"]
    assert call["messages"][1].content == "Hi"


def test_without_route_in_response_there_is_no_route_field_nor_headers() -> None:
    c = client({"main": ModelRouter(models=[recorder("fake")])}, route_in_response=False)
    response = c.post(URL, json={"model": "main", "messages": HI})
    assert response.status_code == 200
    assert "route" not in response.json()
    assert not [h for h in response.headers if h.startswith("x-llmrouter-")]


def test_without_route_in_response_a_stream_has_no_route_either() -> None:
    c = client({"main": ModelRouter(models=[recorder("fake")])}, route_in_response=False)
    response = c.post(URL, json={"model": "main", "messages": HI, "stream": True})
    assert not [e for e in events(response) if "route" in e]


def test_a_model_is_served_directly_by_its_name() -> None:
    a, b = recorder("a", reply="from a"), recorder("b", reply="from b")
    c = client({"main": ModelRouter(models=[a, b], default="a")}, {"a": a, "b": b})
    response = c.post(URL, json={"model": "b", "messages": HI})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "from b"
    assert body["model"] == "b"
    assert body["route"]["router"] == "b" and body["route"]["model"] == "b"
    assert response.headers["x-llmrouter-model"] == "b"


def test_models_are_not_served_directly_when_turned_off() -> None:
    a = recorder("a")
    c = client({"main": ModelRouter(models=[a])}, {"a": a}, models_directly=False)
    error = error_of(c.post(URL, json={"model": "a", "messages": HI}), 404)
    assert error["code"] == "model_not_found"
    assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["main"]


# ------------------------------------------------------------ models


def test_models_lists_routers_then_models_with_their_kinds() -> None:
    a, b = recorder("a"), recorder("b")
    routers = {
        "main": ModelRouter(models=[a, b], default="a"),
        "cheap": CostAwareRouter(models=[a, b]),
    }
    c = client(routers, {"a": a, "b": b, "main": a})
    body = c.get("/v1/models").json()
    assert body["object"] == "list"
    listed = [(m["id"], m["kind"]) for m in body["data"]]
    assert listed == [("main", "router"), ("cheap", "router"), ("a", "model"), ("b", "model")]
    assert all(m["object"] == "model" and m["owned_by"] == "llmrouter" for m in body["data"])


def test_models_are_filtered_by_the_keys_routers() -> None:
    a = recorder("a")
    keys = [
        ApiKey(key=ALICE, name="alice", routers=["main", "a"]),
        ApiKey(key=BOB, name="bob"),
    ]
    routers = {"main": ModelRouter(models=[a]), "other": ModelRouter(models=[a])}
    c = client(routers, {"a": a}, keys=keys)
    alice = c.get("/v1/models", headers=bearer(ALICE)).json()["data"]
    assert [m["id"] for m in alice] == ["main", "a"]
    bob = c.get("/v1/models", headers=bearer(BOB)).json()["data"]
    assert [m["id"] for m in bob] == ["main", "other", "a"]


# ------------------------------------------------------------ streaming


def test_a_stream_sends_the_role_first_then_the_words_then_finish_and_usage_once() -> None:
    spec = recorder("fake", reply="Hello there friend", usage=(3, 4))
    c = client({"main": ModelRouter(models=[spec])})
    response = c.post(URL, json={"model": "main", "messages": HI, "stream": True})
    chunks = events(response)
    assert all(e["object"] == "chat.completion.chunk" for e in chunks)
    assert len({e["id"] for e in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(e["model"] == "main" for e in chunks)
    deltas = [e["choices"][0]["delta"] for e in chunks]
    assert deltas[0]["role"] == "assistant"
    assert not any("role" in d for d in deltas[1:])
    assert "".join(d.get("content", "") for d in deltas) == "Hello there friend"
    assert len(chunks) > 3  # streamed in pieces, not as one chunk
    finishes = [e["choices"][0]["finish_reason"] for e in chunks]
    assert finishes[-1] == "stop" and finishes[:-1] == [None] * (len(chunks) - 1)
    with_usage = [e for e in chunks if "usage" in e]
    assert with_usage == [chunks[-1]]
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert chunks[-1]["route"]["model"] == "fake" and chunks[-1]["route"]["streamed"] is True


def test_a_stream_with_include_usage_ends_with_a_usage_chunk_without_choices() -> None:
    spec = recorder("fake", reply="one two", usage=(5, 2))
    c = client({"main": ModelRouter(models=[spec])})
    body = {"model": "main", "messages": HI, "stream": True}
    chunks = events(c.post(URL, json={**body, "stream_options": {"include_usage": True}}))
    *answer, usage = chunks
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert not [e for e in answer if "usage" in e]
    assert answer[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in answer) == "one two"
    assert usage["id"] == answer[0]["id"]


def test_a_generic_fake_streams_word_by_word() -> None:
    c = client({"main": ModelRouter(models=[words("g", "alpha beta gamma")])})
    chunks = events(c.post(URL, json={"model": "main", "messages": HI, "stream": True}))
    contents = [e["choices"][0]["delta"].get("content") for e in chunks[:-1]]
    assert contents == ["alpha", " ", "beta", " ", "gamma"]


def test_a_stream_that_fails_before_any_output_is_a_503_not_a_200_stream() -> None:
    c = client({"main": ModelRouter(models=[broken()])})
    response = c.post(URL, json={"model": "main", "messages": HI, "stream": True})
    error = error_of(response, 503)
    assert error["type"] == "service_unavailable" and error["code"] == "all_models_failed"
    assert response.headers["retry-after"] == "1"
    assert not response.headers["content-type"].startswith("text/event-stream")


def test_a_stream_that_fails_mid_answer_says_so_in_the_stream() -> None:
    flaky = recorder("flaky", reply="one two three", fail_after_chunks=1, fail_with=ConnectionError)
    flaky = flaky.model_copy(update={"retry": RetryPolicy.none()})
    c = client({"main": ModelRouter(models=[flaky], stream_recovery="raise")})
    chunks = events(c.post(URL, json={"model": "main", "messages": HI, "stream": True}))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "one"}
    assert set(chunks[-1]) == {"error"}
    assert chunks[-1]["error"]["code"] == "StreamInterruptedError"
    assert not [e for e in chunks if e.get("choices") and e["choices"][0]["finish_reason"]]
    assert (
        samples(c)[
            (
                "llmrouter_errors_total",
                frozenset({"router": "main", "error": "StreamInterruptedError"}.items()),
            )
        ]
        == 1
    )


# ------------------------------------------------------------ tools


def test_tools_pass_through_and_tool_calls_come_back() -> None:
    spec = ModelSpec(name="agent", model=ToolCaller())
    c = client({"main": ModelRouter(models=[spec])})
    choice = {"type": "function", "function": {"name": "get_weather"}}
    body = {"model": "main", "messages": HI, "tools": [WEATHER], "tool_choice": choice}
    response = c.post(URL, json=body)
    assert response.status_code == 200, response.text
    model = spec.model
    assert isinstance(model, ToolCaller)
    assert model.bound == [WEATHER] and model.choice == "get_weather"
    (out,) = response.json()["choices"]
    assert out["finish_reason"] == "tool_calls"
    assert out["message"]["content"] is None
    (call,) = out["message"]["tool_calls"]
    assert call["id"] == "call_1" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_streamed_tool_calls_arrive_in_pieces_and_finish_with_tool_calls() -> None:
    c = client({"main": ModelRouter(models=[ModelSpec(name="agent", model=ToolCaller())])})
    body = {"model": "main", "messages": HI, "tools": [WEATHER], "stream": True}
    chunks = events(c.post(URL, json=body))
    deltas = [e["choices"][0]["delta"] for e in chunks]
    assert deltas[0]["role"] == "assistant"
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert calls[0]["id"] == "call_1" and calls[0]["function"]["name"] == "get_weather"
    assert {call["index"] for call in calls} == {0}
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_an_earlier_tool_call_in_the_conversation_reaches_the_model() -> None:
    spec = recorder("fake")
    c = client({"main": ModelRouter(models=[spec])})
    messages = [
        *HI,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    assert c.post(URL, json={"model": "main", "messages": messages}).status_code == 200
    model = spec.model
    assert isinstance(model, Recorder)
    sent = model.calls[0]["messages"]
    assert sent[1].tool_calls[0]["args"] == {"city": "Paris"}
    assert sent[2].tool_call_id == "call_1" and sent[2].content == "18C"


def test_a_malformed_earlier_tool_call_is_a_400() -> None:
    c = client({"main": ModelRouter(models=[recorder("fake")])})
    messages = [*HI, {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function"}]}]
    error = error_of(c.post(URL, json={"model": "main", "messages": messages}), 400)
    assert error["type"] == "invalid_request_error"


# ------------------------------------------------------------ tasks


@pytest.fixture
def by_task() -> TestClient:
    coder = recorder("coder", reply="def f(): ...", tasks={"code"})
    chat = recorder("chat", reply="Hello!")
    return client(
        {"main": ModelRouter(models=[coder, chat], routes={"code": "coder"}, default="chat")}
    )


def test_the_task_comes_from_metadata(by_task: TestClient) -> None:
    body = {"model": "main", "messages": HI, "metadata": {"task": "code"}}
    route = by_task.post(URL, json=body).json()["route"]
    assert route["model"] == "coder" and route["task"] == "code"


def test_the_task_comes_from_the_header(by_task: TestClient) -> None:
    response = by_task.post(
        URL, json={"model": "main", "messages": HI}, headers={"X-LLMRouter-Task": "code"}
    )
    assert response.json()["route"]["model"] == "coder"
    assert response.json()["choices"][0]["message"]["content"] == "def f(): ..."


def test_without_a_task_the_default_answers(by_task: TestClient) -> None:
    assert (
        by_task.post(URL, json={"model": "main", "messages": HI}).json()["route"]["model"] == "chat"
    )


def test_metadata_task_wins_over_the_header(by_task: TestClient) -> None:
    body = {"model": "main", "messages": HI, "metadata": {"task": "chat"}}
    response = by_task.post(URL, json=body, headers={"X-LLMRouter-Task": "code"})
    assert response.json()["route"]["task"] == "chat"
    assert response.json()["route"]["model"] == "chat"


def test_an_unknown_task_is_a_400_naming_metadata_task() -> None:
    coder = recorder("coder", tasks={"code"})
    writer = recorder("writer", tasks={"write"})
    c = client({"main": ModelRouter(models=[coder, writer])})
    body = {"model": "main", "messages": HI, "metadata": {"task": "poetry"}}
    error = error_of(c.post(URL, json=body), 400)
    assert error["param"] == "metadata.task" and error["code"] == "unknown_task"
    assert "'poetry'" in error["message"]


# ------------------------------------------------------------ request errors


@pytest.fixture
def main() -> TestClient:
    return client({"main": ModelRouter(models=[recorder("fake")])})


def test_invalid_json_is_a_400(main: TestClient) -> None:
    response = main.post(
        URL, content=b'{"model": "main", ', headers={"content-type": "application/json"}
    )
    error = error_of(response, 400)
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_json"


def test_an_unknown_field_is_a_400_naming_it(main: TestClient) -> None:
    error = error_of(main.post(URL, json={"model": "main", "messages": HI, "temprature": 1}), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "temprature" and error["code"] == "extra_forbidden"
    assert "unknown parameter" in error["message"]


def test_empty_messages_are_a_400(main: TestClient) -> None:
    error = error_of(main.post(URL, json={"model": "main", "messages": []}), 400)
    assert error["param"] == "messages" and error["code"] == "too_short"


def test_a_bad_value_is_a_400_naming_the_field(main: TestClient) -> None:
    error = error_of(main.post(URL, json={"model": "main", "messages": HI, "n": 2}), 400)
    assert error["param"] == "n"
    error = error_of(main.post(URL, json={"model": "main", "messages": [{"role": "bot"}]}), 400)
    assert error["param"] == "messages.0.role"


def test_a_body_that_is_not_an_object_is_a_400(main: TestClient) -> None:
    error = error_of(main.post(URL, json=["model", "main"]), 400)
    assert error["type"] == "invalid_request_error" and error["param"] is None


def test_the_message_of_a_body_that_is_not_an_object_names_no_none(main: TestClient) -> None:
    error = error_of(main.post(URL, json=["model", "main"]), 400)
    assert not error["message"].startswith("None")


def test_an_unknown_model_is_a_404_listing_the_known_ones() -> None:
    a = recorder("a")
    c = client({"main": ModelRouter(models=[a]), "cheap": CostAwareRouter(models=[a])}, {"a": a})
    error = error_of(c.post(URL, json={"model": "gpt-5", "messages": HI}), 404)
    assert error["type"] == "not_found_error" and error["param"] == "model"
    assert error["code"] == "model_not_found"
    assert "'gpt-5'" in error["message"] and "main, cheap, a" in error["message"]


def test_a_body_over_the_limit_is_a_413() -> None:
    c = client({"main": ModelRouter(models=[recorder("fake")])}, max_request_bytes=300)
    small = {"model": "main", "messages": HI}
    assert c.post(URL, json=small).status_code == 200
    big = {"model": "main", "messages": [{"role": "user", "content": "x" * 400}]}
    error = error_of(c.post(URL, json=big), 413)
    assert error["code"] == "request_too_large" and "300 bytes" in error["message"]


def test_a_chunked_body_over_the_limit_is_a_413() -> None:
    c = client({"main": ModelRouter(models=[recorder("fake")])}, max_request_bytes=300)

    def body() -> Iterator[bytes]:
        yield b'{"model": "main", "messages": ['
        for _ in range(20):
            yield b'{"role": "user", "content": "xxxxxxxxxxxxxxxx"},'
        yield b'{"role": "user", "content": "x"}]}'

    response = c.post(URL, content=body(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert error_of(response, 413)["code"] == "request_too_large"


# ------------------------------------------------------------ API keys


@pytest.fixture
def keyed() -> TestClient:
    a = recorder("a")
    keys = [
        ApiKey(key=ALICE, name="alice", routers=["main"]),
        ApiKey(key=BOB, name="bob"),
    ]
    return client({"main": ModelRouter(models=[a]), "other": ModelRouter(models=[a])}, keys=keys)


@pytest.mark.parametrize("headers", [{}, bearer("sk-wrong-0123456789"), {"Authorization": ALICE}])
def test_a_missing_or_wrong_key_is_a_401(keyed: TestClient, headers: dict[str, str]) -> None:
    error = error_of(keyed.post(URL, json={"model": "main", "messages": HI}, headers=headers), 401)
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert error_of(keyed.get("/v1/models", headers=headers), 401)["type"] == "authentication_error"


def test_the_right_key_is_answered(keyed: TestClient) -> None:
    response = keyed.post(URL, json={"model": "main", "messages": HI}, headers=bearer(ALICE))
    assert response.status_code == 200, response.text
    response = keyed.post(URL, json={"model": "other", "messages": HI}, headers=bearer(BOB))
    assert response.status_code == 200, response.text


def test_a_router_the_key_may_not_use_is_a_403(keyed: TestClient) -> None:
    response = keyed.post(URL, json={"model": "other", "messages": HI}, headers=bearer(ALICE))
    error = error_of(response, 403)
    assert error["type"] == "permission_error" and error["param"] == "model"
    assert "alice" in error["message"] and "'other'" in error["message"]
    assert ALICE not in error["message"]


def test_the_keys_user_is_the_budget_user_whatever_the_request_says(tmp_path: Path) -> None:
    priced = recorder("priced", usage=(1000, 1000), input_cost=1.0, output_cost=2.0)
    router = CostAwareRouter(
        models=[priced],
        budget=Budget(usd=1.0, per="day", key="user"),
        spend_db=tmp_path / "spend.sqlite",
    )
    keys = [ApiKey(key=ALICE, name="alice-app", user="alice"), ApiKey(key=BOB, name="anon")]
    c = client({"cheap": router}, keys=keys)
    body = {"model": "cheap", "messages": HI, "user": "bob"}
    response = c.post(URL, json=body, headers=bearer(ALICE))
    assert response.status_code == 200, response.text
    assert response.json()["route"]["extra"]["budget"]["user"] == "alice"
    assert router.budget_status(user="alice")[0].spent_usd == pytest.approx(0.003)
    assert router.budget_status(user="bob")[0].spent_usd == 0.0
    # a key without a user: the request's own user field is charged
    assert c.post(URL, json=body, headers=bearer(BOB)).status_code == 200
    assert router.budget_status(user="bob")[0].spent_usd == pytest.approx(0.003)
    # /metrics: a gauge for the key's user; none for "bob", a user only requests named
    gauges = {
        dict(labels)["user"]: v
        for (name, labels), v in samples(c).items()
        if name == "llmrouter_budget_remaining_usd"
    }
    assert gauges == {"": 1.0, "alice": pytest.approx(0.997)}


# ------------------------------------------------------------ router failures


def test_every_model_failing_is_a_503_with_retry_after() -> None:
    c = client({"main": ModelRouter(models=[broken("a"), broken("b")], default="a")})
    response = c.post(URL, json={"model": "main", "messages": HI})
    error = error_of(response, 503)
    assert error["type"] == "service_unavailable" and error["code"] == "all_models_failed"
    assert "connection refused" in error["message"]
    assert response.headers["retry-after"] == "1"


@pytest.fixture
def refusing(tmp_path: Path) -> TestClient:
    priced = recorder("priced", input_cost=1.0, output_cost=1.0)
    router = CostAwareRouter(
        models=[priced], budget=Budget(usd=0.0, per="day"), spend_db=tmp_path / "spend.sqlite"
    )
    return client({"cheap": router})


@pytest.mark.parametrize("stream", [False, True])
def test_a_daily_budget_that_refuses_is_a_429_with_retry_after(
    refusing: TestClient, stream: bool
) -> None:
    response = refusing.post(URL, json={"model": "cheap", "messages": HI, "stream": stream})
    error = error_of(response, 429)
    assert error["type"] == "insufficient_quota" and error["code"] == "budget_exceeded"
    wait = response.headers["retry-after"]
    assert wait.isdigit() and 1 <= int(wait) <= 86_400


def test_a_per_request_budget_the_request_exceeds_is_a_400(tmp_path: Path) -> None:
    priced = recorder("priced", input_cost=1.0, output_cost=1.0)
    router = CostAwareRouter(models=[priced], budget=Budget(usd=0.0, per="request"))
    response = client({"cheap": router}).post(URL, json={"model": "cheap", "messages": HI})
    error = error_of(response, 400)
    assert error["code"] == "budget_per_request"
    assert "retry-after" not in response.headers


# ------------------------------------------------------------ health and metrics


def test_health() -> None:
    c = client(
        {"main": ModelRouter(models=[recorder("a")]), "other": ModelRouter(models=[recorder("b")])}
    )
    response = c.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "routers": ["main", "other"]}


def test_metrics_count_the_requests_made() -> None:
    routers = {
        "main": ModelRouter(models=[recorder("fake", usage=(3, 4))]),
        "down": ModelRouter(models=[broken()]),
    }
    c = client(routers)
    assert c.post(URL, json={"model": "main", "messages": HI}).status_code == 200
    assert c.post(URL, json={"model": "main", "messages": HI, "stream": True}).status_code == 200
    assert c.post(URL, json={"model": "down", "messages": HI}).status_code == 503
    assert c.post(URL, json={"model": "down", "messages": HI, "stream": True}).status_code == 503
    found = samples(c)

    def at(name: str, **labels: str) -> float | None:
        return found.get((name, frozenset(labels.items())))

    assert at("llmrouter_requests_total", router="main", model="fake", status="ok") == 2
    assert at("llmrouter_tokens_total", router="main", model="fake", direction="output") == 8
    assert at("llmrouter_time_to_first_token_seconds_count", router="main", model="fake") == 1
    assert at("llmrouter_requests_total", router="down", model="", status="error") == 2
    assert at("llmrouter_errors_total", router="down", error="AllModelsFailedError") == 2
    assert at("llmrouter_breaker_state", router="main", model="fake") == 0


def test_a_keys_request_rate_limit_answers_429_with_retry_after() -> None:
    limited = ApiKey(key="sk-limited-0123456789", name="slow", requests_per_minute=2)
    free = ApiKey(key="sk-free-0123456789", name="free")
    c = client({"main": ModelRouter(models=[recorder("m")])}, keys=[limited, free])
    body = {"model": "main", "messages": HI}
    for _ in range(2):
        assert c.post(URL, json=body, headers=bearer("sk-limited-0123456789")).status_code == 200
    refused = c.post(URL, json=body, headers=bearer("sk-limited-0123456789"))
    error = error_of(refused, 429)
    assert error["type"] == "rate_limit_error" and "'slow'" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    assert c.post(URL, json=body, headers=bearer("sk-free-0123456789")).status_code == 200


def test_replicas_on_one_state_share_a_keys_rate_limit(tmp_path: Path) -> None:
    """Two servers (replicas) on one state: a key's 2 requests a minute are 2 in all."""
    state = f"sqlite:///{tmp_path}/state.db"

    def replica() -> TestClient:
        key = ApiKey(key="sk-limited-0123456789", name="team", requests_per_minute=2)
        settings = ServeSettings(keys=[key])
        routers = {"main": ModelRouter(models=[recorder("m")])}
        return TestClient(create_app(routers, {}, settings, state=state))

    one, two = replica(), replica()
    body, auth = {"model": "main", "messages": HI}, bearer("sk-limited-0123456789")
    assert one.post(URL, json=body, headers=auth).status_code == 200
    assert two.post(URL, json=body, headers=auth).status_code == 200
    refused = error_of(one.post(URL, json=body, headers=auth), 429)
    assert "'team'" in refused["message"]
    error_of(two.post(URL, json=body, headers=auth), 429)


def test_an_unexpected_error_is_a_500_in_openais_shape_without_details() -> None:
    class Boom(ModelRouter):
        async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            raise RuntimeError("secret internals")

    c = TestClient(
        create_app({"main": Boom(models=[recorder("m")])}, {}), raise_server_exceptions=False
    )
    reply = c.post(URL, json={"model": "main", "messages": HI})
    error = error_of(reply, 500)
    assert error["type"] == "server_error" and "RuntimeError" in error["message"]
    assert "secret internals" not in error["message"]
