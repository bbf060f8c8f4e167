"""`Relay`: passes a candidate's stream chunks on to the caller, keeping what the record needs."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.messages.ai import UsageMetadata, add_ai_message_chunks, add_usage
from langchain_core.outputs import ChatGenerationChunk

#: Response metadata keys the router owns; a candidate's own values move into the record.
OWNED_KEYS = ("model_name", "route")


def has_content(message: BaseMessage) -> bool:
    """True for a chunk that carries part of the answer: text, another content block,
    or a tool call chunk (a role-only or metadata-only chunk carries none)."""
    if getattr(message, "tool_call_chunks", None):
        return True
    content = message.content
    if isinstance(content, str):
        return bool(content)
    return any(
        block if isinstance(block, str) else block.get("type") != "text" or block.get("text")
        for block in content
    )


class Relay:
    """Passes candidates' stream chunks through, keeping what the record needs.

    Router-owned metadata keys are stripped from the chunks (merging them would
    concatenate model names); the final chunk carries the router's values.
    """

    def __init__(self) -> None:
        self.text = ""
        self.tool_calls = False
        self.answering = False
        """The current model has sent part of the answer (not just empty chunks)."""
        self.received = False
        """The current model has sent a chunk, of any kind."""
        self.usage: UsageMetadata | None = None
        self.upstream: dict[str, Any] = {}
        self.kept: list[AIMessageChunk] | None = None
        """The current model's chunks, kept to cache its answer (``None``: not kept)."""
        self._list_content = False

    def start_model(self) -> None:
        """A (new) model starts streaming: usage and backend metadata are its own."""
        self.usage, self.upstream, self.answering, self.received = None, {}, False, False
        if self.kept is not None:
            self.kept = []

    def joined(self) -> AIMessage:
        """The kept chunks as one message (what the model would have answered whole)."""
        assert self.kept
        whole = message_chunk_to_message(add_ai_message_chunks(*self.kept))
        assert isinstance(whole, AIMessage)
        metadata = {**whole.response_metadata, **self.upstream}  # the model's name, too
        return whole.model_copy(update={"response_metadata": metadata})

    def pass_on(self, chunk: BaseMessage) -> ChatGenerationChunk:
        message = (
            chunk if isinstance(chunk, AIMessageChunk) else AIMessageChunk(content=chunk.content)
        )
        self.received = True
        metadata = message.response_metadata
        if any(key in metadata for key in OWNED_KEYS):
            self.upstream.update({k: metadata[k] for k in OWNED_KEYS if k in metadata})
            kept = {k: v for k, v in metadata.items() if k not in OWNED_KEYS}
            message = message.model_copy(update={"response_metadata": kept})
        if message.usage_metadata:
            self.usage = add_usage(self.usage, message.usage_metadata)
        if message.chunk_position == "last":
            message = message.model_copy(update={"chunk_position": None})
        self.tool_calls = self.tool_calls or bool(message.tool_call_chunks)
        self.answering = self.answering or has_content(message)
        self.text += message.text
        if self.kept is not None:
            self.kept.append(message)
        self._list_content = isinstance(message.content, list)
        return ChatGenerationChunk(message=message)

    def last(self, response_metadata: dict[str, Any]) -> ChatGenerationChunk:
        content: str | list[str | dict[str, Any]] = [] if self._list_content else ""
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=content, response_metadata=response_metadata, chunk_position="last"
            )
        )
