"""Image generation over an OpenAI-compatible ``/v1/images/generations`` endpoint.

OpenAI (``gpt-image-1``, ``dall-e-3``), and servers that speak the same API
(LocalAI, vLLM-Omni, ...). Building the spec makes no network call.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from pydantic import Field, PrivateAttr, SecretStr

from llmrouter.errors import ConfigurationError, reject_unknown_keywords
from llmrouter.models._common import (
    SPEC_FIELDS,
    keywords_of,
    make_spec,
    recorded,
    split_spec_kwargs,
)
from llmrouter.models._multimodal import CHAT_ONLY_KEYWORDS, MediaChatModel, text_only, usage
from llmrouter.multimodal._detect import sniff_mime
from llmrouter.spec import ModelSpec

__all__ = ["ChatOpenAIImages", "openai_images"]


class ChatOpenAIImages(MediaChatModel):
    """A chat model over ``images.generate`` of an OpenAI-compatible server.

    The last human message's text is the prompt. Each returned image becomes a
    standard image block: base64 (``b64_json``) with its sniffed mime type, or a
    ``url`` block when the server answers with URLs (nothing is downloaded).
    ``usage_metadata`` is the server's token usage when it reports one (GPT
    image models do), so a priced spec gets a cost; revised prompts (DALL-E 3)
    are in ``response_metadata["revised_prompts"]``.

    Examples:
        >>> from llmrouter.models._images import ChatOpenAIImages
        >>> chat = ChatOpenAIImages(model="dall-e-3", api_key="sk-x",
        ...                         parameters={"size": "1024x1024"})
        >>> chat.request_parameters({"n": 1})
        {'size': '1024x1024', 'response_format': 'b64_json', 'n': 1}
    """

    model: str
    """The model name the server expects."""
    base_url: str | None = None
    """Server root including ``/v1``; ``None``: OpenAI's API."""
    api_key: SecretStr
    """The key (servers without auth accept any value, e.g. ``"EMPTY"``)."""
    timeout: float | None = None
    """Seconds to wait for the server (image generation is slow: be generous)."""
    max_retries: int = 0
    """The OpenAI SDK's own retries; off, because the router's retry policy applies
    (with backoff and ``Retry-After``) and SDK retries would multiply attempts."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Request defaults: ``size``, ``quality``, ``n``, ``style``, ``output_format``,
    ``response_format``, ...; per-call keywords win. ``response_format`` defaults to
    ``b64_json``, except for GPT image models, which always return base64."""

    _sync: Any = PrivateAttr(default=None)
    _async: Any = PrivateAttr(default=None)

    @property
    def modality(self) -> str:
        return "image_generation"

    @property
    def model_label(self) -> str:
        return self.model

    def request_parameters(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The request's keywords: defaults, per-call values, ``response_format``."""
        options = {**self.parameters}
        if not self.model.startswith("gpt-image"):  # they reject response_format
            options.setdefault("response_format", "b64_json")
        options.update({k: v for k, v in kwargs.items() if k not in CHAT_ONLY_KEYWORDS})
        return options

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key.get_secret_value(),
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    def answer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        if self._sync is None:
            import openai

            self._sync = openai.OpenAI(**self._client_kwargs())
        prompt = text_only(message, "image generation")
        response = self._sync.images.generate(
            model=self.model, prompt=prompt, **self.request_parameters(kwargs)
        )
        return _message(response)

    async def aanswer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        if self._async is None:
            import openai

            from llmrouter.models._http import openai_async_http_client

            self._async = openai.AsyncOpenAI(
                **self._client_kwargs(), http_client=openai_async_http_client()
            )
        prompt = text_only(message, "image generation")
        response = await self._async.images.generate(
            model=self.model, prompt=prompt, **self.request_parameters(kwargs)
        )
        return _message(response)


def _message(response: Any) -> AIMessage:
    blocks: list[str | dict[str, Any]] = []
    revised = []
    for image in response.data or []:
        if image.b64_json:
            head = _head_bytes(image.b64_json)
            mime = sniff_mime(head) or f"image/{getattr(response, 'output_format', None) or 'png'}"
            blocks.append({"type": "image", "base64": image.b64_json, "mime_type": mime})
        elif image.url:
            blocks.append({"type": "image", "url": image.url})
        if getattr(image, "revised_prompt", None):
            revised.append(image.revised_prompt)
    metadata: dict[str, Any] = {"images": len(blocks)}
    if revised:
        metadata["revised_prompts"] = revised
    reported = getattr(response, "usage", None)
    counted = None
    if reported is not None:
        counted = usage(
            int(getattr(reported, "input_tokens", 0) or 0),
            int(getattr(reported, "output_tokens", 0) or 0),
        )
    return AIMessage(content=blocks, usage_metadata=counted, response_metadata=metadata)


def _head_bytes(b64: str) -> bytes:
    import base64

    return base64.b64decode(b64[:24] + "=" * (-len(b64[:24]) % 4))


_OWN = frozenset({"name", "model", "base_url", "api_key", "parameters"})
"""`ChatOpenAIImages` fields the factory sets itself (or takes as a dict)."""


@functools.cache
def _request_keywords() -> frozenset[str]:
    """What the openai SDK's ``images.generate`` takes besides ``model`` and ``prompt``
    (streaming excluded: the adapter reads one response)."""
    from openai.resources.images import Images

    names = set(inspect.signature(Images.generate).parameters)
    return frozenset(names - {"self", "model", "prompt", "stream", "partial_images"})


@recorded
def openai_images(
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    name: str | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A `ModelSpec` (modality ``image_generation``) for an OpenAI-compatible images API.

    Args:
        model: The model name (``"gpt-image-1"``, ``"dall-e-3"``, your server's).
            Also the spec's default ``name``.
        base_url: Server root including ``/v1``. Defaults to ``$OPENAI_BASE_URL``,
            then OpenAI's API.
        api_key: The key; default ``$OPENAI_API_KEY`` (local servers: ``"EMPTY"``).
        name: The spec's name within a router.
        **kwargs: `ModelSpec` fields go to the spec; ``timeout`` and
            ``max_retries`` to the client; any other keyword must be an
            ``images.generate`` argument (``size``, ``quality``, ``n``,
            ``style``, ...) and is a request default. A string
            ``quality`` is the API's (``"low"``, ``"hd"``); a dict is the spec's
            per-task quality scores.

    Raises:
        ConfigurationError: no API key was given or found; a keyword is neither a
            `ModelSpec` or `ChatOpenAIImages` field nor an ``images.generate``
            argument (the message names the closest valid one).

    Examples:
        >>> from llmrouter.models._images import openai_images
        >>> spec = openai_images("gpt-image-1", api_key="sk-x", size="1024x1024",
        ...                      quality="low", input_cost=5.0, output_cost=40.0)
        >>> spec.name, spec.modality, spec.chat_model.request_parameters({})
        ('gpt-image-1', 'image_generation', {'size': '1024x1024', 'quality': 'low'})
    """
    request_quality = kwargs.pop("quality") if isinstance(kwargs.get("quality"), str) else None
    spec_kwargs, rest = split_spec_kwargs(kwargs)
    spec_kwargs.setdefault("modality", "image_generation")
    if request_quality is not None:  # the API's quality="low"; a dict is ModelSpec.quality
        rest["quality"] = request_quality
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ConfigurationError(
            f"openai_images({model!r}): no API key. Pass api_key=... or set OPENAI_API_KEY; "
            "a local server without auth accepts api_key='EMPTY'."
        )
    own_fields = keywords_of(ChatOpenAIImages) - _OWN
    reject_unknown_keywords(
        f"openai_images({model!r})",
        [k for k in rest if k != "parameters"],
        own_fields | _request_keywords() | SPEC_FIELDS,
        "Pass other request fields in parameters={...} or extra_body={...}",
    )
    own = {k: rest.pop(k) for k in list(rest) if k in own_fields}
    url = base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
    chat = ChatOpenAIImages(
        model=model,
        base_url=url,
        api_key=SecretStr(key),
        parameters={**(rest.pop("parameters", None) or {}), **rest},
        **own,
    )
    return make_spec(name or model, chat, spec_kwargs)
