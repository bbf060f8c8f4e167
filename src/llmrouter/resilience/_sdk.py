"""One retry layer: a wrapped model's own SDK retries are turned off.

The router retries (with backoff, ``Retry-After`` and a deadline) and falls
back. A client SDK that retries too -- ``ChatOpenAI``'s openai client retries
twice by default -- multiplies every attempt and delays fallback, so a
`ModelSpec` calls a copy of its model with ``max_retries=0`` (unless
``sdk_retries=True``). The user's own object is left as it was.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from langchain_core.language_models import BaseLanguageModel

M = TypeVar("M", bound=BaseLanguageModel[Any])

#: Class attribute that marks a router (see `llmrouter.core._types.ROUTER_MARKER`):
#: a router's ``max_retries`` is its own retry policy, not an SDK's.
_ROUTER_MARKER = "_llmrouter_is_router"


def without_sdk_retries(model: M) -> M:
    """``model``, or a copy of it whose client makes one request per call.

    Models with a ``max_retries`` field (``ChatOpenAI``, ``AzureChatOpenAI``,
    ``ChatAnthropic``, ...) get a copy with ``max_retries=0`` and the clients
    built from that setting rebuilt: openai's, which ``ChatOpenAI`` builds when
    the model is created, and clients cached on first use.
    """
    if "max_retries" not in type(model).model_fields or getattr(type(model), _ROUTER_MARKER, False):
        return model
    if model.max_retries == 0:  # type: ignore[attr-defined]
        return model
    copy = model.model_copy(update={"max_retries": 0})
    for name in _cached_properties(type(model)):
        copy.__dict__.pop(name, None)  # e.g. ChatAnthropic's client, built on first use
    for root, resource in (("root_client", "client"), ("root_async_client", "async_client")):
        client = getattr(copy, root, None)
        if client is not None and hasattr(client, "with_options"):
            client = client.with_options(max_retries=0)  # shares the HTTP connection pool
            setattr(copy, root, client)
            setattr(copy, resource, client.chat.completions)
    return copy


@functools.cache
def _cached_properties(cls: type) -> tuple[str, ...]:
    return tuple(
        name
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, functools.cached_property)
    )
