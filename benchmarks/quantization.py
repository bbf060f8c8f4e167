"""int8 vs float32 on CPU: what `quantize_int8` saves in memory and time, and what it changes.

What it measures
    Causal LMs with random weights, built in memory (nothing is downloaded), each as
    ``fp32`` (as built) and as ``int8`` (``quantize_int8`` of a deep copy: every linear
    layer but the tied ``lm_head`` dynamically quantized, see
    ``llmrouter.models._quantize``):

    * ``tiny``   the test suite's model (``build_tiny_chat_model``: GPT-2, 2 layers,
                 64 wide, ~0.17 M parameters), loaded from a temporary directory;
    * ``gpt2``   GPT-2 small's shape (12 layers, 768 wide, vocabulary 50257, tied
                 ``lm_head``, ``Conv1D`` layers): 124 M parameters;
    * ``llama``  SmolLM2-135M's shape (Llama: 30 layers, 576 wide, MLP 1536, 9 query
                 and 3 key/value heads, vocabulary 49152, tied ``lm_head``): 135 M.

    The two larger ones are real small-model shapes, so the share of the weights
    that stays float32 (embeddings, norms) is realistic; the tiny one shows what the
    tests see.

    (a) Memory: ``llmrouter.models._memory.model_bytes`` of each (tensor storage,
        packed int8 weights included, tied weights once), the ratio int8 / fp32, the
        same ratio over the quantized layers alone, and the time ``quantize_int8``
        took.
    (b) Latency, batch 1, ``torch.inference_mode``: ``prefill``, one forward pass over
        a ``--prompt-tokens`` prompt (default 128); ``generate``, greedy
        ``model.generate`` of exactly ``--new-tokens`` tokens (default 32, no EOS) after
        a 16-token prompt, KV cache on. fp32 and int8 alternate call by call (the
        first one alternates too), after one untimed call each; reported: medians over
        ``--repeats`` (default 5), the ratio int8 / fp32 of the medians and the middle
        half (25th-75th percentile) of the ratios paired repeat by repeat, which shows
        the noise. ``time.perf_counter_ns``, garbage collector off while timing.
    (c) Agreement: from the untimed ``generate`` calls, the share of the generated
        tokens that are the same at the same position, and where they first differ
        (greedy decoding follows its own earlier tokens, so one flip changes the rest);
        then both models score fp32's whole sequence (teacher forcing): the share of
        positions whose top-1 token agrees, and the largest |logit difference| next
        to the spread (standard deviation) of fp32's logits.

    Random weights make (a) and (b) representative (they depend on shapes, not
    values) but not (c): a random model's next-token logits are nearly flat (spread
    ~0.5 at GPT-2's initialisation), so small changes flip its top token far more
    often than they would a trained model's, while trained models have the outlier
    activations that make per-tensor int8 activations lossy at large scale
    (Dettmers et al. 2022, LLM.int8()). Check a real checkpoint before relying on it.

    Threads: torch's intra-op threads (default: the cores; ``--threads N``), the same
    for both; the int8 kernels (fbgemm/x86, qnnpack on ARM) use them too. Torch's
    threads wait for each other at every operation: while other processes kept the
    cores of our 2-core VM busy, every number here got 2-10x slower and the ratios
    meant nothing (int8 even looked slower). On a shared machine use ``--threads 1``,
    which still compares the kernels fairly (ratios within a few percent of an idle
    run at 2 threads on gpt2 and llama).

How to run
    python benchmarks/quantization.py                       # ~65 s on 2 idle cores
    python benchmarks/quantization.py --models tiny gpt2 --repeats 3   # quicker
    python benchmarks/quantization.py --threads 1 --json quantization.json
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)
from transformers.pytorch_utils import Conv1D

import llmrouter
from llmrouter.models._memory import model_bytes
from llmrouter.models._quantize import quantize_int8
from llmrouter.testing import build_tiny_chat_model

MODELS = ("tiny", "gpt2", "llama")
GENERATE_PROMPT = 16  # prompt tokens before `generate`'s new ones
SEED = 0


def build(name: str, workdir: Path) -> Any:
    """The float32 model ``name``, random weights, in eval mode."""
    torch.manual_seed(SEED)
    model: Any
    if name == "tiny":
        path = build_tiny_chat_model(workdir / "tiny", seed=SEED)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    elif name == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(
                n_layer=12,
                n_embd=768,
                n_head=12,
                vocab_size=50257,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )
    elif name == "llama":
        model = LlamaForCausalLM(
            LlamaConfig(
                hidden_size=576,
                intermediate_size=1536,
                num_hidden_layers=30,
                num_attention_heads=9,
                num_key_value_heads=3,
                vocab_size=49152,
                max_position_embeddings=2048,
                tie_word_embeddings=True,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )
    else:
        raise SystemExit(f"unknown model {name!r}; choose from {MODELS}")
    return model.eval()


def layer_bytes(model: torch.nn.Module, int8: bool) -> int:
    """Bytes of the layers `quantize_int8` replaces (before) or replaced (after)."""
    if int8:
        return sum(model_bytes(m) for m in model.modules() if isinstance(m, DynamicQuantizedLinear))
    output = model.get_output_embeddings()  # type: ignore[operator]
    return sum(
        model_bytes(m)
        for m in model.modules()
        if isinstance(m, Conv1D) or (isinstance(m, torch.nn.Linear) and m is not output)
    )


@dataclass
class Pair:
    name: str
    fp32: torch.nn.Module
    int8: torch.nn.Module
    quantize_s: float
    vocab: int


def pair(name: str, workdir: Path) -> Pair:
    fp32 = build(name, workdir)
    int8 = copy.deepcopy(fp32)
    t0 = time.perf_counter_ns()
    quantize_int8(int8)
    seconds = (time.perf_counter_ns() - t0) / 1e9
    return Pair(name, fp32, int8, seconds, int(fp32.config.vocab_size))


def prompt(vocab: int, length: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(SEED)
    return torch.randint(2, vocab, (1, length), generator=generator)  # no bos/eos/pad ids


def memory(p: Pair) -> dict[str, Any]:
    fp32, int8 = model_bytes(p.fp32), model_bytes(p.int8)
    layers_fp32, layers_int8 = layer_bytes(p.fp32, False), layer_bytes(p.int8, True)
    return {
        "model": p.name,
        "params_m": sum(t.numel() for t in p.fp32.parameters()) / 1e6,
        "fp32_mb": fp32 / 1e6,
        "int8_mb": int8 / 1e6,
        "ratio": int8 / fp32,
        "layers_ratio": layers_int8 / layers_fp32,
        "layers_share": layers_fp32 / fp32,
        "quantize_s": p.quantize_s,
    }


def timed(call: Callable[[torch.nn.Module], Any], model: torch.nn.Module) -> tuple[float, Any]:
    t0 = time.perf_counter_ns()
    out = call(model)
    return (time.perf_counter_ns() - t0) / 1e6, out


def latency(p: Pair, args: argparse.Namespace, tick: Callable[[], None]) -> dict[str, Any]:
    prefill_ids = prompt(p.vocab, args.prompt_tokens)
    generate_ids = prompt(p.vocab, GENERATE_PROMPT)
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=args.new_tokens,
        do_sample=False,
        eos_token_id=None,  # exactly new_tokens tokens, for both
        pad_token_id=1,
    )
    models = {"fp32": p.fp32, "int8": p.int8}
    calls: dict[str, Callable[[torch.nn.Module], Any]] = {
        "prefill": lambda m: m(prefill_ids).logits,
        "generate": lambda m: m.generate(  # type: ignore[operator]
            generate_ids, generation_config=config, attention_mask=torch.ones_like(generate_ids)
        ),
    }
    ms: dict[str, dict[str, list[float]]] = {c: {k: [] for k in models} for c in calls}
    generated: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for call, run in calls.items():
            gc.collect()
            gc.disable()
            try:
                for repeat in range(-1, args.repeats):  # -1: untimed warm-up
                    order = list(models) if repeat % 2 == 0 else list(models)[::-1]
                    for kind in order:
                        took, out = timed(run, models[kind])
                        if repeat >= 0:
                            ms[call][kind].append(took)
                        elif call == "generate":
                            generated[kind] = out
                    tick()
            finally:
                gc.enable()
        rows = []
        for call, samples in ms.items():
            paired = [i / f for i, f in zip(samples["int8"], samples["fp32"], strict=True)]
            quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else paired * 3
            fp32_ms, int8_ms = (
                statistics.median(samples["fp32"]),
                statistics.median(samples["int8"]),
            )
            rows.append(
                {
                    "model": p.name,
                    "call": call,
                    "fp32_ms": fp32_ms,
                    "int8_ms": int8_ms,
                    "ratio": int8_ms / fp32_ms,
                    "paired_p25": quartiles[0],
                    "paired_p75": quartiles[2],
                    "samples": samples,
                }
            )
        return {"rows": rows, "agreement": agreement(p, generated)}


def agreement(p: Pair, generated: dict[str, torch.Tensor]) -> dict[str, Any]:
    """How far int8's outputs are from fp32's (see the module notes on random weights)."""
    new = {k: v[0, GENERATE_PROMPT:] for k, v in generated.items()}
    same = (new["fp32"] == new["int8"]).tolist()
    sequence = generated["fp32"]
    scored = slice(GENERATE_PROMPT - 1, -1)  # the positions that predicted the new tokens
    fp32 = p.fp32(sequence).logits[0, scored]
    int8 = p.int8(sequence).logits[0, scored]
    return {
        "model": p.name,
        "greedy_same": sum(same) / len(same),
        "first_difference": same.index(False) if False in same else None,
        "top1_same": (fp32.argmax(-1) == int8.argmax(-1)).float().mean().item(),
        "max_abs_diff": (fp32 - int8).abs().max().item(),
        "fp32_logit_std": fp32.std().item(),
    }


# ------------------------------------------------------------------ output


def show(console: Console, results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    table = Table(title="Memory (model_bytes)")
    columns = ("model", "params", "fp32 MB", "int8 MB", "int8/fp32", "layers int8/fp32")
    for col in (*columns, "quantize s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in (r["memory"] for r in results):
        table.add_row(
            r["model"],
            f"{r['params_m']:.2f} M",
            f"{r['fp32_mb']:.1f}",
            f"{r['int8_mb']:.1f}",
            f"{r['ratio']:.3f}",
            f"{r['layers_ratio']:.3f}",
            f"{r['quantize_s']:.2f}",
        )
    console.print(table)
    console.print(
        "  [dim]layers: the linear layers quantize_int8 replaces (their share of fp32: "
        + ", ".join(f"{r['memory']['model']} {r['memory']['layers_share']:.0%}" for r in results)
        + "); the rest (embeddings, tied lm_head, norms) stays float32[/dim]"
    )
    console.print()

    table = Table(title="Latency, batch 1")
    for col in ("model", "call", "fp32 ms", "int8 ms", "int8/fp32", "middle half", "speed-up"):
        table.add_column(col, justify="left" if col in ("model", "call") else "right")
    for r in (row for result in results for row in result["latency"]["rows"]):
        table.add_row(
            r["model"],
            f"prefill {args.prompt_tokens}"
            if r["call"] == "prefill"
            else f"gen. {args.new_tokens}",
            f"{r['fp32_ms']:.1f}",
            f"{r['int8_ms']:.1f}",
            f"{r['ratio']:.3f}",
            f"{r['paired_p25']:.2f}-{r['paired_p75']:.2f}",
            f"{1 / r['ratio']:.2f}x",
        )
    console.print(table)
    console.print(
        f"  [dim]prefill: one forward pass over {args.prompt_tokens} tokens; gen.: generate "
        f"{args.new_tokens} new tokens after {GENERATE_PROMPT}; medians over {args.repeats} "
        f"calls each, alternating; middle half: of int8/fp32 paired call by call[/dim]"
    )
    console.print()

    table = Table(title="Agreement with fp32 (random weights: see the module notes)")
    for col in ("model", "greedy same", "first differs", "top-1 same", "max |Δlogit|", "spread"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for a in (r["latency"]["agreement"] for r in results):
        table.add_row(
            a["model"],
            f"{a['greedy_same']:.0%}",
            "never" if a["first_difference"] is None else f"token {a['first_difference']}",
            f"{a['top1_same']:.0%}",
            f"{a['max_abs_diff']:.3f}",
            f"{a['fp32_logit_std']:.3f}",
        )
    console.print(table)
    console.print(
        f"  [dim]greedy: the {args.new_tokens} generated tokens, position by position; "
        f"top-1: both models scoring fp32's sequence; spread: std of fp32's logits[/dim]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per model and call")
    parser.add_argument("--prompt-tokens", type=int, default=128, help="prefill prompt length")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens `generate` makes")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]

    console = Console()
    results = []
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console, transient=True) as bar:
        steps = bar.add_task("building", total=len(args.models) * (2 * args.repeats + 2))
        for name in args.models:
            bar.update(steps, description=f"{name}: building, quantizing")
            p = pair(name, Path(tmp))
            bar.update(steps, description=f"{name}: timing")
            timing = latency(p, args, lambda: bar.advance(steps))
            results.append({"memory": memory(p), "latency": timing})
            del p
            gc.collect()

    console.print(
        f"[dim]random-weight models built in memory; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, quantized engine "
        f"{torch.backends.quantized.engine}), transformers {transformers.__version__}, "
        f"python {platform.python_version()}, llmrouter {llmrouter.__version__}[/dim]"
    )
    show(console, results, args)
    if args.json:
        payload = {"settings": {k: v for k, v in vars(args).items() if k != "json"}}
        payload["settings"]["threads"] = torch.get_num_threads()
        args.json.write_text(json.dumps(payload | {"results": results}, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
