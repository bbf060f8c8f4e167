"""Memory of LoRA adapters sharing one base model, against the base alone.

What it measures
    A random GPT-2 chat model (``build_tiny_chat_model``; ``--layers`` and ``--width``
    set its size) and three random LoRA adapters of it (``build_tiny_lora_adapter``,
    rank ``--rank``), loaded through ``huggingface_pipeline`` as four routable models:
    the base, and one spec per adapter. After each load, one call each, and:

    * tensor bytes of the registry entry (``loaded_models()``: weights and buffers,
      shared storage counted once) - the base alone, then the base + 3 adapters;
    * the process's resident memory (RSS, from /proc/self/statm) growth over the
      same steps, which includes allocator slack and the LoRA modules' overhead;
    * the naive alternative, for scale: each adapter merged into its own copy of the
      base (``merge_and_unload``), tensor bytes of 1 + 3 copies.

    Target (issue 12): 1 base + 3 adapters <= 1.2x the base alone.
    Answers are checked too: each adapter's differs from the base's.

Run: ``python benchmarks/adapters.py`` (about 20 s), ``--layers 12 --width 768`` for
GPT-2-small's shape (about 1 min).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
from pathlib import Path


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llmrouter.models import huggingface_pipeline, loaded_models
    from llmrouter.models._memory import model_bytes
    from llmrouter.testing import build_tiny_chat_model, build_tiny_lora_adapter

    root = Path(tempfile.mkdtemp(prefix="llmrouter-adapters-"))
    base = build_tiny_chat_model(root / "base", n_layer=args.layers, n_embd=args.width)
    adapters = [
        build_tiny_lora_adapter(base, root / f"adapter{i}", seed=i, rank=args.rank)
        for i in range(3)
    ]

    def entry_bytes() -> int:
        return next(m.bytes for m in loaded_models() if m.name.endswith(str(base)))

    gc.collect()
    start = rss()
    plain = huggingface_pipeline(str(base), max_new_tokens=8, name="base")
    base_answer = plain.chat_model.invoke("hello there").content
    gc.collect()
    alone_bytes, alone_rss = entry_bytes(), rss() - start
    answers = []
    for adapter in adapters:
        spec = huggingface_pipeline(str(base), adapter=str(adapter), max_new_tokens=8)
        answers.append(spec.chat_model.invoke("hello there").content)
    gc.collect()
    shared_bytes, shared_rss = entry_bytes(), rss() - start

    merged = [model_bytes(AutoModelForCausalLM.from_pretrained(base))]
    for adapter in adapters:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
        merged.append(model_bytes(model.merge_and_unload()))

    params = alone_bytes // 4
    print(f"base: GPT-2, {args.layers} layers, width {args.width} ({params / 1e6:.1f} M params);")
    print(f"3 LoRA adapters of rank {args.rank} on c_attn\n")
    print(f"{'':32}{'tensor MB':>12}{'ratio':>8}{'RSS growth MB':>16}{'ratio':>8}")
    print(f"{'base alone':32}{alone_bytes / 1e6:12.2f}{1:8.3f}{alone_rss / 1e6:16.1f}{1:8.3f}")
    print(
        f"{'base + 3 adapters (shared)':32}{shared_bytes / 1e6:12.2f}"
        f"{shared_bytes / alone_bytes:8.3f}{shared_rss / 1e6:16.1f}"
        f"{shared_rss / max(alone_rss, 1):8.3f}"
    )
    print(
        f"{'4 merged copies (naive)':32}{sum(merged) / 1e6:12.2f}"
        f"{sum(merged) / alone_bytes:8.3f}{'':>16}{'':>8}"
    )
    met = shared_bytes <= 1.2 * alone_bytes
    print(f"\ntarget: base + 3 adapters <= 1.2x base (tensor bytes): {'MET' if met else 'NOT MET'}")
    differ = sum(a != base_answer for a in answers)
    print(f"adapters answering differently from the base: {differ} of {len(answers)}")


if __name__ == "__main__":
    main()
