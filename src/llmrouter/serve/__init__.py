"""An OpenAI-compatible server in front of your routers: ``llmrouter serve router.yaml``.

Any OpenAI client, in any language, calls the routers of a config file (and
its models, by name) without code changes: ``POST /v1/chat/completions``
(streamed or not; tools and ``response_format`` passed through), ``GET
/v1/models``, ``GET /health`` and ``GET /metrics`` (Prometheus). ``model``
names a router or a model; the task comes from ``metadata.task`` or the
``X-LLMRouter-Task`` header. Each answer carries its route record, as a
``route`` field and ``x-llmrouter-*`` headers. Needs the extra
``llmrouter[serve]``.

```python
from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="...")
client.chat.completions.create(model="support-router", messages=[...], stream=True)
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrouter.serve._app import create_app
    from llmrouter.serve._errors import APIError
    from llmrouter.serve._metrics import ServerMetrics
    from llmrouter.serve._settings import ApiKey, ServeSettings

# lazy: the settings are read by every config file; FastAPI loads only to serve
_EXPORTS = {
    "create_app": "_app",
    "APIError": "_errors",
    "ServerMetrics": "_metrics",
    "ApiKey": "_settings",
    "ServeSettings": "_settings",
}

__all__ = ["APIError", "ApiKey", "ServeSettings", "ServerMetrics", "create_app"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrouter.serve' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"llmrouter.serve.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
