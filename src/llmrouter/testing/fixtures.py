"""Pytest fixtures for testing routing configurations offline.

Enable them in your top-level ``conftest.py``::

    pytest_plugins = ["llmrouter.testing.fixtures"]

- ``tiny_chat_model_dir`` (session): a directory holding a tiny random GPT-2
  chat model (`llmrouter.testing.build_tiny_chat_model`), built once.
- ``tiny_chat_spec`` (session): a `ModelSpec` named ``tiny-chat`` over it,
  through `llmrouter.models.huggingface_pipeline` (greedy, 8 new tokens).
- ``echo_server`` (session): a running llm-katan echo server on 127.0.0.1
  (a `llmrouter.testing.KatanServer`: ``base_url``, ``api_key``, ``model``,
  ``spec(...)``), stopped at the end of the session. Needs
  ``llmrouter[testing]``.
- ``redis_server`` (module): a running ``redis-server`` on 127.0.0.1 (a
  `llmrouter.testing.RedisServer`: ``url``, ``restart()``, ``kill()``), skipped
  where ``redis-server`` is not installed (failed instead if
  ``LLMROUTER_REQUIRE_REDIS=1``). Needs ``llmrouter[redis]``.

Example test module::

    from llmrouter import ModelRouter

    def test_code_goes_to_the_endpoint(tiny_chat_spec, echo_server):
        router = ModelRouter(
            models=[tiny_chat_spec, echo_server.spec(name="coder")],
            routes={"code_generation": "coder"},
            default="tiny-chat",
        )
        reply = router.invoke("def add(a, b):", task="code_generation")
        assert reply.response_metadata["model_name"] == "coder"
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrouter.spec import ModelSpec
from llmrouter.testing._chat import build_tiny_chat_model
from llmrouter.testing._katan import KatanServer, start_echo_server
from llmrouter.testing._redis import RedisServer, redis_server_program, start_redis_server

__all__ = ["echo_server", "redis_server", "tiny_chat_model_dir", "tiny_chat_spec"]

TINY_CHAT_MAX_NEW_TOKENS = 8
"""How many tokens ``tiny_chat_spec`` generates at most: answers stay fast."""


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 chat model (seed 0), built once per session."""
    return build_tiny_chat_model(tmp_path_factory.mktemp("llmrouter-tiny-chat"), seed=0)


@pytest.fixture(scope="session")
def tiny_chat_spec(tiny_chat_model_dir: Path) -> ModelSpec:
    """A local `ModelSpec` named ``tiny-chat`` over ``tiny_chat_model_dir``.

    It serves any task and costs nothing. For other names, tasks or prices,
    build your own: ``huggingface_pipeline(str(tiny_chat_model_dir), name=...)``
    (the loaded model is shared).
    """
    from llmrouter.models import huggingface_pipeline

    return huggingface_pipeline(
        str(tiny_chat_model_dir),
        name="tiny-chat",
        max_new_tokens=TINY_CHAT_MAX_NEW_TOKENS,
        do_sample=False,
    )


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KatanServer]:
    """An llm-katan echo server on 127.0.0.1 serving ``tiny-echo``, for the session.

    Its log is kept under the session's temporary directory.
    """
    with start_echo_server(workdir=tmp_path_factory.mktemp("llmrouter-echo")) as server:
        yield server


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` on 127.0.0.1 and a free port, for the test module."""
    if redis_server_program() is None:
        missing = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("LLMROUTER_REQUIRE_REDIS") == "1":
            pytest.fail(missing + " and LLMROUTER_REQUIRE_REDIS=1")
        pytest.skip(missing)
    with start_redis_server(tmp_path_factory.mktemp("llmrouter-redis")) as server:
        yield server
