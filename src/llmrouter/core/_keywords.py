"""Call keywords: refuse caller mistakes before any model is called.

A router passes the keywords of a call on to whichever model answers. A typo
(``temprature=``), a keyword no model knows, or a value no model takes
(``max_tokens=0``) would otherwise be sent to every candidate in turn, fail on
each, and end as `AllModelsFailedError` -- a caller mistake reported as model
failures. So the router checks the call first and raises `InvalidRequestError`.

The rule for keyword *names*: a keyword is accepted when

1. the router reads it (its ``route_keywords`` and ``peek_keywords``), or a
   candidate that is itself a router does (recursively);
2. it is in `STANDARD_CALL_KEYWORDS`: the parameters LangChain and the
   OpenAI-style, Hugging Face and llama.cpp/Ollama backends take per call
   (``temperature``, ``max_tokens``, ``top_p``, ``seed``, ``tools``,
   ``tool_choice``, ``response_format``, ``stream_options``, ``extra_body``, ...);
3. it names a field (or its alias) of a candidate's chat model class, or of
   the LLM an adapter wraps -- e.g. ``reasoning_effort`` with a ``ChatOpenAI``
   candidate;
4. a candidate declares ``accepts_any_call_keyword = True`` (media backends,
   which pass pipeline settings through); or
5. it starts with ``_`` (private plumbing of LangChain and other libraries).

Anything else is refused, naming the closest valid keyword. The *values* of the
standard keywords every model reads the same way are checked too: positive
integers for ``max_tokens``/``max_new_tokens``/``max_completion_tokens``/``n``,
a number >= 0 for ``temperature``, a number in [0, 1] for ``top_p`` (``None``
always passes: "not set"); and of the router keywords ``task`` (a non-empty
string), ``min_quality`` (in [0, 1]) and ``max_cost`` (>= 0).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from langchain_core.language_models import BaseChatModel, BaseLanguageModel
from pydantic import BaseModel

from llmrouter.core._types import ROUTER_MARKER
from llmrouter.errors import InvalidRequestError, closest
from llmrouter.spec import ModelSpec


class _Router(Protocol):
    """What the checks need of a router (`BaseRouter`; not imported: no cycle)."""

    route_keywords: ClassVar[frozenset[str]]
    peek_keywords: ClassVar[frozenset[str]]

    @property
    def models(self) -> Sequence[ModelSpec]: ...

    @property
    def router_name(self) -> str: ...


__all__ = [
    "STANDARD_CALL_KEYWORDS",
    "check_call",
    "check_options",
    "field_names",
    "normalise_stop",
]

STANDARD_CALL_KEYWORDS: frozenset[str] = frozenset(
    {
        # sampling and length
        "temperature", "max_tokens", "max_completion_tokens", "max_new_tokens", "top_p",
        "top_k", "min_p", "typical_p", "seed", "n", "presence_penalty", "frequency_penalty",
        "repetition_penalty", "repeat_penalty", "logit_bias", "logprobs", "top_logprobs",
        "do_sample", "num_beams", "num_predict", "stop", "stop_sequences",
        "return_full_text", "reasoning", "reasoning_effort", "verbosity",
        "min_new_tokens", "length_penalty", "no_repeat_ngram_size", "early_stopping",
        "num_return_sequences", "penalty_alpha", "eos_token_id", "pad_token_id",
        "bad_words_ids", "generation_config", "use_cache",
        # tools and structured output
        "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
        "response_format", "strict", "ls_structured_output_format",
        "structured_output_format",
        # transport and provider extras
        "stream", "stream_options", "stream_usage", "timeout", "user", "model",
        "extra_body", "extra_headers", "extra_query", "metadata", "store", "service_tier",
        "modalities", "audio", "prediction", "include", "truncation",
        "previous_response_id", "prompt_cache_key", "safety_identifier",
        "web_search_options", "options", "keep_alive", "format",
    }
)  # fmt: skip
"""Keywords passed to models without looking at the candidates (see the module rules)."""

#: ``BaseChatModel``'s own fields configure LangChain, not a request: no call keywords.
_LANGCHAIN_FIELDS = frozenset(BaseChatModel.model_fields) | frozenset(
    BaseLanguageModel.model_fields
)
_POSITIVE_INTS = ("max_tokens", "max_new_tokens", "max_completion_tokens", "n")


def normalise_stop(stop: Any, what: str = "stop") -> list[str] | None:
    """``stop`` as a list of strings (a lone string becomes a one-item list).

    Raises:
        InvalidRequestError: for anything but ``None``, a string or strings.
    """
    if stop is None or (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        return stop
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, tuple) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise InvalidRequestError(
        f"{what} must be a string or a list of strings, got {stop!r}; e.g. stop=['\\n\\n']"
    )


def check_call(router: _Router, kwargs: Mapping[str, Any]) -> None:
    """Refuse unknown keyword names and bad standard values in ``kwargs`` (model keywords).

    Raises:
        InvalidRequestError: naming the keyword and what to pass instead.
    """
    peek = router.peek_keywords
    unknown = [
        key
        for key in kwargs
        if key not in STANDARD_CALL_KEYWORDS and key not in peek and not key.startswith("_")
    ]
    if unknown:
        accepted = accepted_keywords(router)
        if accepted is not None:
            for key in unknown:
                if key not in accepted:
                    raise _unknown(router, key, accepted)
    for key in _POSITIVE_INTS:
        value = kwargs.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value <= 0
        ):
            raise InvalidRequestError(f"{key} must be a positive integer, got {value!r}")
    temperature = kwargs.get("temperature")
    if temperature is not None and not _number_in(temperature, 0.0, math.inf):
        raise InvalidRequestError(
            f"temperature must be a number >= 0, got {temperature!r}; e.g. temperature=0.2"
        )
    top_p = kwargs.get("top_p")
    if top_p is not None and not _number_in(top_p, 0.0, 1.0):
        raise InvalidRequestError(f"top_p must be a number in [0, 1], got {top_p!r}")


def check_options(
    options: Mapping[str, Any], metadata: Mapping[str, Any], route_keywords: Collection[str]
) -> None:
    """Check the router keywords of a call (and their ``config["metadata"]`` twins).

    Raises:
        InvalidRequestError: for a ``task`` that is not a non-empty string, a
            ``min_quality`` outside [0, 1] or a negative ``max_cost``.
    """
    task = options.get("task")
    if task is not None and (not isinstance(task, str) or not task.strip()):
        raise InvalidRequestError(
            f"task must be a non-empty string, got {task!r}; e.g. task='summarize'"
        )
    for key, low, high, example in (
        ("min_quality", 0.0, 1.0, "min_quality=0.7"),
        ("max_cost", 0.0, math.inf, "max_cost=0.01"),
    ):
        if key not in route_keywords:
            continue
        for where, source in (("", options), (" in config['metadata']", metadata)):
            value = source.get(key)
            if value is not None and not _number_in(value, low, high):
                span = f"in [{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
                raise InvalidRequestError(
                    f"{key}{where} must be a number {span}, got {value!r}; e.g. {example}"
                )


def accepted_keywords(router: _Router) -> frozenset[str] | None:
    """Every call keyword some candidate of ``router`` takes (``None``: any keyword).

    Computed once per router, on the first call with a keyword outside
    `STANDARD_CALL_KEYWORDS` (resolving lazily built candidates then).
    """
    private: dict[str, Any] = getattr(router, "__pydantic_private__", None) or {}
    cached: tuple[frozenset[str] | None] | None = private.get("_call_keywords")
    if cached is not None:
        return cached[0]
    names: set[str] | None = set(router.route_keywords | router.peek_keywords)
    for spec in router.models:
        more = _model_keywords(spec.chat_model)
        if more is None or names is None:
            names = None
            break
        names |= more
    result = frozenset(names) if names is not None else None
    private["_call_keywords"] = (result,)
    return result


def _model_keywords(chat: BaseChatModel) -> set[str] | None:
    if getattr(type(chat), ROUTER_MARKER, False):
        nested = accepted_keywords(chat)  # type: ignore[arg-type]  # a BaseRouter
        return None if nested is None else set(nested)
    if getattr(type(chat), "accepts_any_call_keyword", False):
        return None
    names = _fields(chat)
    wrapped = getattr(chat, "llm", None)  # LLM adapters, ChatHuggingFace
    if isinstance(wrapped, BaseLanguageModel):
        names |= _fields(wrapped)
    return names


def field_names(cls: type[BaseModel], exclude: Collection[str] = ()) -> set[str]:
    """Every field name and string alias of the pydantic class ``cls`` (what its
    constructor takes), except the fields in ``exclude``."""
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        if name in exclude:
            continue
        names.add(name)
        names |= {a for a in (info.alias, info.validation_alias) if isinstance(a, str)}
    return names


def _fields(model: BaseLanguageModel[Any]) -> set[str]:
    return field_names(type(model), _LANGCHAIN_FIELDS)


def _unknown(router: _Router, key: str, accepted: frozenset[str]) -> InvalidRequestError:
    valid = sorted(accepted | STANDARD_CALL_KEYWORDS | router.route_keywords)
    close = closest(key, valid)
    hint = f" (did you mean {close!r}?)" if close else ""
    return InvalidRequestError(
        f"{router.router_name}: unknown call keyword {key!r}{hint}; no candidate model "
        f"takes it, so every one would refuse the request. The router keywords are "
        f"{sorted(router.route_keywords)}; model keywords are LangChain's standard ones "
        "(temperature, max_tokens, stop, top_p, seed, tools, response_format, ...) and "
        "the fields of the candidates' chat models. Put a backend-specific parameter on "
        "the model itself, or in extra_body={...}."
    )


def _number_in(value: Any, low: float, high: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and low <= value <= high
