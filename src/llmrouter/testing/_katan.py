"""llm-katan: a real OpenAI-compatible server on 127.0.0.1, started for a test.

`llm-katan <https://pypi.org/project/llm-katan/>`_ (extra ``llmrouter[testing]``)
serves OpenAI's chat completions API from an echo backend (no model at all) or
a local transformers model. Facts the launcher relies on (llm-katan 0.22):

- ``POST /v1/chat/completions`` and ``GET /v1/models`` need an
  ``Authorization`` header (any value; 401 without); ``GET /health`` needs none
  and answers only once the backend is loaded, so it is the readiness check.
- The echo backend answers ``[echo] model=<served name> ... max_tokens=<n>
  temperature=<t>\\nUser: <last user message>``; usage counts whitespace-separated
  words (prompt: all messages; completion: the answer). Streams always end with
  a chunk carrying ``usage``, whether or not ``stream_options`` asked for it.
- Fault flags (echo backend only): ``--error-rate p`` (500s), ``--timeout-after n``
  (504 after n requests), ``--rate-limit-after n`` (429 after n requests),
  ``--max-inflight n`` (503 beyond n concurrent), ``--latency-ms``, ``--ttft-ms``,
  ``--itl-ms``/``--chunk-delay-ms`` (stream pacing).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrouter.spec import ModelSpec

DEFAULT_API_KEY = "sk-katan-test-0123456789"
"""A dummy key: llm-katan checks that the header is present, not its value."""

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# llm-katan has no ``__main__``; ``-m llm_katan.cli`` works but warns (runpy).
_LAUNCH = "import sys; from llm_katan.cli import main; sys.exit(main())"


@dataclass
class KatanServer:
    """A running llm-katan process on 127.0.0.1.

    Get one from `start_echo_server` (or the ``echo_server`` pytest fixture);
    point a client at `base_url` with `api_key`, or let `spec` build the
    `ModelSpec`.
    """

    url: str
    """Server root, e.g. ``http://127.0.0.1:40123``."""
    model: str
    """The served model name (what clients send as ``model``)."""
    log_path: Path
    """Where the server's output goes."""
    process: subprocess.Popen[bytes] = field(repr=False)
    """The server process (leader of its own process group on POSIX)."""
    api_key: str = DEFAULT_API_KEY
    """A key to send; any value is accepted."""

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``<url>/v1``)."""
        return f"{self.url}/v1"

    def spec(self, name: str | None = None, **kwargs: Any) -> ModelSpec:
        """A `ModelSpec` for this server via `llmrouter.models.openai_compatible`.

        ``name`` defaults to the served model name; other keywords (``tasks``,
        prices, ``max_tokens``, ``timeout``, ...) go to ``openai_compatible``.
        """
        from llmrouter.models import openai_compatible

        return openai_compatible(
            self.model, self.base_url, api_key=self.api_key, name=name, **kwargs
        )

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> str:
        """GET ``path`` (e.g. ``"/v1/models"``) with the auth header; the body as text."""
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
        """Stop the server and its children (terminate, then kill after 10 s)."""
        if self.process.poll() is None:
            _terminate(self.process, force=False)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _terminate(self.process, force=True)
                self.process.wait(timeout=10)


def launch_katan(
    workdir: Path,
    extra_args: Sequence[str] = (),
    *,
    backend: str = "echo",
    model: str = "tiny-echo",
    served_model_name: str | None = None,
    api_key: str = DEFAULT_API_KEY,
    startup_timeout: float = 60.0,
) -> KatanServer:
    """Start llm-katan on a free 127.0.0.1 port; return once ``/health`` answers.

    ``workdir`` receives the log and stats files. ``extra_args`` are more
    llm-katan flags (fault injection, ``--max-tokens``, ...). The server runs
    with ``HF_HUB_OFFLINE=1``. The caller stops it (`KatanServer.stop`).

    Raises:
        ImportError: llm-katan is not installed.
        RuntimeError: the server exited or did not get ready in time (the
            message has the command and the end of the server log).
    """
    if importlib.util.find_spec("llm_katan") is None:
        raise ImportError(
            "llm-katan is not installed; it provides the loopback OpenAI-compatible "
            "server: pip install 'llmrouter[testing]'"
        )
    served = served_model_name or model
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        log_path = workdir / f"katan-{port}.log"
        command = [
            *(sys.executable, "-c", _LAUNCH),
            *("--backend", backend, "--model", model, "--served-model-name", served),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--stats-file", str(workdir / f"stats-{port}.json"), "--disable-dashboard"),
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
            model=served,
            log_path=log_path,
            process=process,
            api_key=api_key,
        )
        if _wait_ready(server, startup_timeout):
            return server
        server.stop()
        if "address already in use" not in server.log().lower() or attempt == 2:
            raise RuntimeError(
                f"llm-katan did not become ready within {startup_timeout:.0f}s "
                f"(exit code {process.returncode}).\ncommand: {' '.join(command)}\n"
                f"--- server log ({log_path}) ---\n{server.log()[-4000:]}"
            )
    raise AssertionError("unreachable")


@contextlib.contextmanager
def start_echo_server(
    extra_args: Sequence[str] = (),
    *,
    model: str = "tiny-echo",
    workdir: str | Path | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[KatanServer]:
    """Run an llm-katan echo server on 127.0.0.1 for the ``with`` block.

    The server answers every chat completion by echoing the last user message
    (see the module notes), so a remote route can be tested without a model or
    network. ``extra_args`` are llm-katan fault flags, e.g.
    ``["--error-rate", "1.0"]`` for an endpoint that always fails. Logs go to
    ``workdir`` (default: a temporary directory removed afterwards). Needs the
    extra ``llmrouter[testing]``.

    Examples:
        >>> from llmrouter.testing import start_echo_server
        >>> with start_echo_server() as server:
        ...     reply = server.spec(max_tokens=32).chat_model.invoke("hello")
        >>> reply.content.splitlines()[-1]
        'User: hello'
        >>> server.process.poll() is not None  # stopped on leaving the block
        True
    """
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="llmrouter-echo-"))
        server = launch_katan(
            Path(workdir), extra_args, model=model, startup_timeout=startup_timeout
        )
        stack.callback(server.stop)  # runs before the directory is removed
        yield server


def _wait_ready(server: KatanServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with _NO_PROXY.open(server.url + "/health", timeout=1) as response:
                if json.loads(response.read()).get("status") == "ok":
                    return True
        except (OSError, ValueError):  # not listening yet, or not answering JSON yet
            pass
        time.sleep(0.05)
    return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _terminate(process: subprocess.Popen[bytes], *, force: bool) -> None:
    if os.name != "posix":  # no process groups: the server itself
        if force:
            process.kill()
        else:
            process.terminate()
        return
    with contextlib.suppress(ProcessLookupError):
        # The group we created with start_new_session: reaches uvicorn workers too.
        os.killpg(process.pid, signal.SIGKILL if force else signal.SIGTERM)
