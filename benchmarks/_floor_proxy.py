"""The floor for a Python gateway: a forwarder that does nothing but the HTTP hop.

``python _floor_proxy.py PORT BACKEND_URL API_KEY`` serves ``POST /v1/chat/completions``
and ``GET /health`` on 127.0.0.1:PORT with Starlette under uvicorn (the same server,
event loop and HTTP parser ``llmrouter serve`` runs on). Each request's body is sent
as it came to ``BACKEND_URL/chat/completions`` with one shared ``httpx.AsyncClient``
(the HTTP client the openai SDK uses), and the backend's bytes are sent back. No
parsing, routing, model, record or metrics: what it costs over the backend straight
is what the extra hop alone costs on this machine, so ``server.py --floor`` can show
how much of our overhead any Python gateway would pay.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def build(backend: str, key: str) -> Starlette:
    client = httpx.AsyncClient(
        base_url=backend,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        limits=httpx.Limits(max_connections=1024, keepalive_expiry=4.0),
        timeout=60,
    )

    async def chat(request: Request) -> Response:
        answer = await client.post("/chat/completions", content=await request.body())
        return Response(answer.content, answer.status_code, media_type="application/json")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/health", health),
        ],
        lifespan=lambda app: closing(client),
    )


@contextlib.asynccontextmanager
async def closing(client: httpx.AsyncClient) -> AsyncIterator[None]:
    async with client:
        yield


if __name__ == "__main__":
    port, backend, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(build(backend, key), host="127.0.0.1", port=port, log_level="warning")
