"""Token counting that works offline, for estimates made before a call.

A local `ChatHuggingFacePipeline` is counted with its own tokenizer and chat
template, exactly as it will count its usage; any model can be given a
tokenizer by name (a local tokenizer directory for ``transformers.AutoTokenizer``,
or a ``str -> int`` callable); everything else gets the documented estimate
``ceil(chars / 4)`` plus ``MESSAGE_OVERHEAD_TOKENS`` per message, and is
labelled ``"estimate"``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from langchain_core.messages import BaseMessage, ChatMessage

from llmrouter.spec import ModelSpec

__all__ = [
    "CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD_TOKENS",
    "TokenCount",
    "TokenCounter",
    "TokenizerLike",
    "estimate_tokens",
]

logger = logging.getLogger("llmrouter")

CHARS_PER_TOKEN = 4
"""The estimate's characters per token (English text averages about 4 in BPE vocabularies)."""
MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens added per message by estimates and plain tokenizers (role and separators)."""

TokenizerLike = str | Path | Callable[[str], int]
"""A local tokenizer directory (or cached hub id) for ``AutoTokenizer``, or a counting callable."""


class TokenCount(NamedTuple):
    """Prompt tokens of a request for one model, and how they were counted."""

    tokens: int
    method: Literal["tokenizer", "estimate"]


def estimate_tokens(text: str) -> int:
    """The documented offline estimate: ``ceil(len(text) / CHARS_PER_TOKEN)``.

    Examples:
        >>> from llmrouter._tokens import estimate_tokens
        >>> estimate_tokens("Summarize this."), estimate_tokens("")
        (4, 0)
    """
    return -(-len(text) // CHARS_PER_TOKEN)


class TokenCounter:
    """Counts the prompt tokens of a request per model, offline.

    ``tokenizers`` maps model names to a tokenizer (see `TokenizerLike`); a
    local `ChatHuggingFacePipeline` needs none (its own is used, loaded without
    the model weights). A tokenizer that fails to load falls back to the
    estimate, with a warning, and the count says ``"estimate"``.

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from langchain_core.messages import HumanMessage
        >>> from llmrouter import ModelSpec
        >>> from llmrouter._tokens import TokenCounter
        >>> remote = ModelSpec(name="remote", model=FakeListChatModel(responses=["x"]))
        >>> messages = [HumanMessage("Summarize this article, please.")]
        >>> TokenCounter().count(remote, messages)
        TokenCount(tokens=12, method='estimate')
        >>> TokenCounter({"remote": lambda text: len(text.split())}).count(remote, messages)
        TokenCount(tokens=8, method='tokenizer')
    """

    def __init__(self, tokenizers: Mapping[str, TokenizerLike] | None = None) -> None:
        self.tokenizers = dict(tokenizers or {})
        self._warned: set[str] = set()

    def count(
        self,
        spec: ModelSpec,
        messages: Sequence[BaseMessage],
        tools: Sequence[Mapping[str, Any]] = (),
    ) -> TokenCount:
        """Prompt tokens of ``messages`` (and bound tool schemas) on ``spec``'s model."""
        try:
            named = self.tokenizers.get(spec.name)
            if named is not None:
                tokens = self._count_with(named, messages, tools)
                if tokens is not None:
                    return TokenCount(tokens, "tokenizer")
            else:
                tokens = self._count_local(spec, messages)
                if tokens is not None:
                    return TokenCount(tokens, "tokenizer")
        except Exception as exc:  # a broken tokenizer must not fail the request
            # counting runs on every request: say it loudly once per model
            level = logging.DEBUG if spec.name in self._warned else logging.WARNING
            self._warned.add(spec.name)
            logger.log(level, "token counting for %r fell back to the estimate: %s", spec.name, exc)
        return TokenCount(_estimate(messages, tools), "estimate")

    def _count_with(
        self, named: TokenizerLike, messages: Sequence[BaseMessage], tools: Sequence[Any]
    ) -> int | None:
        if callable(named):
            texts = [str(m.text) for m in messages]
            extra = named(json.dumps(list(tools))) if tools else 0
            return sum(named(t) + MESSAGE_OVERHEAD_TOKENS for t in texts) + extra
        tokenizer = _load_tokenizer(str(named))
        if tokenizer is None:
            return None
        extra = _hf_len(tokenizer, json.dumps(list(tools)), special=False) if tools else 0
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(
                _turns(messages), tokenize=False, add_generation_prompt=True
            )
            return _hf_len(tokenizer, str(prompt), special=False) + extra
        return extra + sum(
            _hf_len(tokenizer, str(m.text), special=False) + MESSAGE_OVERHEAD_TOKENS
            for m in messages
        )

    def _count_local(self, spec: ModelSpec, messages: Sequence[BaseMessage]) -> int | None:
        module = sys.modules.get("llmrouter.models._huggingface")
        if module is None:  # never imported: no model here can be a local pipeline
            return None
        chat = spec.chat_model
        if not isinstance(chat, module.ChatHuggingFacePipeline):
            return None
        # counted as the adapter counts its usage; only the tokenizer loads, not the model
        return int(chat.count_prompt_tokens(messages))


_TOKENIZERS: dict[str, Any] = {}
_TOKENIZERS_LOCK = threading.Lock()


def _load_tokenizer(source: str) -> Any:
    """``AutoTokenizer`` for ``source``, loaded once per process (``None`` if it cannot be)."""
    with _TOKENIZERS_LOCK:
        if source in _TOKENIZERS:
            return _TOKENIZERS[source]
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as exc:
        logger.warning(
            "could not load tokenizer %r (%s); using the estimate of %d chars per token. "
            "Give a local tokenizer directory or a callable to count exactly.",
            source,
            exc,
            CHARS_PER_TOKEN,
        )
        tokenizer = None
    with _TOKENIZERS_LOCK:
        return _TOKENIZERS.setdefault(source, tokenizer)


_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _turns(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    return [
        {
            "role": m.role if isinstance(m, ChatMessage) else _ROLES.get(m.type, m.type),
            "content": str(m.text),
        }
        for m in messages
    ]


def _hf_len(tokenizer: Any, text: str, *, special: bool) -> int:
    # verbose=False: a prompt longer than the model's window is exactly what the count
    # is for (the router then skips that model); transformers would warn about it.
    return len(tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])


def _estimate(messages: Sequence[BaseMessage], tools: Sequence[Any]) -> int:
    tokens = sum(estimate_tokens(str(m.text)) + MESSAGE_OVERHEAD_TOKENS for m in messages)
    return tokens + (estimate_tokens(json.dumps(list(tools))) if tools else 0)
