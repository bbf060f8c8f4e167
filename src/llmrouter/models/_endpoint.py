"""`huggingface_endpoint`: a Hugging Face Inference Endpoint, Inference Provider or TGI.

Built on ``ChatHuggingFace(llm=HuggingFaceEndpoint(...))``, which talks the
OpenAI-style ``/v1/chat/completions`` route through ``huggingface_hub``'s
``InferenceClient.chat_completion``. Building the spec makes no network call:
with an endpoint the model id is taken from the URL or repo id, never looked up
and no tokenizer is downloaded.

Known limit: with ``HF_HUB_OFFLINE=1`` ``huggingface_hub`` refuses *every* HTTP
request, including to your own server (``OfflineModeIsEnabled``). Offline, reach
a local TGI/vLLM through `llmrouter.models.openai_compatible` instead.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import warnings
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from huggingface_hub import AsyncInferenceClient
from langchain_huggingface import ChatHuggingFace, HuggingFaceEndpoint
from pydantic import ValidationError

from llmrouter.errors import ConfigurationError, reject_unknown_keywords
from llmrouter.models._common import SPEC_FIELDS, make_spec, recorded, split_spec_kwargs
from llmrouter.models._http import close_with_loop
from llmrouter.spec import ModelSpec

_CHAT_KEYWORDS = (set(ChatHuggingFace.model_fields) - {"llm"}) | {"stop_sequences"}
_ENDPOINT_KEYWORDS = set(HuggingFaceEndpoint.model_fields) - {
    "client",
    "async_client",
    "endpoint_url",
    "repo_id",
    "model",
    "huggingfacehub_api_token",
}


@recorded
def huggingface_endpoint(
    endpoint_url_or_repo_id: str,
    *,
    name: str | None = None,
    api_key: str | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A `ModelSpec` for a Hugging Face endpoint, chatting through ``ChatHuggingFace``.

    Args:
        endpoint_url_or_repo_id: ``http(s)://...`` is an endpoint URL (an Inference
            Endpoint, or your TGI server; ``/v1/chat/completions`` is appended);
            anything else is a Hub repo id served by Inference Providers. Also the
            spec's default ``name``.
        name: The spec's name within a router.
        api_key: The token. Defaults to ``$HF_TOKEN``, then
            ``$HUGGINGFACEHUB_API_TOKEN``, then the ``hf auth login`` token. An
            explicit ``api_key`` is sent to the server you name (servers without
            auth take ``"EMPTY"``); without one, a URL outside Hugging Face gets
            only what ``huggingface_hub`` finds by itself (``$HF_TOKEN`` or the
            saved login). Kept as a secret: it shows in no ``repr``.
        **kwargs: `ModelSpec` fields (``tasks``, ``input_cost``, ``output_cost``, ...)
            go to the spec; ``ChatHuggingFace`` fields (``max_tokens``,
            ``temperature``, ``stop``, ``model_id``, ``model_kwargs``, ...) to the
            chat model; ``HuggingFaceEndpoint`` fields (``timeout``, ``provider``,
            ``server_kwargs``, ``max_new_tokens``, ...) to the endpoint. ``model_id``
            is the model name sent in the request (default: the repo id; for a URL
            ``huggingface_hub`` sends ``"dummy"``, which TGI accepts but vLLM rejects).

    Raises:
        ConfigurationError: a repo id (or Hugging Face URL) without any token, an
            unknown keyword, or a value the LangChain classes reject.

    Examples:
        >>> from llmrouter.models import huggingface_endpoint
        >>> spec = huggingface_endpoint("http://127.0.0.1:8080", api_key="EMPTY",
        ...                             tasks={"chat"}, max_tokens=128, timeout=30)
        >>> spec.name, spec.chat_model.max_tokens, spec.chat_model.llm.timeout
        ('http://127.0.0.1:8080', 128, 30)
    """
    target = endpoint_url_or_repo_id
    is_url = target.startswith(("http://", "https://"))
    spec_kwargs, rest = split_spec_kwargs(kwargs)
    chat_kwargs = {k: v for k, v in rest.items() if k in _CHAT_KEYWORDS}
    endpoint_kwargs = {k: v for k, v in rest.items() if k in _ENDPOINT_KEYWORDS - _CHAT_KEYWORDS}
    reject_unknown_keywords(
        f"huggingface_endpoint({target!r})",
        sorted(rest),
        _CHAT_KEYWORDS | _ENDPOINT_KEYWORDS | SPEC_FIELDS,
        "Use a ModelSpec, ChatHuggingFace or HuggingFaceEndpoint field; send other request "
        "fields with model_kwargs={'extra_body': {...}}",
    )
    env_token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGINGFACEHUB_API_TOKEN")
    hf_hosted = _is_hf_hosted(target, is_url)
    if not (api_key or env_token or not hf_hosted or _has_saved_login()):
        raise ConfigurationError(
            f"huggingface_endpoint({target!r}): Hugging Face inference needs a token. "
            "Pass api_key=..., set HF_TOKEN, or run `hf auth login`."
        )
    model_id = chat_kwargs.pop("model_id", None)
    chat_kwargs.setdefault("stream_usage", True)
    try:
        llm = HuggingFaceEndpoint(
            **({"endpoint_url": target} if is_url else {"repo_id": target}),
            huggingfacehub_api_token=None,  # a plain str field: model_dump() would show it
            **endpoint_kwargs,
        )
        # An environment token is a Hub credential: Hugging Face hosts only.
        _use_own_clients(llm, api_key or (env_token if hf_hosted else None))
        with warnings.catch_warnings():
            # ChatHuggingFace probes for langchain_community, whose import warns.
            warnings.filterwarnings("ignore", ".*langchain-community", DeprecationWarning)
            chat = ChatHuggingFace(llm=llm, **chat_kwargs)
    except (ValidationError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"huggingface_endpoint({target!r}): invalid settings: {_describe(exc)}"
        ) from None
    if model_id is not None:
        chat.model_id = model_id  # ChatHuggingFace overwrites it while resolving
    return make_spec(name or target, chat, spec_kwargs)


