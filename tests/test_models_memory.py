"""Tests for llmrouter.models._memory: tensor bytes of loaded models, counted once each."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import AutoModelForCausalLM

from llmrouter.models._memory import model_bytes, torch_modules


def test_a_module_and_its_wrappers() -> None:
    layer = torch.nn.Linear(10, 3)  # 30 weights + 3 biases, float32
    assert model_bytes(layer) == 33 * 4
    wrapped = SimpleNamespace(llm=SimpleNamespace(pipeline=SimpleNamespace(model=layer)))
    assert torch_modules(wrapped) == [layer]
    assert model_bytes(wrapped) == 33 * 4
    assert model_bytes(SimpleNamespace(components={"a": layer, "b": layer})) == 33 * 4


def test_dtype_and_buffers_count() -> None:
    norm = torch.nn.BatchNorm1d(8).to(torch.float16)  # weight, bias, 2 running stats
    assert model_bytes(norm) == 4 * 8 * 2 + 8  # and num_batches_tracked (int64)


def test_tied_embeddings_count_once(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    params = {p.data_ptr(): p.nelement() * p.element_size() for p in model.parameters()}
    assert model_bytes(model) >= sum(params.values())  # parameters() dedupes too
    assert model_bytes(model) < sum(params.values()) + model.lm_head.weight.nelement() * 4


def test_nothing_to_count() -> None:
    assert model_bytes(object()) == 0 and torch_modules(None) == []
