"""The Redis client: bounded timeouts, no silent retries, typed errors, hidden passwords."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from llmrouter.errors import ConfigurationError, StateUnavailableError
from llmrouter.state._redis_client import (
    DEFAULT_TIMEOUT_S,
    connect,
    is_unavailable,
    redacted_url,
    unavailable,
)


def test_passwords_are_redacted() -> None:
    assert redacted_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redacted_url("redis://u:pw@h/0") == "redis://u:***@h/0"
    assert redacted_url("redis://h:1/0") == "redis://h:1/0"


def test_timeouts_default_come_from_the_environment_or_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kwargs = connect("redis://127.0.0.1:1/0").connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == DEFAULT_TIMEOUT_S
    assert kwargs["socket_connect_timeout"] == DEFAULT_TIMEOUT_S
    assert kwargs["retry"].get_retries() == 0  # a retried script could reserve twice
    monkeypatch.setenv("LLMROUTER_REDIS_TIMEOUT", "2.5")
    assert (
        connect("redis://127.0.0.1:1/0").connection_pool.connection_kwargs["socket_timeout"] == 2.5
    )
    url = "redis://127.0.0.1:1/0?socket_timeout=7"
    assert connect(url).connection_pool.connection_kwargs["socket_timeout"] == 7
    monkeypatch.setenv("LLMROUTER_REDIS_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        connect("redis://127.0.0.1:1/0")


def test_a_bad_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="redis://HOST:PORT/DB"):
        connect("http://127.0.0.1/")


def test_a_silent_server_costs_one_timeout_and_a_typed_error() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        client = connect(f"redis://127.0.0.1:{port}/0", timeout=0.2)
        started = time.perf_counter()
        with pytest.raises(redis.exceptions.TimeoutError) as caught:
            client.ping()
        assert time.perf_counter() - started < 2
    assert is_unavailable(caught.value)
    assert not is_unavailable(redis.exceptions.ResponseError("WRONGTYPE"))
    error = unavailable(caught.value, "redis://127.0.0.1", "budgets")
    assert isinstance(error, StateUnavailableError) and isinstance(error, ConnectionError)
    assert "LLMROUTER_REDIS_TIMEOUT" in str(error)
