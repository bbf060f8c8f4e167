"""llm-katan fixtures: real OpenAI-compatible servers on 127.0.0.1, per session.

The launcher is the package's own (`llmrouter.testing._katan`, behind the
public `start_echo_server`); its module notes list the llm-katan facts the
tests rely on (the Authorization header, ``/health`` as readiness check, the
echo format, usage in streams, the fault flags). Here: a factory for extra
servers with fault flags, the default echo server, and one generating with the
tiny GPT-2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from llmrouter.testing import KatanServer
from llmrouter.testing._katan import DEFAULT_API_KEY, launch_katan

__all__ = ["KATAN_API_KEY", "KatanFactory", "KatanServer"]

KATAN_API_KEY = DEFAULT_API_KEY
"""A dummy key: llm-katan checks the header is present, not its value."""

KatanFactory = Callable[..., KatanServer]


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
        server = launch_katan(
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
