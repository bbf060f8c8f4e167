"""HTTP clients for the openai SDK: connection pools per event loop, idle connections
that expire before the server drops them, and sync requests capped to the router's
deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from llmrouter.resilience._timeouts import patience

try:  # openai>=3 ships on httpx2; older releases on httpx (the same API)
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx  # type: ignore[no-redef]

__all__ = [
    "DEADLINE_GRACE",
    "KEEPALIVE_EXPIRY",
    "async_pool",
    "close_with_loop",
    "httpx",
    "openai_async_http_client",
    "openai_http_client",
    "use_aiohttp",
]

DEADLINE_GRACE = 1.0
"""Seconds past the router's deadline an abandoned sync request may still read."""
KEEPALIVE_EXPIRY = 4.0
"""Seconds an idle connection is kept for reuse: under the 5 s after which uvicorn (vLLM,
llm-katan, FastAPI servers) closes one. With the SDK's 5 s a request could be sent on a
connection the server was closing at that moment, and fail."""


def openai_http_client() -> httpx.Client:
    """A sync HTTP client for the openai SDK whose requests end soon after the router
    stopped waiting for them (see `_DeadlineTransport`)."""
    import openai

    return openai.DefaultHttpxClient(transport=_DeadlineTransport())


class _DeadlineTransport(httpx.BaseTransport):
    """Caps each request's timeouts to the router's `patience` plus `DEADLINE_GRACE`.

    A sync call past its deadline is abandoned in a helper thread (it cannot be
    cancelled); without this cap it held its thread and connection until the
    client's own timeout -- forever with ``ChatOpenAI``'s default -- against a
    server that accepted the connection and never answered.
    """

    def __init__(self) -> None:
        self._pool = httpx.HTTPTransport(limits=_limits())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        wait = patience()
        if wait is not None:
            cap = wait + DEADLINE_GRACE
            given = request.extensions.get("timeout") or {}
            request.extensions["timeout"] = {
                key: cap if given.get(key) is None else min(given[key], cap)
                for key in ("connect", "read", "write", "pool")
            }
        return self._pool.handle_request(request)

    def close(self) -> None:
        self._pool.close()


_aiohttp = False
"""Whether new async pools are aiohttp's (`use_aiohttp`)."""


def use_aiohttp(enabled: bool = True) -> bool:
    """Put the async HTTP calls of `openai_compatible` models (and the other models on
    these clients) on aiohttp's connection pool instead of httpcore's.

    aiohttp parses HTTP in C; httpcore parses it in Python (h11) on anyio. The openai
    SDK offers the same transport (``openai[aiohttp]``) for the same reason. Measured
    side by side (``benchmarks/server.py --httpcore``, one ``llmrouter serve`` on each,
    four runs): 0.2-1.3 ms less p50 overhead per call, and 0.89-0.97x instead of
    0.73-0.85x the backend's throughput at 64 concurrent requests.

    ``llmrouter serve`` turns it on. It is off by default elsewhere, as in the openai
    SDK: aiohttp reports "Unclosed client session" at exit for an event loop that was
    never shut down (``loop.run_until_complete`` without ``asyncio.run``), and a remote
    model's own latency dwarfs the saving. Pools are per event loop, so the setting
    holds for loops that make their first call after it. Sync calls stay on httpcore.

    Returns:
        Whether new async pools will be aiohttp's: False where ``httpx-aiohttp`` (the
        ``serve`` extra) is not installed.

    Examples:
        >>> from llmrouter.models import use_aiohttp
        >>> use_aiohttp()        # where httpx-aiohttp is installed
        True
        >>> use_aiohttp(False)   # back to httpcore
        False
    """
    global _aiohttp
    _aiohttp = enabled and _aiohttp_transport() is not None
    return _aiohttp


def _aiohttp_transport() -> type[httpx.AsyncBaseTransport] | None:
    """httpx-aiohttp's transport class, or None where it is not installed."""
    try:
        if httpx.__name__ == "httpx2":
            from httpx_aiohttp.httpx2 import AiohttpTransport
        else:  # pragma: no cover - openai < 3
            from httpx_aiohttp import AiohttpTransport  # type: ignore[assignment]
    except ImportError:
        return None
    return AiohttpTransport


def async_pool() -> httpx.AsyncBaseTransport:
    """A connection pool for one event loop: aiohttp's after `use_aiohttp`, else httpcore's."""
    transport = _aiohttp_transport() if _aiohttp else None
    if transport is None:
        return httpx.AsyncHTTPTransport(limits=_limits())
    return transport(limits=_limits())  # type: ignore[call-arg]


def _unmasked(exc: httpx.ConnectTimeout, request: httpx.Request) -> httpx.TransportError:
    """The error httpcore would have raised where httpx-aiohttp maps aiohttp's
    connection errors to `ConnectTimeout` (the SDK then says "Request timed out."
    for a refused connection or a server that hung up)."""
    cause = exc.__cause__
    timeout = (TimeoutError, asyncio.TimeoutError)  # the same class from Python 3.11
    if cause is None or isinstance(cause, timeout) or "aiohttp" not in type(cause).__module__:
        return exc
    import aiohttp

    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(cause) or type(cause).__name__, request=request)
    return httpx.RemoteProtocolError(str(cause) or type(cause).__name__, request=request)


def _limits() -> httpx.Limits:
    """The openai SDK's connection limits, with `KEEPALIVE_EXPIRY`."""
    return httpx.Limits(
        max_connections=1000, max_keepalive_connections=100, keepalive_expiry=KEEPALIVE_EXPIRY
    )


def openai_async_http_client() -> httpx.AsyncClient:
    """An async HTTP client for the openai SDK that works across event loops."""
    import openai

    return openai.DefaultAsyncHttpxClient(transport=_PerLoopTransport())


class _PerLoopTransport(httpx.AsyncBaseTransport):
    """One connection pool per event loop.

    A connection belongs to the loop that opened it, and langchain-openai shares
    one async client per base URL process-wide: the second
    ``asyncio.run(model.ainvoke(...))`` (or the next pytest-asyncio test) failed
    with "Event loop is closed".
    """

    def __init__(self) -> None:
        self._pools: dict[asyncio.AbstractEventLoop, httpx.AsyncBaseTransport] = {}

    async def _pool(self) -> httpx.AsyncBaseTransport:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            for old in [old for old in list(self._pools) if old.is_closed()]:
                self._pools.pop(old, None)
            pool = self._pools[loop] = async_pool()
            await close_with_loop(pool.aclose)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = await self._pool()
        try:
            return await pool.handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            raise _unmasked(exc, request) from exc.__cause__

    async def aclose(self) -> None:
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()


_closers: set[AsyncIterator[None]] = set()


async def close_with_loop(aclose: Callable[[], Awaitable[Any]]) -> None:
    """Run ``aclose`` when the running event loop shuts down.

    ``asyncio.run`` and ``asyncio.Runner`` close every live async generator of
    their loop on exit (``loop.shutdown_asyncgens``); a suspended generator's
    ``finally`` is the one portable "loop is ending" hook asyncio offers.
    """

    async def closer() -> AsyncIterator[None]:
        try:
            yield
        finally:
            _closers.discard(gen)
            await aclose()

    gen = closer()
    _closers.add(gen)  # a strong reference until the loop closes it
    await gen.__anext__()
