"""Tests for llmrouter.models._hf_loading and _hf_batch: what one load is, int8 loads,
and async callers meeting in one batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from llmrouter.models import huggingface_pipeline, loaded_models
from llmrouter.models._hf_batch import waiting_pool
from llmrouter.models._hf_loading import PipelineLoad
from llmrouter.models._hub import ModelSource


def test_equal_loads_share_and_different_settings_do_not() -> None:
    source = ModelSource("org/m")
    assert PipelineLoad(source, "cpu", {"a": 1}) == PipelineLoad(
        ModelSource("org/m", token="x"), "cpu", {"a": 1}
    )
    assert PipelineLoad(source, "cpu", {"a": 1}) != PipelineLoad(source, "cpu", {"a": 2})
    assert PipelineLoad(source) != PipelineLoad(source, quantize="int8")
    assert len({PipelineLoad(source), PipelineLoad(source, quantize="int8")}) == 2


def test_int8_loads_its_own_smaller_copy(tiny_model_dir: Path) -> None:
    full = huggingface_pipeline(str(tiny_model_dir), max_new_tokens=4).chat_model
    int8 = huggingface_pipeline(str(tiny_model_dir), max_new_tokens=4, quantize="int8")
    reply = int8.chat_model.invoke("hello there")
    full.invoke("hello there")
    assert isinstance(reply.content, str) and reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] <= 4
    sizes = [m.bytes for m in loaded_models() if m.name == f"text-generation:{tiny_model_dir}"]
    assert len(sizes) == 2  # one fp32 and one int8 copy, each loaded once
    assert min(sizes) < 0.7 * max(sizes)
    layer = int8.chat_model.hf_pipeline.pipeline.model.transformer.h[0].mlp.c_fc
    assert layer._get_name() == "DynamicQuantizedLinear"


def test_async_callers_meet_in_one_batch(tiny_model_dir: Path) -> None:
    chat = huggingface_pipeline(
        str(tiny_model_dir), max_new_tokens=3, max_batch_size=16, batch_wait_ms=50
    ).chat_model
    chat.invoke("warm up")
    before = chat.pipeline_calls

    async def many() -> list[str]:
        replies = await asyncio.gather(*(chat.ainvoke(f"prompt {i}") for i in range(16)))
        return [str(r.content) for r in replies]

    answers = asyncio.run(many())
    assert len(answers) == 16
    # the event loop's default pool (min(32, cpus + 4) threads) split them into >= 3 calls
    assert chat.pipeline_calls - before <= 2
    assert waiting_pool()._max_workers >= 32


def test_dtype_and_device_map_pass_through(tiny_model_dir: Path) -> None:
    spec = huggingface_pipeline(
        str(tiny_model_dir),
        max_new_tokens=3,
        model_kwargs={"dtype": torch.bfloat16, "device_map": "cpu"},
    )
    reply = spec.chat_model.invoke("hello there")
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] <= 3
    model = spec.chat_model.hf_pipeline.pipeline.model
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and bitsandbytes")
def test_bitsandbytes_8bit_on_a_gpu(tiny_model_dir: Path) -> None:  # pragma: no cover
    from transformers import BitsAndBytesConfig

    spec = huggingface_pipeline(
        str(tiny_model_dir),
        max_new_tokens=4,
        device="auto",
        model_kwargs={"quantization_config": BitsAndBytesConfig(load_in_8bit=True)},
    )
    reply = spec.chat_model.invoke("hello there")
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] <= 4
    layer = spec.chat_model.hf_pipeline.pipeline.model.transformer.h[0].mlp.c_fc
    assert "bitsandbytes" in type(layer).__module__
