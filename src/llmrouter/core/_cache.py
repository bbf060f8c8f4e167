"""The router's response cache, as the executor uses it: keys, lookups, writes, replay.

An answer is cached per model actually chosen: the key holds what the model is
asked (each message's type, content, name, tool calls and tool call id -- not
ids or metadata, which differ between runs of one conversation) and the
model's own LangChain model string (its class, settings and the call's
keywords: temperature, tools, stop, ...), behind ``llmrouter:<spec name>:``.
The router still ranks (budgets, A/B arms and breakers decide as usual); only
the model call is skipped on a hit.

A semantic cache (``semantic = True`` on the cache, as on
`llmrouter.state.SemanticResponseCache`) gets the last user message as the prompt,
matched by meaning, and everything else -- router, task, earlier messages, model
and settings -- as the exactly matched model string.

A cache that fails never fails the call: its error is logged and the call goes
on as a miss (a lookup) or as answered (a write).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration

from llmrouter.core._calls import as_chunk

if TYPE_CHECKING:
    from langchain_core.caches import BaseCache

    from llmrouter.core._calls import ModelCall
    from llmrouter.spec import ModelSpec

logger = logging.getLogger("llmrouter")

__all__ = ["Found", "Lookup", "Store", "cache_key", "replay", "semantic_key"]

Found = tuple[AIMessage, dict[str, Any]]
"""A cached answer, and what the route record says about it (``extra`` keys)."""


def _asked(messages: list[BaseMessage]) -> str:
    """What the model sees of ``messages``, as canonical JSON."""
    asked = [
        {
            "type": m.type,
            "content": m.content,
            "name": m.name,
            "tool_calls": getattr(m, "tool_calls", None) or None,
            "tool_call_id": getattr(m, "tool_call_id", None),
            "additional_kwargs": m.additional_kwargs or None,
        }
        for m in messages
    ]
    return json.dumps(asked, sort_keys=True, default=str, ensure_ascii=False)


def _model_string(
    spec: ModelSpec, model: ModelCall, stop: list[str] | None, kwargs: dict[str, Any]
) -> str:
    assert model.model is not None
    llm_string = model.model._get_llm_string(stop=stop, **model.model_kwargs(kwargs))
    return f"llmrouter:{spec.name}:{llm_string}"


def cache_key(
    spec: ModelSpec,
    model: ModelCall,
    messages: list[BaseMessage],
    stop: list[str] | None,
    kwargs: dict[str, Any],
) -> tuple[str, str]:
    """``(prompt, llm_string)`` for asking ``spec`` (a plain chat model) ``messages``."""
    return _asked(messages), _model_string(spec, model, stop, kwargs)


def semantic_key(
    spec: ModelSpec,
    model: ModelCall,
    messages: list[BaseMessage],
    stop: list[str] | None,
    kwargs: dict[str, Any],
    scope: tuple[str, str | None],
) -> tuple[str, str] | None:
    """``(question, everything else)`` for a semantic cache; ``None`` unless the last
    message is a user's plain text. ``scope`` is (router name, task)."""
    last = messages[-1] if messages else None
    if last is None or last.type != "human" or not isinstance(last.content, str):
        return None
    if not last.content.strip() or last.additional_kwargs:
        return None
    router, task = scope
    rest = json.dumps(
        [router, task, _asked(messages[:-1]), last.name, _model_string(spec, model, stop, kwargs)]
    )
    return last.content, rest


@dataclass(frozen=True)
class Lookup:
    """Look ``spec``'s answer up before calling it (a step of the executor)."""

    spec: ModelSpec
    cache: BaseCache
    prompt: str
    llm_string: str
    semantic: bool = False

    def get(self) -> Found | None:
        """The cached answer, or ``None`` (a miss, or a cache that failed)."""
        try:
            if self.semantic:
                return _near(self.cache.nearest(self.prompt, self.llm_string))  # type: ignore[attr-defined]
            return _exact(self.cache.lookup(self.prompt, self.llm_string))
        except Exception as exc:
            _failed("read", self.cache, exc)
            return None

    async def aget(self) -> Found | None:
        """Async `get`."""
        try:
            if self.semantic:
                cache: Any = self.cache
                return _near(await cache.anearest(self.prompt, self.llm_string))
            return _exact(await self.cache.alookup(self.prompt, self.llm_string))
        except Exception as exc:
            _failed("read", self.cache, exc)
            return None


@dataclass(frozen=True)
class Store:
    """Write an answer to the cache (after the request was answered)."""

    lookup: Lookup
    message: AIMessage

    def put(self) -> None:
        """Write it; a failure is logged, never raised."""
        look = self.lookup
        try:
            look.cache.update(look.prompt, look.llm_string, [ChatGeneration(message=self.message)])
        except Exception as exc:
            _failed("write", look.cache, exc)

    async def aput(self) -> None:
        """Async `put`."""
        look = self.lookup
        try:
            await look.cache.aupdate(
                look.prompt, look.llm_string, [ChatGeneration(message=self.message)]
            )
        except Exception as exc:
            _failed("write", look.cache, exc)


def _first(generations: Any) -> AIMessage | None:
    if not generations:
        return None
    message = getattr(generations[0], "message", None)
    return message if isinstance(message, AIMessage) else None  # a text-LLM entry: a miss


def _exact(generations: Any) -> Found | None:
    message = _first(generations)
    return None if message is None else (message, {})


def _near(hit: Any) -> Found | None:
    message = None if hit is None else _first(hit.generations)
    return None if message is None else (message, {"cache_similarity": round(hit.similarity, 4)})


def _failed(what: str, cache: BaseCache, exc: BaseException) -> None:
    logger.warning(
        "response cache %s could not %s an answer (%s: %s); the call goes on without it",
        type(cache).__name__,
        what,
        type(exc).__name__,
        exc,
    )


_PIECES = re.compile(r"\s*\S+\s*|\s+")


def replay(message: AIMessage) -> list[AIMessageChunk]:
    """A cached answer as a stream: its text a word at a time, then one chunk with its
    tool calls and metadata (no usage: a cached answer uses no tokens)."""
    chunks: list[AIMessageChunk] = []
    rest = message  # content blocks: as they are, in the last chunk
    if isinstance(message.content, str):
        chunks = [AIMessageChunk(content=piece) for piece in _PIECES.findall(message.content)]
        rest = message.model_copy(update={"content": ""})
    last = as_chunk(rest)
    assert isinstance(last, AIMessageChunk)
    return [*chunks, last]
