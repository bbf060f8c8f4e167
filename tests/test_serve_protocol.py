"""OpenAI chat-completions bodies: request validation, messages, response and chunk shapes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import ValidationError

from llmrouter.serve._protocol import (
    ChatMessage,
    ChatRequest,
    chunk,
    chunk_delta,
    completion,
    completion_id,
    finish_reason,
    to_messages,
    usage_of,
)

USER = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def request(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate({"model": "main", "messages": USER, **fields})


def messages(*raw: dict[str, Any]) -> list[ChatMessage]:
    return [ChatMessage.model_validate(m) for m in raw]


# ------------------------------------------------------------ ChatRequest


def test_a_minimal_request_has_no_call_keywords() -> None:
    chat = request()
    assert chat.model == "main" and not chat.stream
    assert chat.messages[0].role == "user" and chat.messages[0].content == "Hi"
    assert chat.call_kwargs() == {}


def test_an_unknown_top_level_field_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        request(temprature=0.2)
    error = info.value.errors()[0]
    assert error["type"] == "extra_forbidden" and error["loc"] == ("temprature",)


def test_fields_clients_send_that_change_nothing_are_accepted() -> None:
    chat = request(store=False, user="alice", parallel_tool_calls=True, metadata={"a": "b"})
    assert chat.user == "alice" and chat.metadata == {"a": "b"}
    assert "store" not in chat.call_kwargs() and "user" not in chat.call_kwargs()


def test_n_above_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        request(n=2)
    assert request(n=1).n == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"messages": []},
        {"temperature": 2.5},
        {"top_p": 1.5},
        {"max_tokens": 0},
        {"presence_penalty": -3},
        {"messages": [{"role": "robot", "content": "Hi"}]},
    ],
)
def test_bad_values_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        request(**fields)


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert request(max_tokens=100, max_completion_tokens=20).call_kwargs()["max_tokens"] == 20
    assert request(max_tokens=100).call_kwargs()["max_tokens"] == 100
    assert request(max_completion_tokens=7).call_kwargs()["max_tokens"] == 7


def test_call_kwargs_carry_the_sampling_options() -> None:
    kwargs = request(
        temperature=0.3, top_p=0.9, seed=7, response_format={"type": "json_object"}
    ).call_kwargs()
    assert kwargs == {
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 7,
        "response_format": {"type": "json_object"},
    }


def test_a_stop_string_becomes_a_list() -> None:
    assert request(stop="END").call_kwargs()["stop"] == ["END"]
    assert request(stop=["a", "b"]).call_kwargs()["stop"] == ["a", "b"]


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "retrieval"},
        {"type": "function"},
        {"type": "function", "function": {"description": "no name"}},
        {"function": {"name": "get_weather"}},
    ],
)
def test_tools_must_be_function_tools(tool: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=re.escape('each tool must be {"type": "function"')):
        request(tools=[WEATHER, tool])


def test_function_tools_are_kept_as_given() -> None:
    assert request(tools=[WEATHER]).tools == [WEATHER]


def test_forced_tool_of_each_tool_choice() -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert request(tools=[WEATHER], tool_choice=named).forced_tool() == "get_weather"
    assert request(tools=[WEATHER], tool_choice={"type": "function"}).forced_tool() == "required"
    assert request(tool_choice="auto").forced_tool() == "auto"
    assert request(tool_choice="none").forced_tool() == "none"
    assert request().forced_tool() is None


# ------------------------------------------------------------ to_messages


def test_to_messages_maps_every_role() -> None:
    out = to_messages(
        messages(
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Use JSON."},
            {"role": "user", "content": "Weather in Paris?", "name": "ann"},
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
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {"role": "assistant", "content": "It is 18C."},
        )
    )
    assert [type(m) for m in out] == [
        SystemMessage,
        SystemMessage,
        HumanMessage,
        AIMessage,
        ToolMessage,
        AIMessage,
    ]
    assert out[0].content == "Be brief." and out[1].content == "Use JSON."
    assert out[2].content == "Weather in Paris?" and out[2].name == "ann"
    call = out[3]
    assert isinstance(call, AIMessage) and call.content == ""
    assert call.tool_calls == [
        {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}, "type": "tool_call"}
    ]
    tool = out[4]
    assert isinstance(tool, ToolMessage) and tool.tool_call_id == "call_1"
    assert tool.content == "18C, sunny"
    assert out[5].content == "It is 18C." and not out[5].tool_calls  # type: ignore[attr-defined]


def test_tool_call_arguments_as_dict_empty_or_not_json() -> None:
    def args(raw: Any) -> dict[str, Any]:
        call = {"id": "c", "function": {"name": "f", "arguments": raw}}
        (msg,) = to_messages(messages({"role": "assistant", "tool_calls": [call]}))
        assert isinstance(msg, AIMessage)
        return msg.tool_calls[0]["args"]

    assert args({"a": 1}) == {"a": 1}
    assert args("") == {}
    assert args(None) == {}
    assert args("not json") == {"arguments": "not json"}
    assert args("[1, 2]") == {"arguments": [1, 2]}


def test_content_parts_are_kept_as_content_blocks() -> None:
    parts = [{"type": "text", "text": "What is this?"}]
    (msg,) = to_messages(messages({"role": "user", "content": parts}))
    assert isinstance(msg, HumanMessage) and msg.content == parts


# ------------------------------------------------------------ responses


def test_completion_of_a_text_answer() -> None:
    message = AIMessage(
        "Hello!",
        usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
    )
    route = {"router": "main", "model": "fake"}
    out = completion(message, model="main", cid="chatcmpl-1", route=route)
    assert out["object"] == "chat.completion" and out["id"] == "chatcmpl-1"
    assert out["model"] == "main" and isinstance(out["created"], int)
    (choice,) = out["choices"]
    assert choice["index"] == 0
    assert choice["message"] == {"role": "assistant", "content": "Hello!"}
    assert choice["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert out["route"] == route
    json.dumps(out)  # serialisable as is


def test_completion_without_route_has_no_route_field() -> None:
    out = completion(AIMessage("x"), model="m", cid="c", route=None)
    assert "route" not in out
    assert out["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_completion_of_tool_calls() -> None:
    message = AIMessage(
        "",
        tool_calls=[
            {"id": "call_9", "name": "get_weather", "args": {"city": "Paris"}},
            {"id": None, "name": "now", "args": {}},
        ],
    )
    out = completion(message, model="main", cid="c", route=None)
    (choice,) = out["choices"]
    assert choice["finish_reason"] == "tool_calls"
    body = choice["message"]
    assert body["content"] is None
    first, second = body["tool_calls"]
    assert first == {
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert json.loads(first["function"]["arguments"]) == {"city": "Paris"}
    assert second["id"].startswith("call_") and len(second["id"]) > len("call_")
    assert second["function"] == {"name": "now", "arguments": "{}"}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"finish_reason": "length"}, "length"),
        ({"stop_reason": "max_tokens"}, "length"),
        ({"finish_reason": "stop"}, "stop"),
        ({"stop_reason": "end_turn"}, "stop"),
        ({}, "stop"),
    ],
)
def test_finish_reason(metadata: dict[str, Any], expected: str) -> None:
    assert finish_reason(AIMessage("x", response_metadata=metadata)) == expected
    out = completion(AIMessage("x", response_metadata=metadata), model="m", cid="c", route=None)
    assert out["choices"][0]["finish_reason"] == expected


def test_tool_calls_win_over_a_length_finish() -> None:
    message = AIMessage(
        "",
        tool_calls=[{"id": "c", "name": "f", "args": {}}],
        response_metadata={"finish_reason": "length"},
    )
    assert finish_reason(message) == "tool_calls"


def test_usage_without_total_tokens_adds_up() -> None:
    message = AIMessage("x")
    message.usage_metadata = {"input_tokens": 4, "output_tokens": 6}  # type: ignore[typeddict-item]
    assert usage_of(message) == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}


def test_completion_ids_are_unique() -> None:
    a, b = completion_id(), completion_id()
    assert a.startswith("chatcmpl-") and a != b


def test_chunk_shape() -> None:
    out = chunk("c1", "main", 123, {"content": "Hi"}, "stop", usage={"total_tokens": 2})
    assert out == {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 123,
        "model": "main",
        "choices": [
            {"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {"total_tokens": 2},
    }


# ------------------------------------------------------------ chunk_delta


def test_the_first_delta_has_the_role() -> None:
    assert chunk_delta(AIMessageChunk("Hel"), first=True) == {
        "role": "assistant",
        "content": "Hel",
    }
    assert chunk_delta(AIMessageChunk(""), first=True) == {"role": "assistant", "content": ""}


def test_later_deltas_carry_only_content() -> None:
    assert chunk_delta(AIMessageChunk("lo"), first=False) == {"content": "lo"}


def test_an_empty_later_chunk_is_skipped() -> None:
    assert chunk_delta(AIMessageChunk(""), first=False) is None
    meta_only = AIMessageChunk("", response_metadata={"finish_reason": "stop"})
    assert chunk_delta(meta_only, first=False) is None


def test_tool_call_chunks_become_tool_call_deltas() -> None:
    opening = AIMessageChunk(
        "",
        tool_call_chunks=[{"id": "call_1", "name": "get_weather", "args": '{"ci', "index": 0}],
    )
    assert chunk_delta(opening, first=True) == {
        "role": "assistant",
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"ci'},
            }
        ],
    }
    rest = AIMessageChunk(
        "", tool_call_chunks=[{"id": None, "name": None, "args": 'ty": "Paris"}', "index": 0}]
    )
    assert chunk_delta(rest, first=False) == {
        "tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]
    }


def test_tool_call_chunks_without_index_are_numbered_in_order() -> None:
    part = AIMessageChunk(
        "",
        tool_call_chunks=[
            {"id": "a", "name": "f", "args": None, "index": None},
            {"id": "b", "name": "g", "args": "{}", "index": None},
        ],
    )
    delta = chunk_delta(part, first=False)
    assert delta is not None
    calls = delta["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1]
    assert [c["function"] for c in calls] == [
        {"name": "f", "arguments": ""},
        {"name": "g", "arguments": "{}"},
    ]
