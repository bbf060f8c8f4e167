"""Per-call settings of `CostAwareRouter`, and the output limit a chat model is built with."""

from __future__ import annotations

import math
from typing import Any

from langchain_core.language_models import BaseChatModel

from llmrouter.core import RouteRequest
from llmrouter.errors import InvalidRequestError

__all__ = ["call_number", "call_option", "configured_max_tokens"]

_RANGES = {"min_quality": (0.0, 1.0), "max_cost": (0.0, math.inf)}
"""Valid per-call values of the numeric settings (bounds included)."""


def call_option(request: RouteRequest, key: str) -> Any:
    """A per-call setting: the call keyword, else ``config["metadata"]``.

    ``user`` also falls back to ``config["metadata"]["user_id"]``.

    Examples:
        >>> from langchain_core.messages import HumanMessage
        >>> from llmrouter.core import RouteRequest
        >>> request = RouteRequest(
        ...     messages=[HumanMessage("hi")], metadata={"user_id": "ann", "max_cost": 0.1}
        ... )
        >>> call_option(request, "user"), call_option(request, "max_cost")
        ('ann', 0.1)
    """
    if request.options.get(key) is not None:
        return request.options[key]
    if key == "user" and request.metadata.get("user") is None:
        return request.metadata.get("user_id")
    return request.metadata.get(key)


def call_number(request: RouteRequest, key: str, default: float | None) -> float | None:
    """The per-call ``max_cost`` (>= 0, finite) or ``min_quality`` (in [0, 1]), else ``default``.

    Raises:
        InvalidRequestError: the value is not a number in its range (a caller mistake).

    Examples:
        >>> from langchain_core.messages import HumanMessage
        >>> from llmrouter.core import RouteRequest
        >>> request = RouteRequest(messages=[HumanMessage("hi")], options={"min_quality": 2})
        >>> call_number(request, "max_cost", 0.5)
        0.5
        >>> call_number(request, "min_quality", None)
        Traceback (most recent call last):
        ...
        llmrouter.errors.InvalidRequestError: min_quality must be a number in [0, 1], got 2
    """
    value = call_option(request, key)
    if value is None:
        return default
    low, high = _RANGES[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        span = f"in [{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g} and finite"
        raise InvalidRequestError(f"{key} must be a number {span}, got {value!r}")
    return float(value)


def configured_max_tokens(chat: BaseChatModel) -> int | None:
    """The output limit a chat model is configured with, if it says."""
    holders: list[Any] = [chat, getattr(chat, "llm", None)]
    settings = getattr(chat, "pipeline_kwargs", None)
    if isinstance(settings, dict):
        holders.insert(0, settings)
    for holder in holders:
        for key in ("max_new_tokens", "max_tokens"):
            value = holder.get(key) if isinstance(holder, dict) else getattr(holder, key, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None
