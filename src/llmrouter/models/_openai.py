"""`openai_compatible`: any server speaking OpenAI's chat completions API.

OpenAI itself, vLLM, TGI, llama.cpp server, Ollama, llm-katan, ... through
`langchain_openai.ChatOpenAI`. Building the spec makes no network call.
"""

from __future__ import annotations

import math
import os
from typing import Any
from urllib.parse import urlparse

from langchain_core.language_models import LanguageModelInput
from langchain_openai import ChatOpenAI
from pydantic import SecretStr, ValidationError, model_validator
from typing_extensions import Self

from llmrouter.errors import ConfigurationError, reject_unknown_keywords
from llmrouter.models._common import keywords_of, make_spec, recorded, split_spec_kwargs
from llmrouter.models._http import httpx as _httpx
from llmrouter.models._http import openai_async_http_client, openai_http_client
from llmrouter.models._openai_lean import AsyncLeanCompletions, LeanCompletions
from llmrouter.spec import ModelSpec

# Aliases of the keywords we set ourselves; they would silently fight ours.
_OWN_KEYWORDS = {
    "model_name": "model",
    "openai_api_key": "api_key",
    "openai_api_base": "base_url",
    "request_timeout": "timeout",
}
_CLIENT_KEYWORDS = {"client", "root_client", "openai_proxy"}
DEFAULT_TIMEOUT = _httpx.Timeout(600.0, connect=5.0)
"""The client timeout when none is given: the openai SDK's own default (``ChatOpenAI``
hands the SDK ``timeout=None``, which means no timeout at all)."""


