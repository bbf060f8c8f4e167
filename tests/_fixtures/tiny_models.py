"""Tiny random GPT-2 chat models built at test time (offline, about a second each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrouter.testing import build_tiny_chat_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny chat model directory (seed 0)."""
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-model-a"), seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different tiny chat model directory (seed 1)."""
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-model-b"), seed=1)
