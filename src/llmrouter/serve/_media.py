"""``/v1/embeddings`` and ``/v1/images/generations``, where a router serves them.

A `MultiModalRouter` with an ``embeddings`` (``image_generation``) route, or a
model of that modality served by name, answers; each input is one routed call
(retries, fallbacks, budget and record as for chat). Anything else is a 400
that names the routers that can.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from typing import Any, Literal

from fastapi import FastAPI, Request
from langchain_core.messages import BaseMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmrouter.core._router import BaseRouter
from llmrouter.errors import LLMRouterError
from llmrouter.serve._errors import APIError, from_router_error


class EmbeddingsRequest(BaseModel):
    """The body of ``POST /v1/embeddings``."""

    model_config = ConfigDict(extra="forbid")

    model: str
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, gt=0)
    user: str | None = None


class ImagesRequest(BaseModel):
    """The body of ``POST /v1/images/generations``."""

    model_config = ConfigDict(extra="forbid")

    model: str
    prompt: str = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=10)
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: Literal["b64_json"] = "b64_json"
    output_format: str | None = None
    background: str | None = None
    user: str | None = None


def serves(router: BaseRouter, route: str) -> bool:
    """Does ``router`` answer ``route`` (a multimodal route, or a model of that modality)?"""
    from llmrouter.multimodal import MultiModalRouter

    if isinstance(router, MultiModalRouter):
        return route in router.routes
    return any(spec.modality == route for spec in router.models)


def add_media(app: FastAPI, state: Any) -> None:
    """Mount the embeddings and images endpoints; ``state`` gives ``targets``,
    ``authenticate(request)``, ``read(request)`` and ``observer``."""

    async def target(
        request: Request, body: type[EmbeddingsRequest | ImagesRequest], route: str
    ) -> Any:
        key = state.authenticate(request)
        raw = await state.read(request)
        try:
            parsed = body.model_validate(raw)
        except ValidationError as exc:
            raise state.invalid(exc) from None
        name = parsed.model
        if key is not None and not key.allows(name):
            raise APIError(
                403, f"this API key ({key.name}) may not use {name!r}", kind="permission_error"
            )
        router = state.targets.get(name)
        if not serves(router, route):
            able = [n for n, _ in state.targets.names() if serves(state.targets.get(n), route)]
            raise APIError(
                400,
                f"{name!r} does not serve {route}; "
                + (f"these do: {', '.join(able)}" if able else "no router or model here does"),
                param="model",
                code="wrong_modality",
            )
        return parsed, router, key

    async def routed(
        router: BaseRouter, inputs: list[str], route: str, name: str, key: Any, **kwargs: Any
    ) -> list[BaseMessage]:
        started = time.perf_counter()
        who = key.name if key is not None else None
        from llmrouter.multimodal import MultiModalRouter

        if isinstance(router, MultiModalRouter):  # the route is its task
            kwargs["task"] = route
        try:
            answers = await asyncio.gather(*(router.ainvoke(x, None, **kwargs) for x in inputs))
        except LLMRouterError as exc:
            state.observer.failed(name, exc, time.perf_counter() - started, key=who)
            raise from_router_error(exc) from None
        for answer in answers:
            route_record = answer.response_metadata.get("route") or {}
            state.observer.answered(name, route_record, time.perf_counter() - started, key=who)
        return list(answers)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        from llmrouter.multimodal._media import embedding_of

        body, router, key = await target(request, EmbeddingsRequest, "embeddings")
        inputs = [body.input] if isinstance(body.input, str) else body.input
        answers = await routed(router, inputs, "embeddings", body.model, key)
        data, tokens = [], 0
        for i, answer in enumerate(answers):
            vector = embedding_of(answer)
            if body.dimensions is not None:
                vector = vector[: body.dimensions]
            encoded: Any = vector
            if body.encoding_format == "base64":  # what the official client asks for by default
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
            tokens += (getattr(answer, "usage_metadata", None) or {}).get("input_tokens", 0)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": body.model, "usage": usage}

    @app.post("/v1/images/generations")
    async def images(request: Request) -> dict[str, Any]:
        from llmrouter.multimodal._media import images_of

        body, router, key = await target(request, ImagesRequest, "image_generation")
        options = body.model_dump(
            exclude_none=True, exclude={"model", "prompt", "n", "response_format", "user"}
        )
        answers = await routed(
            router, [body.prompt] * body.n, "image_generation", body.model, key, **options
        )
        data = [
            {"b64_json": base64.b64encode(png).decode()}
            for answer in answers
            for png in images_of(answer)
        ]
        if not data:
            raise APIError(502, "the model answered without an image", kind="server_error")
        return {"created": int(time.time()), "data": data}