@recorded
def openai_compatible(
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    name: str | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A `ModelSpec` for a model behind an OpenAI-compatible chat completions API.

    Args:
        model: The model name the server expects (``"gpt-4o-mini"``, the vLLM
            ``--served-model-name``, ...). Also the spec's default ``name``.
        base_url: Server root including ``/v1``, e.g. ``"http://127.0.0.1:8000/v1"``.
            Defaults to ``$OPENAI_BASE_URL`` (or ``$OPENAI_API_BASE``), then OpenAI's API.
        api_key: The key. Defaults to ``$OPENAI_API_KEY``. Servers without auth
            accept any value: pass ``api_key="EMPTY"``. Kept as a secret: it shows
            in no ``repr``, log line or response metadata.
        name: The spec's name within a router (default: ``model``).
        **kwargs: `ModelSpec` fields (``tasks``, ``input_cost``, ``output_cost``,
            ``context_window``, ``quality``, ``tags``, ``modality``,
            ``cached_input_cost``) go to the spec; everything else (``timeout``,
            ``max_tokens``, ``temperature``, ``max_retries``, ...) to ``ChatOpenAI``.

    Raises:
        ConfigurationError: no API key was given or found; ``api_key`` is not a
            str, ``timeout`` not a positive number of seconds (or ``None``, or an
            ``httpx.Timeout``), ``base_url`` not an http(s) URL; or ``ChatOpenAI``
            rejected a keyword.

    Five things differ from a bare ``ChatOpenAI``: the SDK's own retries are off
    (``max_retries=0``: the router's retry policy applies instead, so attempts are
    not multiplied; an explicit ``max_retries=N`` keeps N SDK retries and sets the
    spec's ``sdk_retries``); the client always has a timeout (default: 5 s to
    connect, 600 s to read, as the SDK's own default), and a sync call the router
    stopped waiting for ends one second past the router's deadline, releasing its
    connection; usage is reported when streaming (``stream_usage=True``); servers
    other than OpenAI receive ``max_tokens`` (which vLLM, TGI, llama.cpp, Ollama
    all read) instead of ``max_completion_tokens``; and async calls work from any
    number of event loops (e.g. repeated ``asyncio.run``).

    Examples:
        >>> from llmrouter.models import openai_compatible
        >>> spec = openai_compatible("qwen2.5-7b", "http://127.0.0.1:8000/v1",
        ...                          api_key="EMPTY", tasks={"chat"}, max_tokens=256)
        >>> spec.name, spec.chat_model.max_tokens
        ('qwen2.5-7b', 256)
    """
    spec_kwargs, chat_kwargs = split_spec_kwargs(kwargs)
    for alias, ours in _OWN_KEYWORDS.items():
        if alias in chat_kwargs:
            raise ConfigurationError(
                f"openai_compatible({model!r}): pass {ours}= instead of {alias}="
            )
    what = f"openai_compatible({model!r})"
    reject_unknown_keywords(
        what,
        chat_kwargs,
        keywords_of(ChatOpenAI) - set(_OWN_KEYWORDS),
        "Other request fields go in model_kwargs={...} or extra_body={...}",
    )
    if api_key is not None and not isinstance(api_key, str | SecretStr):
        raise ConfigurationError(
            f"{what}: api_key must be a str (the key itself), got a {type(api_key).__name__}"
        )
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ConfigurationError(
            f"{what}: no API key. Pass api_key=... or set "
            "OPENAI_API_KEY; a local server without auth accepts api_key='EMPTY'."
        )
    url = _checked_url(what, base_url)
    # A client without a timeout waits forever on a server that never answers.
    chat_kwargs["timeout"] = _checked_timeout(what, chat_kwargs.get("timeout", DEFAULT_TIMEOUT))
    # Cost accounting reads usage; servers that do not know `stream_options` ignore it.
    chat_kwargs.setdefault("stream_usage", True)
    # The router retries (with backoff, Retry-After and a deadline) and falls back;
    # the SDK's own retries would multiply attempts and delay fallback. Asked for
    # explicitly, they stay (and the spec keeps them).
    if chat_kwargs.get("max_retries", 0) != 0:
        spec_kwargs.setdefault("sdk_retries", True)
    chat_kwargs.setdefault("max_retries", 0)
    if not {"http_async_client", "async_client", "openai_proxy"} & chat_kwargs.keys():
        chat_kwargs["http_async_client"] = openai_async_http_client()
    if not ({"http_client"} | _CLIENT_KEYWORDS) & chat_kwargs.keys():
        chat_kwargs["http_client"] = openai_http_client()
    chat_class = ChatOpenAI if _is_openai(url) else _ServerChatOpenAI
    try:
        chat = chat_class(model=model, base_url=url, api_key=SecretStr(key), **chat_kwargs)
    except ValidationError as exc:
        problems = "; ".join(  # messages only: input values may hold secrets
            f"{'.'.join(map(str, err['loc'])) or '(arguments)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(
            f"openai_compatible({model!r}): ChatOpenAI rejected the settings: {problems}"
        ) from None
    return make_spec(name or model, chat, spec_kwargs)


class _ServerChatOpenAI(ChatOpenAI):
    """``ChatOpenAI`` for servers other than OpenAI's.

    ``ChatOpenAI`` renames ``max_tokens`` to ``max_completion_tokens``, which only
    OpenAI and recent vLLM read; llama.cpp, Ollama, older TGI and llm-katan ignore
    it and generate up to their own default.

    Its SDK clients' ``chat.completions`` are the lean ones of `_openai_lean` (the
    JSON body sent as built, the JSON answer taken as it is): on a server on the
    same machine that halves the time a call spends in Python.
    """

    @model_validator(mode="after")
    def _lean_completions(self) -> Self:
        # Only the resources of clients ChatOpenAI built itself: a client passed in
        # (``client=``/``async_client=``) is the caller's and stays as it is.
        root, root_async = self.root_client, self.root_async_client
        if root is not None and self.client is root.chat.completions:
            self.client = LeanCompletions(self.client, root)
        if root_async is not None and self.async_client is root_async.chat.completions:
            self.async_client = AsyncLeanCompletions(self.async_client, root_async)
        return self

    def _get_request_payload(
        self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
        if "max_completion_tokens" in payload and "max_tokens" not in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        return payload


def _is_openai(url: str | None) -> bool:
    return url is None or (urlparse(url).hostname or "").endswith("api.openai.com")


def _checked_url(what: str, base_url: Any) -> str | None:
    """The base URL (given, or from the environment), if it is an http(s) URL."""
    source, url = "base_url", base_url
    if not base_url:
        for source in ("OPENAI_BASE_URL", "OPENAI_API_BASE"):
            url = os.environ.get(source)
            if url:
                break
        else:
            return None  # OpenAI's API
    parsed = urlparse(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        shown = repr(url) if isinstance(url, str) and "@" not in url else f"a {type(url).__name__}"
        raise ConfigurationError(
            f"{what}: {source} must be an http(s) URL including the API root, such as "
            f"'http://127.0.0.1:8000/v1'; got {shown}"
        )
    return str(url)


def _checked_timeout(what: str, timeout: Any) -> Any:
    """``timeout`` if it is positive seconds, ``(connect, read)``, an httpx Timeout or None."""
    values = timeout if isinstance(timeout, tuple) and len(timeout) == 2 else (timeout,)
    if timeout is None or isinstance(timeout, _httpx.Timeout) or all(map(_seconds, values)):
        return timeout
    raise ConfigurationError(
        f"{what}: timeout must be a positive number of seconds or None (or an "
        f"httpx.Timeout), got {timeout!r}"
    )


def _seconds(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and math.isfinite(value)
    )
