"""Tests for llmrouter.tiny: a loadable tiny chat model, built idempotently."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmrouter.tiny import build_tiny_chat_model


def test_builds_a_loadable_chat_model(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    assert model.config.n_layer == 2 and model.config.n_embd == 64
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.eos_token and tokenizer.bos_token and tokenizer.pad_token
    assert len({tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id}) == 3
    assert model.generation_config.max_new_tokens == 16
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|system|>\nBe brief.</s>\n<|user|>\nhi</s>\n<|assistant|>\n"
    no_prompt = tokenizer.apply_chat_template(messages, tokenize=False)
    assert not no_prompt.endswith("<|assistant|>\n")

    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] <= inputs["input_ids"].shape[1] + 5


def test_byte_level_tokenizer_round_trips_any_text(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "déjà vu — 東京 🙂 def f(x): return x**2"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_seed_decides_the_weights(tiny_model_dir: Path, tiny_model_dir_b: Path) -> None:
    a = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    b = AutoModelForCausalLM.from_pretrained(tiny_model_dir_b).state_dict()
    name = "transformer.h.0.attn.c_attn.weight"
    assert not a[name].equal(b[name])


def test_same_settings_give_the_same_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    again = AutoModelForCausalLM.from_pretrained(build_tiny_chat_model(tmp_path, seed=0))
    first = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for name, tensor in first.state_dict().items():
        assert tensor.equal(again.state_dict()[name]), name


def test_idempotent(tmp_path: Path) -> None:
    path = build_tiny_chat_model(tmp_path / "m", seed=3)
    weights = path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns

    assert build_tiny_chat_model(str(path), seed=3) == path
    assert weights.stat().st_mtime_ns == stamp

    # Other settings rebuild in place and update the marker.
    build_tiny_chat_model(path, seed=4)
    assert json.loads((path / "llmrouter-tiny.json").read_text())["seed"] == 4


def test_incomplete_directory_is_rebuilt(tmp_path: Path) -> None:
    path = build_tiny_chat_model(tmp_path, seed=5)
    (path / "tokenizer.json").unlink()
    build_tiny_chat_model(path, seed=5)
    assert AutoTokenizer.from_pretrained(path).pad_token == "<pad>"


@pytest.mark.parametrize("module", ["llmrouter.tiny", "llmrouter.models._huggingface"])
def test_import_is_light(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print([m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
