"""Tests for llmrouter.models._quantize: CPU int8 dynamic quantization of a tiny GPT-2."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, pipeline
from transformers.pytorch_utils import Conv1D

from llmrouter.errors import ConfigurationError
from llmrouter.models._memory import model_bytes
from llmrouter.models._quantize import conv1d_to_linear, quantize_int8
from llmrouter.testing import build_tiny_chat_model

PROMPTS = ["hello there", "def add(a, b):", "What is the capital of France?"]
N_LAYER = 2  # the tiny model's; GPT-2 has 4 Conv1D layers per block


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-quantize"), seed=0)


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def fp32(model_dir: Path) -> Any:
    """The float32 model: tests copy it before changing anything."""
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def int8(fp32: Any) -> Any:
    return quantize_int8(copy.deepcopy(fp32))


@pytest.fixture(scope="module")
def batch(tokenizer: Any) -> Any:
    return tokenizer(PROMPTS, return_tensors="pt", padding=True)


def logits(model: Any, batch: Any) -> torch.Tensor:
    """Logits at the real (not padding) positions."""
    with torch.inference_mode():
        out = model(**batch).logits
    return out[batch["attention_mask"].bool()]


def test_conv1d_to_linear_computes_the_same(fp32: Any, batch: Any) -> None:
    model = copy.deepcopy(fp32)
    assert conv1d_to_linear(model) == 4 * N_LAYER
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    mlp = model.transformer.h[0].mlp
    assert type(mlp.c_fc) is torch.nn.Linear
    assert (mlp.c_fc.in_features, mlp.c_fc.out_features) == (64, 256)
    assert torch.allclose(logits(model, batch), logits(fp32, batch), rtol=0, atol=1e-6)
    assert model_bytes(model) == model_bytes(fp32)  # transposed views, no copies


def test_conv1d_shared_by_two_parents_stays_shared() -> None:
    shared = Conv1D(3, 4)
    model = torch.nn.ModuleDict(
        {"a": torch.nn.Sequential(shared), "b": torch.nn.Sequential(shared)}
    )
    assert conv1d_to_linear(model) == 1
    assert model["a"][0] is model["b"][0]
    assert isinstance(model["a"][0], torch.nn.Linear)


def test_every_linear_layer_but_lm_head_is_int8(int8: Any) -> None:
    quantized = [m for m in int8.modules() if isinstance(m, DynamicQuantizedLinear)]
    assert len(quantized) == 4 * N_LAYER
    assert all(m.weight().dtype == torch.qint8 for m in quantized)
    assert not any(type(m) is torch.nn.Linear and m is not int8.lm_head for m in int8.modules())
    # The output embeddings stay float32 and tied to the input embeddings.
    assert type(int8.lm_head) is torch.nn.Linear
    assert int8.lm_head.weight is int8.transformer.wte.weight
    assert int8.lm_head.weight.dtype == torch.float32


def test_int8_model_is_smaller(fp32: Any, int8: Any) -> None:
    layers_before = sum(model_bytes(m) for m in fp32.modules() if isinstance(m, Conv1D))
    layers_after = sum(
        model_bytes(m) for m in int8.modules() if isinstance(m, DynamicQuantizedLinear)
    )
    # int8 weights (1/4 of float32) plus float32 biases and one scale per output channel:
    # 0.259 for the tiny model.
    assert 0.25 < layers_after / layers_before < 0.27
    # Embeddings (wte tied to lm_head, wpe) and norms stay float32: 0.555 of the whole.
    assert model_bytes(int8) / model_bytes(fp32) < 0.6


def test_int8_logits_stay_close(fp32: Any, int8: Any, batch: Any) -> None:
    before, after = logits(fp32, batch), logits(int8, batch)
    assert not torch.equal(before, after)  # it did change the computation
    # Measured: max |diff| 0.39 on logits up to 7.7 (std 1.6), correlation > 0.99.
    assert (after - before).abs().max() < 0.1 * before.abs().max()
    correlation = torch.corrcoef(torch.stack([before.flatten(), after.flatten()]))[0, 1]
    assert correlation > 0.99


def test_generation_through_a_pipeline_still_works(int8: Any, tokenizer: Any) -> None:
    generate = pipeline("text-generation", model=int8, tokenizer=tokenizer)
    out = generate(PROMPTS[:2], max_new_tokens=8, do_sample=False, return_full_text=False)
    texts = [answer[0]["generated_text"] for answer in out]
    assert len(texts) == 2
    assert all(isinstance(text, str) and text.strip() for text in texts)


def test_quantizing_the_model_a_pipeline_holds_changes_that_pipeline(
    fp32: Any, tokenizer: Any
) -> None:
    generate = pipeline("text-generation", model=copy.deepcopy(fp32), tokenizer=tokenizer)
    assert quantize_int8(generate.model) is generate.model  # in place
    assert isinstance(generate.model.transformer.h[0].attn.c_attn, DynamicQuantizedLinear)
    out = generate(PROMPTS[0], max_new_tokens=4, do_sample=False, return_full_text=False)
    assert out[0]["generated_text"].strip()


def test_quantizing_twice_changes_nothing_more(int8: Any, batch: Any) -> None:
    again = copy.deepcopy(int8)
    assert quantize_int8(again) is again
    assert model_bytes(again) == model_bytes(int8)
    assert torch.equal(logits(again, batch), logits(int8, batch))


def test_a_bfloat16_model_is_made_float32_first(model_dir: Path, batch: Any) -> None:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    quantize_int8(model)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.lm_head.weight is model.transformer.wte.weight
    assert isinstance(model.transformer.h[1].mlp.c_proj, DynamicQuantizedLinear)
    assert torch.isfinite(logits(model, batch)).all()


def test_weights_on_the_meta_device_are_refused() -> None:
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100, n_positions=16)
    with torch.device("meta"):
        model = GPT2LMHeadModel(config)
    with pytest.raises(ConfigurationError, match=r"meta device \(not loaded"):
        quantize_int8(model)
    assert isinstance(model.transformer.h[0].mlp.c_fc, Conv1D)  # left untouched


class _OnCuda(torch.nn.Module):
    """Reports a parameter on cuda without needing a GPU."""

    def parameters(self, recurse: bool = True) -> Any:
        return iter([SimpleNamespace(device=torch.device("cuda", 0))])


def test_weights_on_a_gpu_are_refused_with_the_bitsandbytes_way() -> None:
    with pytest.raises(ConfigurationError) as raised:
        quantize_int8(_OnCuda())
    message = str(raised.value)
    assert "weights on cuda" in message
    assert "BitsAndBytesConfig(load_in_8bit=True)" in message
    assert "quantization_config" in message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_model_on_a_real_gpu_is_refused(fp32: Any) -> None:  # pragma: no cover
    model = copy.deepcopy(fp32).to("cuda")
    with pytest.raises(ConfigurationError, match="bitsandbytes"):
        quantize_int8(model)


def test_no_deprecation_warning_reaches_the_caller(fp32: Any) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quantize_int8(copy.deepcopy(fp32))
    assert [str(w.message) for w in seen if "deprecated" in str(w.message)] == []
