"""OpenAI chat-completions requests and responses, to and from LangChain messages.

The request is validated with pydantic (a malformed one is a 400 in OpenAI's
error shape, naming the field); unknown top-level fields are refused rather
than ignored, except the few OpenAI clients send that do not change the answer.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "developer", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    """One message of a chat-completions request."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @field_validator("tool_calls")
    @classmethod
    def _named_calls(cls, calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for call in calls or []:
            if not isinstance(call.get("function"), dict) or "name" not in call["function"]:
                raise ValueError(
                    'each tool call needs {"function": {"name": ..., "arguments": "..."}}'
                )
        return calls


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning_effort: str | None = None
    store: bool | None = None
    """Accepted and ignored (nothing is stored server-side)."""

    @field_validator("tools")
    @classmethod
    def _function_tools(cls, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for tool in tools or []:
            if tool.get("type") != "function" or "name" not in (tool.get("function") or {}):
                raise ValueError(
                    'each tool must be {"type": "function", "function": {"name": ...}}'
                )
        return tools

    def forced_tool(self) -> str | None:
        """``tool_choice`` as LangChain takes it: ``auto``/``none``/``required`` or a tool name."""
        choice = self.tool_choice
        if isinstance(choice, dict):
            return str((choice.get("function") or {}).get("name") or "required")
        return choice

    def call_kwargs(self) -> dict[str, Any]:
        """The LangChain call keywords of this request (tools are bound separately)."""
        kwargs: dict[str, Any] = {}
        limit = self.max_completion_tokens or self.max_tokens
        if limit is not None:
            kwargs["max_tokens"] = limit
        for name in (
            "temperature",
            "top_p",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "response_format",
            "logprobs",
            "top_logprobs",
            "reasoning_effort",
        ):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        if self.stop is not None:
            kwargs["stop"] = [self.stop] if isinstance(self.stop, str) else self.stop
        return kwargs


def to_messages(messages: list[ChatMessage]) -> list[BaseMessage]:
    """OpenAI messages as LangChain messages (content parts kept as content blocks)."""
    out: list[BaseMessage] = []
    for m in messages:
        content: Any = m.content if m.content is not None else ""
        if m.role in ("system", "developer"):
            out.append(SystemMessage(content))
        elif m.role == "user":
            out.append(HumanMessage(content, name=m.name) if m.name else HumanMessage(content))
        elif m.role == "assistant":
            calls = [
                {
                    "id": call.get("id"),
                    "name": call["function"]["name"],
                    "args": _arguments(call["function"].get("arguments")),
                }
                for call in m.tool_calls or []
            ]
            out.append(AIMessage(content, tool_calls=calls))
        else:
            out.append(ToolMessage(content, tool_call_id=m.tool_call_id or ""))
    return out


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"arguments": raw}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _tool_calls(message: AIMessage | AIMessageChunk) -> list[dict[str, Any]]:
    return [
        {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
        }
        for call in message.tool_calls
    ]


def finish_reason(message: BaseMessage) -> str:
    """``tool_calls``, ``length`` or ``stop``."""
    if isinstance(message, AIMessage) and message.tool_calls:
        return "tool_calls"
    meta = message.response_metadata
    reason = meta.get("finish_reason") or meta.get("stop_reason")
    return "length" if reason in ("length", "max_tokens") else "stop"


def usage_of(message: AIMessage) -> dict[str, int]:
    usage = message.usage_metadata
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    prompt, completion = usage["input_tokens"], usage["output_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("total_tokens", prompt + completion),
    }


def completion(
    message: AIMessage, *, model: str, cid: str, route: dict[str, Any] | None
) -> dict[str, Any]:
    """A ``chat.completion`` object; the route record rides along as ``route``."""
    body: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if message.tool_calls:
        body["tool_calls"] = _tool_calls(message)
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": body, "finish_reason": finish_reason(message), "logprobs": None}
        ],
        "usage": usage_of(message),
        "system_fingerprint": None,
    }
    if route is not None:
        out["route"] = route
    return out


def chunk(
    cid: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` object with one choice."""
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **extra,
    }


def chunk_delta(part: AIMessageChunk, first: bool) -> dict[str, Any] | None:
    """The ``delta`` of a LangChain chunk, or ``None`` when it carries nothing."""
    delta: dict[str, Any] = {"role": "assistant"} if first else {}
    text = part.text
    if text:
        delta["content"] = text
    calls = [
        {
            "index": c.get("index") if c.get("index") is not None else i,
            **({"id": c["id"], "type": "function"} if c.get("id") else {}),
            "function": {
                **({"name": c["name"]} if c.get("name") else {}),
                "arguments": c.get("args") or "",
            },
        }
        for i, c in enumerate(part.tool_call_chunks)
    ]
    if calls:
        delta["tool_calls"] = calls
    if first and "content" not in delta and not calls:
        delta["content"] = ""
    return delta if (first or len(delta) > 0) else None
