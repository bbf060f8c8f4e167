"""Tests for llmrouter.models._registry: one load per model, LRU unloading under a budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from llmrouter import ConfigurationError
from llmrouter.models import (
    huggingface_pipeline,
    loaded_models,
    set_memory_budget,
    unload_models,
)
from llmrouter.models._hf_loading import loaded_pipelines
from llmrouter.models._registry import ModelRegistry, parse_bytes, registry

MODEL_BYTES = 4 * (256 * 256 + 256)  # one float32 Linear(256, 256)


def linear() -> torch.nn.Module:
    return torch.nn.Linear(256, 256)


@pytest.fixture
def no_budget_after() -> Iterator[None]:
    yield
    set_memory_budget()  # the registry is process-wide: leave it unlimited


@pytest.mark.parametrize(
    ("text", "expected"),
    [("6GiB", 6 * 2**30), ("500 MB", 500 * 10**6), ("1.5kib", 1536), (" 7 ", 7), (0, 0)],
)
def test_parse_bytes(text: str | int, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["6 GX", "lots", "-1", True, -5, "1e9"])
def test_parse_bytes_rejects(text: object) -> None:
    with pytest.raises(ConfigurationError, match=r"memory size .* is not understood"):
        parse_bytes(text)  # type: ignore[arg-type]


def test_one_load_per_key_across_threads() -> None:
    reg, calls = ModelRegistry(), []

    def load() -> torch.nn.Module:
        calls.append(1)
        time.sleep(0.05)  # everyone else arrives while this loads
        return linear()

    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(reg.get("k", "m", (), load))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len({id(g) for g in got}) == 1
    (only,) = reg.loaded()
    assert only.name == "k:m" and only.bytes == MODEL_BYTES and only.loads == 1


def test_least_recently_used_goes_first_under_a_count_budget() -> None:
    reg = ModelRegistry(max_models=2)
    for name in ("a", "b"):
        reg.get("k", name, (), linear)
    reg.get("k", "a", (), linear)  # a is now the most recent
    reg.get("k", "c", (), linear)
    assert [m.name for m in reg.loaded()] == ["k:a", "k:c"]


def test_byte_budget_and_reload_on_next_use() -> None:
    reg = ModelRegistry(max_bytes=MODEL_BYTES * 2 + 10)
    first = reg.get("k", "a", (), linear)
    reg.get("k", "b", (), linear)
    reg.get("k", "c", (), linear)  # room is made before loading: a (LRU) goes
    assert [m.name for m in reg.loaded()] == ["k:b", "k:c"]
    again = reg.get("k", "a", (), linear)
    assert again is not first  # loaded anew
    loaded = {m.name: m for m in reg.loaded()}
    assert set(loaded) == {"k:c", "k:a"} and loaded["k:a"].loads == 2
    assert sum(m.bytes for m in loaded.values()) <= MODEL_BYTES * 2 + 10


def test_estimate_makes_room_before_loading() -> None:
    reg = ModelRegistry(max_bytes=MODEL_BYTES + 10)
    reg.get("k", "a", (), linear)
    seen: list[list[str]] = []

    def load() -> torch.nn.Module:
        seen.append([m.name for m in reg.loaded()])
        return linear()

    reg.get("k", "b", (), load, estimate=MODEL_BYTES)
    assert seen == [[]]  # a was unloaded before b started loading


def test_a_model_in_use_is_not_unloaded_until_released() -> None:
    reg = ModelRegistry(max_models=1)
    with reg.using("k", "a", (), linear) as model_a:
        reg.get("k", "b", (), linear)
        names = [m.name for m in reg.loaded()]
        assert names == ["k:a", "k:b"]  # over budget while a runs
        assert [m.in_use for m in reg.loaded()] == [1, 0]
        assert isinstance(model_a, torch.nn.Linear)
    assert [m.name for m in reg.loaded()] == ["k:b"]  # a went when released


def test_the_latest_model_stays_even_if_alone_over_budget() -> None:
    reg = ModelRegistry(max_bytes=100)
    with pytest.warns(ResourceWarning, match=r"alone takes .* more than the model memory budget"):
        reg.get("k", "a", (), linear)
    assert [m.name for m in reg.loaded()] == ["k:a"]


def test_set_budget_and_unload() -> None:
    reg = ModelRegistry()
    for name in ("a", "b", "c"):
        reg.get("k", name, (), linear)
    assert reg.set_budget(max_models=1) == ["k:a", "k:b"]
    assert reg.budget == (None, 1)
    with pytest.raises(ConfigurationError, match=r"max_models must be an integer >= 1"):
        reg.set_budget(max_models=0)
    assert reg.unload("c") == ["k:c"] and reg.loaded() == []
    assert reg.unload("nothing") == []


def test_clear_by_kind() -> None:
    reg = ModelRegistry()
    reg.get("text", "a", (), linear)
    reg.get("image", "b", (), linear)
    reg.clear(exclude="text")
    assert [m.name for m in reg.loaded()] == ["text:a"]
    reg.clear("text")
    assert reg.loaded() == []


def test_budget_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrouter.models import _registry

    monkeypatch.setenv("LLMROUTER_MODEL_MEMORY", "2GiB")
    monkeypatch.setenv("LLMROUTER_MAX_MODELS", "3")
    assert ModelRegistry(*_registry._budget_from_env()).budget == (2 * 2**30, 3)
    monkeypatch.setenv("LLMROUTER_MAX_MODELS", "three")
    with pytest.raises(ConfigurationError, match=r"LLMROUTER_MAX_MODELS must be an integer"):
        _registry._budget_from_env()


def test_local_models_unload_and_reload_under_a_budget(
    tiny_model_dir: Path, tiny_model_dir_b: Path, no_budget_after: None
) -> None:
    a = huggingface_pipeline(str(tiny_model_dir), max_new_tokens=6).chat_model
    b = huggingface_pipeline(str(tiny_model_dir_b), max_new_tokens=6).chat_model
    first = a.invoke("hello there").content
    set_memory_budget(max_models=1)
    assert len(loaded_models()) <= 1
    b.invoke("hello there")
    assert str(tiny_model_dir_b) in loaded_pipelines()
    assert str(tiny_model_dir) not in loaded_pipelines() and not a.is_loaded
    assert a.invoke("hello there").content == first  # loaded again, same answer
    (entry,) = loaded_models()
    assert entry.name == f"text-generation:{tiny_model_dir}" and entry.loads >= 2
    assert entry.bytes > 100_000  # the tiny GPT-2's weights, tied embeddings counted once
    assert unload_models(str(tiny_model_dir)) == [entry.name] and not a.is_loaded


def test_a_streaming_model_is_kept_until_the_stream_ends(
    tiny_model_dir: Path, tiny_model_dir_b: Path, no_budget_after: None
) -> None:
    a = huggingface_pipeline(str(tiny_model_dir), max_new_tokens=6).chat_model
    b = huggingface_pipeline(str(tiny_model_dir_b), max_new_tokens=6).chat_model
    set_memory_budget(max_models=1)
    stream = a.stream("hello")
    next(stream)  # a is generating
    b.invoke("hello")
    assert {str(tiny_model_dir), str(tiny_model_dir_b)} <= set(loaded_pipelines())
    for _ in stream:
        pass
    assert loaded_pipelines() == [str(tiny_model_dir_b)]


def test_the_process_registry_is_shared_by_media_models() -> None:
    from llmrouter.models._multimodal import loaded_media_models, shared_model

    shared = shared_model("kind", "registry-test", {}, linear)
    assert shared is shared_model("kind", "registry-test", {}, linear)
    assert "kind:registry-test" in loaded_media_models()
    assert "kind:registry-test" in [m.name for m in registry.loaded()]
    assert unload_models("kind:registry-test") == ["kind:registry-test"]
