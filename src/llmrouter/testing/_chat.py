"""A tiny random GPT-2 chat model, written to a directory in about a second.

The text it generates is gibberish, but every part of the real loading and
generation path (tokenizer, chat template, ``generate``, padding, streaming)
runs for real, with no download.
"""

from __future__ import annotations

from pathlib import Path

from llmrouter.testing._build import (
    BOS,
    EOS,
    PAD,
    built_with,
    mark_built,
    start_build,
    token_id,
    train_tokenizer,
    unprintable_ids,
)

_FORMAT = 1  # bump when the files written here change
_REQUIRED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def build_tiny_chat_model(
    path: str | Path,
    *,
    seed: int = 0,
    n_layer: int = 2,
    n_embd: int = 64,
    vocab_size: int = 512,
    n_positions: int = 512,
) -> Path:
    """Write a tiny random GPT-2 chat model to ``path`` and return the path.

    A byte-level BPE tokenizer trained on a few built-in sentences, a GPT-2
    with random weights (``seed`` decides them), a chat template and a
    generation config (greedy, 16 new tokens, unprintable tokens suppressed).
    ``n_positions`` is its context window (prompt plus output tokens).
    Load it like any local model, e.g. with
    `llmrouter.models.huggingface_pipeline`.

    Idempotent: when ``path`` already holds a model built with the same settings,
    nothing is rebuilt. ``vocab_size`` is the BPE training target; the model's
    vocabulary is sized to the tokenizer actually trained.

    Examples:
        >>> import tempfile
        >>> from transformers import AutoTokenizer
        >>> from llmrouter.testing import build_tiny_chat_model
        >>> path = build_tiny_chat_model(tempfile.mkdtemp(), seed=0)
        >>> tokenizer = AutoTokenizer.from_pretrained(path)
        >>> tokenizer.apply_chat_template([{"role": "user", "content": "hi"}],
        ...                               tokenize=False, add_generation_prompt=True)
        '<|user|>\\nhi</s>\\n<|assistant|>\\n'
    """
    target = Path(path)
    settings = {
        "format": _FORMAT,
        "seed": seed,
        "n_layer": n_layer,
        "n_embd": n_embd,
        "vocab_size": vocab_size,
    }
    if n_positions != 512:  # keeps the marker of models built before this setting existed
        settings["n_positions"] = n_positions
    if _is_built(target, settings):
        return target

    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    start_build(target)
    tokenizer = train_tokenizer(vocab_size)
    tokenizer.model_max_length = n_positions
    ids = {token: token_id(tokenizer, token) for token in (BOS, EOS, PAD)}
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=max(1, n_embd // 32),
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOS],
        pad_token_id=ids[PAD],
        # Larger than GPT-2's 0.02 so random logits have clear winners: greedy
        # decoding then gives the same text batched or alone.
        initializer_range=0.2,
    )
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=16,
        do_sample=False,
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOS],
        pad_token_id=ids[PAD],
        # Lone UTF-8 fragments and control bytes would print as "\ufffd"/garbage.
        suppress_tokens=[ids[BOS], ids[PAD], *unprintable_ids(tokenizer)],
    )
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    mark_built(target, settings)
    return target


def _is_built(target: Path, settings: dict[str, int]) -> bool:
    if not all((target / name).is_file() for name in _REQUIRED):
        return False
    return any(target.glob("model*.safetensors")) and built_with(target, settings)
