"""Tiny random chat models for offline demos and tests.

`build_tiny_chat_model` writes a complete Hugging Face model directory — a
byte-level BPE tokenizer trained on a few built-in sentences, a two-layer GPT-2
with random weights, a chat template and a generation config — in about a
second. The text it generates is gibberish, but every part of the real
loading and generation path (tokenizer, chat template, ``generate``, padding,
streaming) runs for real, with no download.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["CHAT_TEMPLATE", "build_tiny_chat_model"]

BOS, EOS, PAD = "<s>", "</s>", "<pad>"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}" + EOS + "\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""Zephyr-style turns: ``<|role|>`` tag, content, end-of-sequence, newline."""

_MARKER = "llmrouter-tiny.json"
_FORMAT = 1  # bump when the files written here change
_REQUIRED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")

_CORPUS = """\
The router sends easy questions to a small model and hard ones to a large model.
What is the capital of France? Paris is the capital of France.
Write a function that returns the sum of two numbers.
def add(a: int, b: int) -> int:
    return a + b
for item in items:
    if item.price > 10:
        print(item.name, item.price)
class Stack:
    def __init__(self):
        self.items = []
    def push(self, value):
        self.items.append(value)
SELECT name, price FROM products WHERE price < 20 ORDER BY price;
The weather today is sunny with a light breeze from the west.
Translate to German: good morning, how are you? Guten Morgen, wie geht es dir?
Summarize the following text in one sentence, please.
The mitochondria is the powerhouse of the cell; photosynthesis happens in leaves.
She ordered coffee, two croissants and a glass of orange juice at 9:30.
import numpy as np
x = np.arange(10) ** 2
print(x.mean(), x.std())
{"name": "tiny", "layers": 2, "tokens": [1, 2, 3]}
Hello! Thanks for your help. You're welcome, happy to help anytime.
The quick brown fox jumps over the lazy dog while 42 cats watch.
Error: connection refused on 127.0.0.1:8080, retrying in 2 seconds.
"""


def build_tiny_chat_model(
    path: str | Path,
    *,
    seed: int = 0,
    n_layer: int = 2,
    n_embd: int = 64,
    vocab_size: int = 512,
) -> Path:
    """Write a tiny random GPT-2 chat model to ``path`` and return the path.

    Idempotent: when ``path`` already holds a model built with the same settings,
    nothing is rebuilt. ``vocab_size`` is the BPE training target; the model's
    vocabulary is sized to the tokenizer actually trained.

    Example:
        >>> import tempfile
        >>> from transformers import AutoTokenizer
        >>> from llmrouter.tiny import build_tiny_chat_model
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
    if _is_built(target, settings):
        return target

    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    start_build(target)
    tokenizer = train_tokenizer(vocab_size)
    ids = {token: _token_id(tokenizer, token) for token in (BOS, EOS, PAD)}
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
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


def built_with(target: Path, settings: dict[str, Any]) -> bool:
    """True if ``target`` holds a tiny model built with exactly ``settings``
    (a missing or unreadable marker means: build it again)."""
    marker = target / _MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text()) == settings)
    except ValueError:
        return False


def start_build(target: Path) -> None:
    """Create ``target`` and drop any old marker, so a crash leaves no stale one."""
    target.mkdir(parents=True, exist_ok=True)
    (target / _MARKER).unlink(missing_ok=True)


def mark_built(target: Path, settings: dict[str, Any]) -> None:
    """Record that ``target`` is complete (see `built_with`)."""
    (target / _MARKER).write_text(json.dumps(settings, sort_keys=True))


def _token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(token_id, int)
    return token_id


def unprintable_ids(tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """Ids of tokens that decode to partial characters or control bytes."""
    bad = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        if "\ufffd" in text or not all(c.isprintable() or c in "\n\t" for c in text):
            bad.append(token_id)
    return bad


def train_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on the built-in corpus; return a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(_CORPUS.splitlines(keepends=True), trainer=trainer)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=raw,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )
