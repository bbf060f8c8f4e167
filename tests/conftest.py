"""Shared fixtures live in tests/_fixtures/ (one module per real part)."""

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = [
    "_fixtures.tiny_models",
    "_fixtures.katan",
    "_fixtures.tiny_multimodal",
    "_fixtures.serve",
    "_fixtures.redis",
]


@pytest.fixture(autouse=True)
def _fresh_circuit_breakers() -> Iterator[None]:
    """Breaker state is process-wide by model name: keep tests independent."""
    from llmrouter.resilience import DEFAULT_BOARD

    DEFAULT_BOARD.reset()
    yield
    DEFAULT_BOARD.reset()
