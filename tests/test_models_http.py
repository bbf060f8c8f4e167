"""The openai SDK's async HTTP pools (`llmrouter.models._http`): httpcore's by default,
aiohttp's after `use_aiohttp`, one per event loop, errors as httpcore names them."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from llmrouter.models import _http, openai_compatible, use_aiohttp
from llmrouter.models._http import httpx
from llmrouter.testing import KatanServer

SECRET = "sk-http-test"


def _pool(chat: Any) -> Any:
    """The model's async pool for the running loop."""
    return chat.http_async_client._transport._pools[asyncio.get_running_loop()]


def _idle(pool: Any) -> list[Any]:
    """aiohttp's idle keep-alive connections (protocol objects) in ``pool``."""
    return [proto for conns in pool.client.connector._conns.values() for proto, _ in conns]


def _request(url: str, read: float = 5.0) -> httpx.Request:
    timeout = {"connect": 5.0, "read": read, "write": 5.0, "pool": 5.0}
    return httpx.Request("POST", url, json={}, extensions={"timeout": timeout})


@pytest.fixture
def on_aiohttp() -> Iterator[None]:
    before = _http._aiohttp
    assert use_aiohttp() is True
    yield
    use_aiohttp(before)


def test_pools_are_httpcores_by_default() -> None:
    assert _http._aiohttp is False
    assert type(_http.async_pool()) is httpx.AsyncHTTPTransport


@pytest.mark.usefixtures("on_aiohttp")
def test_after_use_aiohttp_new_pools_are_aiohttps() -> None:
    from httpx_aiohttp.httpx2 import AiohttpTransport

    assert isinstance(_http.async_pool(), AiohttpTransport)
    assert use_aiohttp(False) is False
    assert type(_http.async_pool()) is httpx.AsyncHTTPTransport


def test_without_httpx_aiohttp_it_stays_on_httpcore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx_aiohttp.httpx2", None)  # import fails
    assert use_aiohttp() is False
    assert type(_http.async_pool()) is httpx.AsyncHTTPTransport


@pytest.mark.usefixtures("on_aiohttp")
async def test_calls_reuse_one_aiohttp_connection_until_it_idles_out(
    katan_server: KatanServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_http, "KEEPALIVE_EXPIRY", 0.3)
    chat = openai_compatible(katan_server.model, katan_server.base_url, api_key=SECRET).chat_model
    first = await chat.ainvoke("one")
    assert "one" in str(first.content)
    pool = _pool(chat)
    assert type(pool).__module__.startswith("httpx_aiohttp")
    idle = _idle(pool)
    assert len(idle) == 1
    await chat.ainvoke("two")  # at once: the same connection
    assert _idle(pool) == idle
    await asyncio.sleep(0.6)
    await chat.ainvoke("three")  # idle longer than the expiry: a new one
    assert len(_idle(pool)) == 1 and _idle(pool)[0] is not idle[0]


@pytest.mark.usefixtures("on_aiohttp")
async def test_streaming_goes_through_the_aiohttp_pool(katan_server: KatanServer) -> None:
    chat = openai_compatible(katan_server.model, katan_server.base_url, api_key=SECRET).chat_model
    chunks = [chunk async for chunk in chat.astream("stream me")]
    assert len(chunks) > 1
    assert "stream me" in "".join(str(c.content) for c in chunks)
    assert type(_pool(chat)).__module__.startswith("httpx_aiohttp")


@pytest.mark.usefixtures("on_aiohttp")
async def test_a_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    transport = _http.openai_async_http_client()._transport
    try:
        with pytest.raises(httpx.ConnectError) as caught:
            await transport.handle_async_request(_request(f"http://127.0.0.1:{port}/v1/x"))
        assert not isinstance(caught.value, httpx.TimeoutException)
    finally:
        await transport.aclose()


@pytest.mark.usefixtures("on_aiohttp")
async def test_a_server_that_hangs_up_is_a_protocol_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = _http.openai_async_http_client()._transport
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.handle_async_request(_request(f"http://127.0.0.1:{port}/v1/x"))
    finally:
        server.close()
        await transport.aclose()


@pytest.mark.usefixtures("on_aiohttp")
async def test_a_server_that_never_answers_is_still_a_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = _http.openai_async_http_client()._transport
    try:
        with pytest.raises(httpx.TimeoutException):
            await transport.handle_async_request(
                _request(f"http://127.0.0.1:{port}/v1/x", read=0.3)
            )
    finally:
        server.close()
        await transport.aclose()


@pytest.mark.usefixtures("on_aiohttp")
async def test_a_refused_model_call_says_connection_error(unused_tcp_port: int) -> None:
    chat = openai_compatible("m", f"http://127.0.0.1:{unused_tcp_port}/v1", api_key=SECRET)
    with pytest.raises(Exception, match="Connection error") as caught:
        await chat.chat_model.ainvoke("hi")
    assert "timed out" not in str(caught.value).lower()
