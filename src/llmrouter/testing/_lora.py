"""A tiny LoRA adapter for a tiny chat model, written in well under a second (needs peft)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_lora_adapter"]


def build_tiny_lora_adapter(
    base: str | Path, path: str | Path, *, seed: int = 0, rank: int = 4
) -> Path:
    """Write a random LoRA adapter (peft) of the model in ``base`` to ``path``; return ``path``.

    The adapter targets the attention projections (``c_attn``) of a GPT-2 such as
    `build_tiny_chat_model` writes, with random (not zero) weights, so it changes the
    model's answers: each ``seed`` gives a different adapter. Load it with
    ``huggingface_pipeline(base, adapter=path)``. Needs ``llmrouter[lora]``.

    Examples:
        >>> import tempfile
        >>> from llmrouter.testing import build_tiny_chat_model, build_tiny_lora_adapter
        >>> base = build_tiny_chat_model(tempfile.mkdtemp())
        >>> adapter = build_tiny_lora_adapter(base, tempfile.mkdtemp(), seed=1)
        >>> sorted(p.name for p in adapter.iterdir() if p.suffix in {".json", ".safetensors"})
        ['adapter_config.json', 'adapter_model.safetensors']
    """
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    target = Path(path)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=["c_attn"], init_lora_weights=False
    )
    with warnings.catch_warnings():  # GPT-2's Conv1D: peft says it sets fan_in_fan_out
        warnings.simplefilter("ignore", UserWarning)
        peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(str(target))
    return target