def _use_own_clients(llm: HuggingFaceEndpoint, token: str | None) -> None:
    """Give ``llm`` the token (kept off its fields) and our loop-safe async client.

    Without a token ``huggingface_hub`` falls back to ``$HF_TOKEN`` or the saved
    login by itself, at request time.
    """
    llm.client.token = token
    llm.async_client = _LoopSafeAsyncInferenceClient(
        model=llm.model,
        timeout=llm.timeout,
        api_key=token,
        provider=llm.provider,  # type: ignore[arg-type]  # validated upstream on use
        **{k: v for k, v in llm.server_kwargs.items() if k in _CLIENT_OPTIONS},
    )


# What `server_kwargs` may add to the client (as LangChain does for its own clients).
_CLIENT_OPTIONS = set(inspect.signature(AsyncInferenceClient).parameters) - {
    "model",
    "base_url",
    "timeout",
    "token",
    "api_key",
    "provider",
}


class _LoopSafeAsyncInferenceClient(AsyncInferenceClient):
    """``AsyncInferenceClient`` that works from more than one event loop.

    Upstream keeps one httpx client for the instance's lifetime, bound to the
    first loop that used it: a second ``asyncio.run`` failed with "Event loop
    is closed". Here each loop gets its own client, closed when the loop ends.
    """

    _loop: asyncio.AbstractEventLoop | None = None

    async def _get_async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return await super()._get_async_client()  # type: ignore[no-untyped-call]
        # The old loop's stack only holds contexts that loop closed (or could not).
        self._loop, self._async_client, self.exit_stack = loop, None, AsyncExitStack()
        client = await super()._get_async_client()  # type: ignore[no-untyped-call]
        await close_with_loop(client.aclose)
        return client


def _is_hf_hosted(target: str, is_url: bool) -> bool:
    if not is_url:
        return True
    host = (urlparse(target).hostname or "").lower()
    return host in {"huggingface.co", "hf.space"} or host.endswith((".huggingface.co", ".hf.space"))


def _has_saved_login() -> bool:
    """An ``hf auth login`` token or CI identity exists (checked without network)."""
    from huggingface_hub import constants

    hub_env = os.environ.get("HUGGING_FACE_HUB_TOKEN") or os.environ.get("HF_OIDC_RESOURCE")
    return bool(hub_env) or Path(constants.HF_TOKEN_PATH).is_file()


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):  # messages only: input values may hold secrets
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc)
