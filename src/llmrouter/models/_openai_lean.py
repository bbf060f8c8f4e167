"""A lean ``chat.completions`` for `openai_compatible`'s ``ChatOpenAI``.

``ChatOpenAI`` builds the request body itself (plain JSON: messages, tools,
sampling fields) and hands it to the openai SDK's ``chat.completions.create``,
which walks it again with a type-driven ``transform``; the SDK then builds
pydantic models of the answer, which ``ChatOpenAI`` dumps straight back to
dicts. Against a server on the same machine that is more CPU than the HTTP
exchange itself: with llm-katan on 127.0.0.1, ``ainvoke`` took 4.6-5.2 ms p50
through ``create`` and 2.7-3.3 ms through this path (raw httpx: 1.2-1.5 ms).

`LeanCompletions` / `AsyncLeanCompletions` stand in for that resource. They send
the same body with the same client's documented low-level ``post`` -- the
client's base URL, key, headers, timeout, retries, error classes and SSE
decoding all apply -- and hand ``ChatOpenAI`` the decoded JSON, which it takes
as it is. What differs from ``create``: keyword arguments the SDK does not
know are sent as body fields instead of raising ``TypeError``, and an answer's
``response_metadata`` holds the fields the server sent (the SDK's models add
each absent optional field as ``None``, e.g. ``refusal``). A raw
*streamed* response (``include_response_headers=True`` with streaming) and
every other attribute (``parse``, ``with_streaming_response``, ...) go to the
SDK's resource.
"""

from __future__ import annotations

from typing import Any

import openai

try:  # openai>=3 ships on httpx2; older releases on httpx (the same API)
    import httpx2 as _httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx as _httpx  # type: ignore[no-redef]

__all__ = ["AsyncLeanCompletions", "LeanCompletions"]

_PATH = "/chat/completions"
_OPTIONS = {"extra_headers": "headers", "extra_query": "params", "extra_body": "extra_json"}


def request_parts(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``create``'s keyword arguments split into the JSON body and the SDK's request options.

    Examples:
        >>> body, options = request_parts(
        ...     {"model": "m", "messages": [], "extra_body": {"top_k": 5}, "timeout": 3.0})
        >>> body, sorted(options)
        ({'model': 'm', 'messages': []}, ['extra_json', 'security', 'timeout'])
    """
    body: dict[str, Any] = {}
    options: dict[str, Any] = {"security": {"bearer_auth": True}}  # as ``create`` asks
    for key, value in params.items():
        if isinstance(value, openai.NotGiven | openai.Omit):
            continue
        if key in _OPTIONS:
            if value is not None:
                options[_OPTIONS[key]] = value
        elif key == "timeout":  # None is "no timeout", so it is kept
            options["timeout"] = value
        else:
            body[key] = value
    return body, options


class RawResponse:
    """What ``ChatOpenAI`` reads of the SDK's raw response: ``parse()``, ``headers``,
    ``http_response``. ``parse()`` gives the decoded JSON (a non-JSON body as text,
    which ``ChatOpenAI`` reports as an unexpected response)."""

    def __init__(self, response: _httpx.Response) -> None:
        self.http_response = response
        self.headers = response.headers

    def parse(self) -> Any:
        try:
            return self.http_response.json()
        except ValueError:
            return self.http_response.text


class _Lean:
    def __init__(self, resource: Any, client: Any, *, raw: bool = False) -> None:
        self._resource = resource  # the SDK's own chat.completions (or its raw twin)
        self._client = client
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        try:  # from __dict__: a copy being built has none yet (getattr would recurse)
            resource = self.__dict__["_resource"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(resource, name)

    def _post_kwargs(self, params: dict[str, Any], stream_cls: type) -> dict[str, Any] | None:
        """``post``'s keyword arguments, or None where the SDK's resource must answer."""
        body, options = request_parts(params)
        if not body.get("stream"):
            cast_to = _httpx.Response if self._raw else object
            return {"body": body, "options": options, "cast_to": cast_to}
        if self._raw:
            return None
        return {
            "body": body,
            "options": options,
            "cast_to": object,
            "stream": True,
            "stream_cls": stream_cls,
        }


class LeanCompletions(_Lean):
    """``client.chat.completions`` for ``ChatOpenAI``, sent without the SDK's transform.

    Examples:
        >>> import openai
        >>> client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="EMPTY")
        >>> lean = LeanCompletions(client.chat.completions, client)
        >>> lean.parse == client.chat.completions.parse  # everything else: the SDK's
        True
    """

    @property
    def with_raw_response(self) -> LeanCompletions:
        return LeanCompletions(self._resource.with_raw_response, self._client, raw=True)

    def create(self, **params: Any) -> Any:
        how = self._post_kwargs(params, openai.Stream[object])
        if how is None:
            return self._resource.create(**params)
        answer = self._client.post(_PATH, **how)
        return RawResponse(answer) if self._raw else answer


class AsyncLeanCompletions(_Lean):
    """``chat.completions`` of an ``AsyncOpenAI`` client: see `LeanCompletions`."""

    @property
    def with_raw_response(self) -> AsyncLeanCompletions:
        return AsyncLeanCompletions(self._resource.with_raw_response, self._client, raw=True)

    async def create(self, **params: Any) -> Any:
        how = self._post_kwargs(params, openai.AsyncStream[object])
        if how is None:
            return await self._resource.create(**params)
        answer = await self._client.post(_PATH, **how)
        return RawResponse(answer) if self._raw else answer
