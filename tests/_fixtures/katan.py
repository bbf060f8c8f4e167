"""llm-katan: a real OpenAI-compatible server on 127.0.0.1, started per session.

Facts these fixtures rely on (llm-katan 0.22):

- Routes: ``POST /v1/chat/completions`` and ``GET /v1/models`` need an
  ``Authorization`` header (any value; 401 without); ``GET /health`` needs none
  and answers only once the backend is loaded, so it is the readiness check.
- The echo backend answers ``[echo] model=<served name> ... max_tokens=<n>
  temperature=<t>\\nUser: <last user message>``; usage counts whitespace-separated
  words (prompt: all messages; completion: the answer). Streams always end with a
  chunk carrying ``usage``, whether or not ``stream_options`` asked for it.
- Fault flags (echo backend only): ``--error-rate p`` → 500, ``--timeout-after n``
  → 504 after n requests, ``--rate-limit-after n`` → 429 after n requests,
  ``--max-inflight n`` → 503 beyond n concurrent, ``--latency-ms``,
  ``--ttft-ms``, ``--itl-ms``/``--chunk-delay-ms`` (stream pacing).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

KATAN_API_KEY = "sk-katan-test-0123456789"
"""A dummy key: llm-katan checks the header is present, not its value."""

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class KatanServer:
    """A running llm-katan process."""

    url: str
    """Server root, e.g. ``http://127.0.0.1:40123``."""
    model: str
    """The served model name."""
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    api_key: str = KATAN_API_KEY

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``<url>/v1``)."""
        return f"{self.url}/v1"

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> str:
        """GET ``path`` with the auth header; the body as text."""
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.api_key}"}
        )
        with _NO_PROXY.open(request, timeout=5) as response:
            return str(response.read().decode())

    def requests_served(self) -> int:
        """Successful chat completions so far (from ``/metrics``)."""
        for line in self.get("/metrics").splitlines():
            if line.startswith("llm_katan_requests_total{"):
                return int(float(line.rsplit(" ", 1)[1]))
        raise AssertionError(f"no request counter in /metrics of {self.url}")

    def stop(self) -> None:
        """Terminate the server and its children (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(timeout=10)


KatanFactory = Callable[..., KatanServer]


def start_katan(
    workdir: Path,
    extra_args: Sequence[str] = (),
    *,
    backend: str = "echo",
    model: str = "tiny-echo",
    served_model_name: str = "tiny-echo",
    startup_timeout: float = 60.0,
) -> KatanServer:
    """Start llm-katan on a free 127.0.0.1 port and wait until ``/health`` answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        log_path = workdir / f"katan-{port}.log"
        command = [
            sys.executable,
            "-m",
            "llm_katan.cli",
            "--backend",
            backend,
            "--model",
            model,
            "--served-model-name",
            served_model_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--stats-file",
            str(workdir / f"stats-{port}.json"),
            "--disable-dashboard",
            *extra_args,
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stop() reaches children
            )
        server = KatanServer(
            url=f"http://127.0.0.1:{port}",
            model=served_model_name,
            log_path=log_path,
            process=process,
        )
        if _wait_ready(server, startup_timeout):
            return server
        server.stop()
        if "address already in use" not in server.log().lower() or attempt == 2:
            raise RuntimeError(
                f"llm-katan did not become ready within {startup_timeout:.0f}s "
                f"(exit code {process.returncode}).\ncommand: {' '.join(command)}\n"
                f"--- server log ---\n{server.log()[-4000:]}"
            )
    raise AssertionError("unreachable")


def _wait_ready(server: KatanServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with _NO_PROXY.open(server.url + "/health", timeout=1) as response:
                if json.loads(response.read()).get("status") == "ok":
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # the group we created with start_new_session


@pytest.fixture(scope="session")
def katan_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KatanFactory]:
    """Start extra llm-katan servers: ``katan_factory(["--error-rate", "1.0"])``.

    Keywords: ``backend``, ``model``, ``served_model_name``, ``startup_timeout``.
    Every server started is stopped at the end of the session.
    """
    workdir = tmp_path_factory.mktemp("katan")
    started: list[KatanServer] = []

    def factory(
        extra_args: Sequence[str] = (),
        *,
        backend: str = "echo",
        model: str = "tiny-echo",
        served_model_name: str = "tiny-echo",
        startup_timeout: float = 60.0,
    ) -> KatanServer:
        server = start_katan(
            workdir,
            extra_args,
            backend=backend,
            model=model,
            served_model_name=served_model_name,
            startup_timeout=startup_timeout,
        )
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def katan_server(katan_factory: KatanFactory) -> KatanServer:
    """llm-katan, echo backend, serving ``tiny-echo``: ``base_url``, ``api_key``, ``model``."""
    return katan_factory()


@pytest.fixture(scope="session")
def katan_transformers_server(katan_factory: KatanFactory, tiny_model_dir: Path) -> KatanServer:
    """llm-katan generating with the tiny random GPT-2 of ``tiny_model_dir`` on CPU.

    ``--max-tokens 16`` keeps the default answer short: the tiny model has 512
    positions and llm-katan's own default (512 new tokens) could overrun them.
    """
    return katan_factory(
        ["--device", "cpu", "--no-quantize", "--max-tokens", "16"],
        backend="transformers",
        model=str(tiny_model_dir),
        served_model_name="tiny-gpt2",
        startup_timeout=180.0,
    )
