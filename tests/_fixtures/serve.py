"""``llmrouter serve`` in-process: a real uvicorn server on 127.0.0.1 for a test.

`serve_app` runs any ASGI app in a background thread (``uvicorn.Config`` +
``uvicorn.Server``) on a socket bound here to a free port (so no other process
can take the port between probing and binding), returns once ``/health``
answers, and stops it on leaving (``should_exit``, then join). `routed_server`
serves a config built the way ``llmrouter serve`` builds it -- a YAML file
through ``load_config(path).build()`` and ``create_app`` -- in front of the
llm-katan echo server of ``katan_server``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from llmrouter import load_config
from llmrouter.config import RouterSet
from llmrouter.testing import KatanServer

__all__ = [
    "API_KEY",
    "DEAD_URL",
    "LIMITED_KEY",
    "RoutedServer",
    "ServedApp",
    "free_port",
    "routed_config",
    "routed_server",
    "serve_app",
    "wait_healthy",
]

API_KEY = "sk-llmrouter-test-0123456789"
"""The key of ``routed_server`` that may use every router and model."""
LIMITED_KEY = "sk-llmrouter-limited-0123456789"
"""A key of ``routed_server`` restricted to ``support-router``."""
DEAD_URL = "http://127.0.0.1:9/v1"
"""Nothing listens on the discard port: every connection is refused at once."""

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class ServedApp:
    """An app served by uvicorn in a thread of this process."""

    url: str
    """Server root, e.g. ``http://127.0.0.1:40123``."""
    server: uvicorn.Server = field(repr=False)
    thread: threading.Thread = field(repr=False)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``<url>/v1``)."""
        return f"{self.url}/v1"


def free_port() -> int:
    """A port free on 127.0.0.1 right now (for a subprocess that binds it itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, timeout: float, alive: Any = None) -> bool:
    """Poll ``<url>/health`` until it answers ``{"status": "ok"}``.

    ``alive`` (a callable) is asked between polls; ``False`` gives up early
    (the server thread or process has died).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with _NO_PROXY.open(url + "/health", timeout=1) as response:
                if json.loads(response.read()).get("status") == "ok":
                    return True
        except (OSError, ValueError):  # not listening yet
            pass
        time.sleep(0.02)
    return False


@contextlib.contextmanager
def serve_app(
    app: Any, *, startup_timeout: float = 15.0, shutdown_timeout: float = 5.0
) -> Iterator[ServedApp]:
    """Serve ``app`` on 127.0.0.1 (a free port) for the ``with`` block.

    Streams still open when the block ends get ``shutdown_timeout`` seconds to
    finish; the thread is then joined (and forced down if it has not stopped).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=shutdown_timeout,
    )
    server = uvicorn.Server(config)
    # not the main thread: uvicorn installs no signal handlers here
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    served = ServedApp(url=f"http://127.0.0.1:{port}", server=server, thread=thread)
    try:
        if not wait_healthy(served.url, startup_timeout, alive=thread.is_alive):
            raise RuntimeError(f"the app on {served.url} did not answer /health in time")
        yield served
    finally:
        server.should_exit = True
        thread.join(timeout=shutdown_timeout + 5)
        if thread.is_alive():  # pragma: no cover - only when a stream hangs
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()


# ------------------------------------------------------------ the routed server


def routed_config(
    katan: KatanServer,
    *,
    serve: Mapping[str, Any] | None = None,
) -> str:
    """A config file's text: model ``echo`` (llm-katan, priced) and ``dead`` (nothing
    listens), routers ``support-router`` (cost, over ``echo``) and ``dead-router``
    (over ``dead``, one attempt), and two API keys (`API_KEY`, `LIMITED_KEY`)."""
    settings: dict[str, Any] = {
        "keys": [
            {"key": API_KEY, "name": "tests", "user": "tester"},
            {"key": LIMITED_KEY, "name": "limited", "routers": ["support-router"]},
        ],
        **(serve or {}),
    }
    config = {
        "version": 1,
        "models": {
            "echo": {
                "factory": "openai_compatible",
                "model": katan.model,
                "base_url": katan.base_url,
                "api_key": katan.api_key,
                "input_cost": 0.15,
                "output_cost": 0.60,
                "timeout": 30,
            },
            "dead": {
                "factory": "openai_compatible",
                "model": katan.model,
                "base_url": DEAD_URL,
                "api_key": "sk-nobody-listens",
                "input_cost": 0.15,
                "output_cost": 0.60,
                "retry": {"attempts": 1},
            },
        },
        "routers": {
            "support-router": {"type": "cost", "models": ["echo"]},
            "dead-router": {"type": "cost", "models": ["dead"], "retry": {"attempts": 1}},
        },
        "default": "support-router",
        "serve": settings,
    }
    return json.dumps(config, indent=2)  # JSON is YAML


@dataclass
class RoutedServer:
    """``routed_server``: the app of a config file, served, in front of llm-katan."""

    served: ServedApp = field(repr=False)
    built: RouterSet = field(repr=False)
    config_path: Path
    katan: KatanServer = field(repr=False)
    api_key: str = API_KEY
    limited_key: str = LIMITED_KEY
    router: str = "support-router"
    """The router over llm-katan."""
    model: str = "echo"
    """The one model of `router` (also served by its own name)."""
    dead_router: str = "dead-router"
    """A router whose only model refuses every connection."""

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def base_url(self) -> str:
        return self.served.base_url


@pytest.fixture(scope="session")
def routed_server(
    katan_server: KatanServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RoutedServer]:
    """``support-router`` (cost) over llm-katan, served on 127.0.0.1 with API keys."""
    from llmrouter.serve import create_app

    path = tmp_path_factory.mktemp("serve") / "router.yaml"
    path.write_text(routed_config(katan_server))
    built = load_config(path).build()
    app = create_app(built.routers, built.models, built.serve)
    with serve_app(app) as served:
        yield RoutedServer(served=served, built=built, config_path=path, katan=katan_server)
