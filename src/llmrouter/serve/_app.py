"""The OpenAI-compatible HTTP app: chat completions (streamed or not), models,
health and metrics, in front of the routers of a config file."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig
from pydantic import ValidationError

from llmrouter.core._router import BaseRouter
from llmrouter.errors import LLMRouterError
from llmrouter.record import route_chain
from llmrouter.serve._errors import APIError, from_router_error
from llmrouter.serve._media import add_media
from llmrouter.serve._metrics import CONTENT_TYPE, ServerMetrics
from llmrouter.serve._observe import Observer
from llmrouter.serve._protocol import (
    ChatRequest,
    chunk,
    chunk_delta,
    completion,
    completion_id,
    finish_reason,
    to_messages,
    usage_of,
)
from llmrouter.serve._reports import add_playground
from llmrouter.serve._settings import ApiKey, ServeSettings
from llmrouter.spec import ModelSpec

if TYPE_CHECKING:
    from llmrouter.state import SharedState

TASK_HEADER = "x-llmrouter-task"


class Targets:
    """What ``model`` may name: every router, and (optionally) every model alone."""

    def __init__(
        self, routers: Mapping[str, BaseRouter], models: Mapping[str, ModelSpec], direct: bool
    ) -> None:
        self.routers = dict(routers)
        self.models = dict(models) if direct else {}
        self._direct: dict[str, BaseRouter] = {}

    def names(self) -> list[tuple[str, str]]:
        """``(name, kind)`` of every target, routers first."""
        return [(n, "router") for n in self.routers] + [
            (n, "model") for n in self.models if n not in self.routers
        ]

    def get(self, name: str) -> BaseRouter:
        if name in self.routers:
            return self.routers[name]
        if name in self.models:
            if name not in self._direct:  # one model alone, through the same executor
                from llmrouter.task import ModelRouter

                spec = self.models[name]
                self._direct[name] = ModelRouter(models=[spec], default=spec.name, name=name)
            return self._direct[name]
        known = ", ".join(n for n, _ in self.names())
        raise APIError(
            404,
            f"The model {name!r} does not exist; this server has: {known}",
            kind="not_found_error",
            param="model",
            code="model_not_found",
        )


def create_app(
    routers: Mapping[str, BaseRouter],
    models: Mapping[str, ModelSpec] | None = None,
    settings: ServeSettings | None = None,
    *,
    state: str | SharedState | None = None,
) -> FastAPI:
    """The server app for ``routers`` (and, by name, ``models``). With ``state`` (a
    state URL or `SharedState`, as a config's top-level ``state:``), the keys'
    ``requests_per_minute`` count every server on that state together.

    Examples:
        >>> from fastapi.testclient import TestClient
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter import ModelRouter, ModelSpec
        >>> spec = ModelSpec(name="fake", model=FakeListChatModel(responses=["Hi!"]))
        >>> app = create_app({"main": ModelRouter(models=[spec], default="fake")})
        >>> body = {"model": "main", "messages": [{"role": "user", "content": "Hello"}]}
        >>> reply = TestClient(app).post("/v1/chat/completions", json=body).json()
        >>> reply["choices"][0]["message"]["content"], reply["route"]["model"]
        ('Hi!', 'fake')
    """
    settings = settings or ServeSettings()
    if state is not None:
        from llmrouter.state import open_state

        shared = open_state(state)
        for api_key in settings.keys:
            api_key.share_limit(shared)
    targets = Targets(routers, models or {}, settings.models_directly)
    metrics = ServerMetrics(routers, sorted({k.user for k in settings.keys if k.user}))
    observer = Observer(metrics, [k.key.get_secret_value() for k in settings.keys])
    app = FastAPI(title="llmrouter", docs_url=None, redoc_url=None)
    app.state.metrics = metrics
    app.state.targets = targets

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
        return exc.response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # OpenAI's shape for clients; the traceback goes to the server log, not to them
        message = f"internal error ({type(exc).__name__}); see the server's log"
        return APIError(500, message, kind="server_error", code="internal_error").response()

    add_playground(app, dict(routers), lambda request: _authenticate(request, settings))
    add_media(
        app,
        SimpleNamespace(
            targets=targets,
            observer=observer,
            invalid=_invalid,
            authenticate=lambda request: _authenticate(request, settings),
            read=lambda request: _read_json(request, settings.max_request_bytes),
        ),
    )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "routers": list(targets.routers)}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        key = _authenticate(request, settings)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "llmrouter", "kind": kind}
            for name, kind in targets.names()
            if key is None or key.allows(name)
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        started = time.perf_counter()
        key = _authenticate(request, settings)
        body = await _read_json(request, settings.max_request_bytes)
        try:
            chat = ChatRequest.model_validate(body)
        except ValidationError as exc:
            raise _invalid(exc) from None
        if key is not None and not key.allows(chat.model):
            raise APIError(
                403,
                f"this API key ({key.name}) may not use {chat.model!r}",
                kind="permission_error",
                param="model",
            )
        router = targets.get(chat.model)
        runnable: Any = router
        if chat.tools:
            runnable = router.bind_tools(chat.tools, tool_choice=chat.forced_tool())
        kwargs = chat.call_kwargs()
        task = (chat.metadata or {}).get("task") or request.headers.get(TASK_HEADER)
        if task:
            kwargs["task"] = task
        user = key.user if key is not None and key.user else chat.user
        config: RunnableConfig = {"metadata": {"user": user}} if user else {}
        messages = to_messages(chat.messages)
        who = key.name if key is not None else None
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            parts = runnable.astream(messages, config, **kwargs)
            stream = _Stream(chat.model, observer, started, who, settings.route_in_response)
            first = await stream.first(parts)
            return StreamingResponse(
                stream.events(parts, first, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            message: AIMessage = await runnable.ainvoke(messages, config, **kwargs)
        except LLMRouterError as exc:
            observer.failed(chat.model, exc, time.perf_counter() - started, key=who)
            raise from_router_error(exc) from None
        route = message.response_metadata.get("route") or {}
        observer.answered(chat.model, route, time.perf_counter() - started, key=who)
        cid = completion_id()
        payload = completion(
            message,
            model=chat.model,
            cid=cid,
            route=route if settings.route_in_response else None,
        )
        headers = _route_headers(route) if settings.route_in_response else {}
        return JSONResponse(payload, headers=headers)

    return app


# ------------------------------------------------------------ request handling


def _authenticate(request: Request, settings: ServeSettings) -> ApiKey | None:
    if not settings.keys:
        return None
    key = settings.authenticate(request.headers.get("authorization"))
    if key is None:
        raise APIError(
            401,
            "Incorrect or missing API key: send 'Authorization: Bearer <key>'",
            kind="authentication_error",
            code="invalid_api_key",
        )
    wait = key.take()
    if wait is not None:
        raise APIError(
            429,
            f"rate limit of key {key.name!r} ({key.requests_per_minute:g} requests per minute) "
            f"reached; retry in {wait:.1f} s",
            kind="rate_limit_error",
            code="rate_limit_exceeded",
            retry_after=wait,
        )
    return key


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body over {limit} bytes", code="request_too_large")
    raw = b""
    async for part in request.stream():
        raw += part
        if len(raw) > limit:
            raise APIError(413, f"request body over {limit} bytes", code="request_too_large")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise APIError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None


def _invalid(exc: ValidationError) -> APIError:
    err = exc.errors()[0]
    param = ".".join(str(p) for p in err["loc"]) or None
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown parameter"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    where = f"{param}: " if param else "the body: "
    return APIError(400, f"{where}{message}{more}", param=param, code=err["type"])


def _route_headers(route: Mapping[str, Any]) -> dict[str, str]:
    inner = route_chain(route)[-1]
    headers = {
        "x-llmrouter-router": str(route.get("router", "")),
        "x-llmrouter-model": str(inner.get("model", "")),
        "x-llmrouter-request-id": str(route.get("request_id", "")),
        "x-llmrouter-attempts": str(len(route.get("attempts") or [])),
        "x-llmrouter-latency-ms": f"{(route.get('latency_s') or 0) * 1000:.1f}",
    }
    if inner.get("cost_usd") is not None:
        headers["x-llmrouter-cost-usd"] = f"{inner['cost_usd']:.8f}"
    return headers


# ------------------------------------------------------------ streaming


class _Stream:
    """One streamed answer as server-sent events."""

    def __init__(
        self, target: str, observer: Observer, started: float, key: str | None, with_route: bool
    ) -> None:
        self.with_route = with_route
        self.target = target
        self.observer = observer
        self.started = started
        self.key = key

    async def first(self, parts: AsyncIterator[AIMessageChunk]) -> AIMessageChunk | None:
        """The first chunk, read before answering: a request that fails before any
        output gets a proper status code (429, 503, ...) instead of a broken stream."""
        try:
            return await anext(parts)
        except StopAsyncIteration:
            return None
        except LLMRouterError as exc:
            self._failed(exc)
            raise from_router_error(exc) from None

    def _failed(self, exc: BaseException) -> None:
        self.observer.failed(self.target, exc, time.perf_counter() - self.started, key=self.key)

    async def events(
        self,
        parts: AsyncIterator[AIMessageChunk],
        first: AIMessageChunk | None,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        target = self.target
        cid, created = completion_id(), int(time.time())
        full: AIMessageChunk | None = None
        ttft: float | None = None
        sent_role = False

        async def chunks() -> AsyncIterator[AIMessageChunk]:
            if first is not None:
                yield first
            async for part in parts:
                yield part

        try:
            async for part in chunks():
                full = part if full is None else full + part
                delta = chunk_delta(part, first=not sent_role)
                if delta is None:
                    continue
                if ttft is None and (delta.get("content") or delta.get("tool_calls")):
                    ttft = time.perf_counter() - self.started
                sent_role = True
                yield _event(chunk(cid, target, created, delta))
        except LLMRouterError as exc:  # mid-stream: the status line is gone; say it in the stream
            self._failed(exc)
            yield _event(from_router_error(exc).body())
            yield b"data: [DONE]\n\n"
            return
        message = AIMessage(
            content=full.content if full else "",
            tool_calls=full.tool_calls if full else [],
            response_metadata=full.response_metadata if full else {},
            usage_metadata=full.usage_metadata if full else None,
        )
        route = message.response_metadata.get("route") or {}
        seconds = time.perf_counter() - self.started
        self.observer.answered(target, route, seconds, ttft=ttft, key=self.key)
        usage = usage_of(message)
        last = chunk(cid, target, created, {}, finish_reason(message))
        if self.with_route:
            last["route"] = route
        if not include_usage:
            last["usage"] = usage  # usage in the final chunk, once (clients sum what they see)
        yield _event(last)
        if include_usage:  # OpenAI's form: one more chunk, no choices, with the usage
            yield _event({**chunk(cid, target, created, {}), "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"


def _event(data: Any) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
