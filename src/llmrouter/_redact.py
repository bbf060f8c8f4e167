"""Keep secrets out of what llmrouter records: route records, events, errors, stores.

A server may echo the key it rejected (``401 ... Incorrect API key provided:
sk-...``). Recorded error text therefore passes through `redact`, which removes
every secret the router's models were configured with (API keys and tokens,
from their fields or their clients, or the environment variables the SDKs
read) and the ``user:password@`` part of URLs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "[REDACTED]"
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+:[^/@\s]*@")
_BEARER = re.compile(
    r"(?i)\b(bearer\s+|(?:api[_-]?key|token|password)[\"']?\s*[:=]\s*[\"']?)"
    r"([A-Za-z0-9._~+/-]{8,})"
)
_SECRET_ENV = re.compile(r"(?i)(api_?key|token|secret|password)$")
_SECRET_FIELD = re.compile(r"(?i)(api_?key|token|secret|password)")
_MIN_LEN = 6  # shorter values ("EMPTY", "x") would mask ordinary words


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with ``secrets``, secret environment values, URL credentials and
    ``Bearer``/``api_key=`` values masked.

    Examples:
        >>> redact("401: Incorrect API key provided: sk-abc123456", ["sk-abc123456"])
        '401: Incorrect API key provided: [REDACTED]'
        >>> redact("cannot reach http://bob:hunter22@10.0.0.1/v1")
        'cannot reach http://[REDACTED]@10.0.0.1/v1'
    """
    values = {s for s in secrets if len(s) >= _MIN_LEN} | environment_secrets()
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _BEARER.sub(lambda m: f"{m[1]}{MASK}", text)


def environment_secrets() -> set[str]:
    """Values of environment variables named like keys (``*_API_KEY``, ``*_TOKEN``, ...)."""
    return {
        value
        for name, value in os.environ.items()
        if len(value) >= _MIN_LEN and _SECRET_ENV.search(name)
    }


def secrets_of(model: Any, _depth: int = 0) -> set[str]:
    """Secrets held by a LangChain model: `SecretStr` fields, string fields named
    like keys, and the tokens/keys of its HTTP clients (nested models included)."""
    found: set[str] = set()
    if _depth > 3 or model is None:
        return found
    if isinstance(model, BaseModel):
        for name in type(model).model_fields:
            value = getattr(model, name, None)
            if isinstance(value, SecretStr):
                found.add(value.get_secret_value())
            elif isinstance(value, str) and _SECRET_FIELD.search(name):
                found.add(value)
            elif isinstance(value, BaseModel):
                found |= secrets_of(value, _depth + 1)
    for attr in ("client", "async_client", "root_client", "root_async_client"):
        client = getattr(model, attr, None)
        for key in ("api_key", "token"):
            value = getattr(client, key, None) if client is not None else None
            if isinstance(value, str):
                found.add(value)
    return {s for s in found if len(s) >= _MIN_LEN}
