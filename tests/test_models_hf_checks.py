"""Tests for llmrouter.models._hf_checks (no model is loaded, except one config read)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.exceptions import ContextOverflowError

from llmrouter import ConfigurationError, InvalidRequestError
from llmrouter.models._hf_checks import (
    DEFAULT_MAX_NEW_TOKENS,
    check_generation,
    check_model_id,
    check_model_source,
    context_window_of,
    context_window_on_disk,
    output_limit,
)
from llmrouter.resilience import ErrorKind, classify_error


def test_check_model_id() -> None:
    assert check_model_id("org/name") == "org/name"
    assert check_model_id(Path("/models/tiny")) == "/models/tiny"
    for bad in (None, "", "   ", 3, b"bytes", ["a"]):
        with pytest.raises(ConfigurationError, match=r"must be a non-empty str or os\.PathLike"):
            check_model_id(bad)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"max_new_tokens": 1, "max_tokens": 4096, "temperature": 0},
        {"temperature": 1.5, "max_tokens": None},
    ],
)
def test_check_generation_accepts(settings: dict[str, Any]) -> None:
    check_generation(settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_new_tokens": "lots"}, "max_new_tokens must be a positive integer, got 'lots'"),
        ({"max_new_tokens": 0}, "max_new_tokens must be a positive integer, got 0"),
        ({"max_tokens": -5}, "max_tokens must be a positive integer, got -5"),
        ({"max_tokens": 2.0}, "max_tokens must be a positive integer, got 2.0"),
        ({"max_tokens": False}, "max_tokens must be a positive integer, got False"),
        ({"temperature": -0.1}, "temperature must be a number >= 0"),
        ({"temperature": "warm"}, "temperature must be a number >= 0"),
        ({"temperature": float("nan")}, "temperature must be a number >= 0"),
        ({"temperature": True}, "temperature must be a number >= 0"),
    ],
)
def test_check_generation_rejects(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_generation(settings)
    assert message in str(caught.value)
    with pytest.raises(InvalidRequestError):  # per call: the request's fault
        check_generation(settings, InvalidRequestError)


def test_output_limit() -> None:
    assert output_limit(200, 195, 256, "m") == 61  # capped by the window
    assert output_limit(16, 10, 256, "m") == 16
    assert output_limit(16, 255, 256, "m") == 1  # room for exactly one token
    assert output_limit(DEFAULT_MAX_NEW_TOKENS, 10_000, None, "m") == DEFAULT_MAX_NEW_TOKENS
    for prompt_tokens in (256, 300):
        with pytest.raises(ContextOverflowError) as caught:
            output_limit(16, prompt_tokens, 256, "small-model")
        message = str(caught.value)
        assert f"prompt of {prompt_tokens} tokens" in message
        assert "'small-model' (256 tokens" in message
        assert classify_error(caught.value).kind is ErrorKind.CONTEXT_LENGTH


def test_context_window_of_a_loaded_model() -> None:
    assert context_window_of(SimpleNamespace(config=SimpleNamespace(n_positions=128))) == 128
    llama = SimpleNamespace(max_position_embeddings=4096, n_positions=7)
    assert context_window_of(SimpleNamespace(config=llama)) == 4096
    assert context_window_of(SimpleNamespace(config=SimpleNamespace())) is None
    assert context_window_of(object()) is None


def test_context_window_on_disk(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert context_window_on_disk(str(tiny_model_dir)) == 512
    (tmp_path / "config.json").write_text('{"n_ctx": 2048}')
    assert context_window_on_disk(str(tmp_path)) == 2048
    (tmp_path / "config.json").write_text("not json")
    assert context_window_on_disk(str(tmp_path)) is None
    assert context_window_on_disk("nobody-here/no-such-model") is None
    assert context_window_on_disk("not a model!") is None


def test_check_model_source_passes_usable_sources(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_model_source(str(tiny_model_dir))
    monkeypatch.chdir(tiny_model_dir.parent)
    check_model_source(tiny_model_dir.name)  # relative to the working directory
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    check_model_source("org/model")  # online, a hub id may be downloaded


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{tmp}/missing/model", "model path '{tmp}/missing/model' does not exist"),
        ("./missing-model", "model path './missing-model' does not exist"),
        ("~/no-such-dir-llmrouter", "does not exist"),
        ("{tmp}/empty", "model directory '{tmp}/empty' has no config.json"),
        ("{tmp}/weights.bin", "is a file, not a model directory"),
        ("not a model!", "neither an existing local path nor a valid Hugging Face Hub repo id"),
        ("org/na--me", "neither an existing local path nor a valid Hugging Face Hub repo id"),
        (
            "nobody-here/no-such-model",
            "not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 forbids",
        ),
    ],
)
def test_check_model_source_says_what_is_wrong(
    source: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigurationError) as caught:
        check_model_source(source.format(tmp=tmp_path))
    assert message.format(tmp=tmp_path) in str(caught.value)
    assert "alphanumeric" not in str(caught.value)
    assert classify_error(caught.value).kind is ErrorKind.FATAL


def test_offline_is_read_when_checking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigurationError, match="HF_HUB_OFFLINE=1"):
        check_model_source("nobody-here/no-such-model")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    check_model_source("nobody-here/no-such-model")
    assert os.environ.get("HF_HUB_OFFLINE") is None
