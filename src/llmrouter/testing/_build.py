"""What every tiny-model builder shares: the build marker and a small trained tokenizer.

A builder writes its directory, then a marker file recording the settings it
used. `built_with` reads that marker, so building again with the same settings
is a no-op, and a crash half-way (no marker) means: build again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<s>", "</s>", "<pad>"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}" + EOS + "\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""Zephyr-style turns: ``<|role|>`` tag, content, end-of-sequence, newline."""

MARKER = "llmrouter-tiny.json"
"""The marker file a builder writes last (see `built_with`)."""

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


def built_with(target: Path, settings: dict[str, Any]) -> bool:
    """True if ``target`` holds a tiny model built with exactly ``settings``.

    A missing or unreadable marker means: build it again.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> target = Path(tempfile.mkdtemp())
        >>> built_with(target, {"seed": 0})
        False
        >>> start_build(target); mark_built(target, {"seed": 0})
        >>> built_with(target, {"seed": 0}), built_with(target, {"seed": 1})
        (True, False)
    """
    marker = target / MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text()) == settings)
    except ValueError:
        return False


def start_build(target: Path) -> None:
    """Create ``target`` and drop any old marker, so a crash leaves no stale one."""
    target.mkdir(parents=True, exist_ok=True)
    (target / MARKER).unlink(missing_ok=True)


def mark_built(target: Path, settings: dict[str, Any]) -> None:
    """Record that ``target`` is complete (see `built_with`)."""
    (target / MARKER).write_text(json.dumps(settings, sort_keys=True))


def token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """The id of one token of ``tokenizer``'s vocabulary."""
    found = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(found, int)
    return found


def unprintable_ids(tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """Ids of tokens that decode to partial characters or control bytes.

    Builders suppress them, so random models print readable (if meaningless) text.
    """
    bad = []
    for candidate in range(len(tokenizer)):
        text = tokenizer.decode([candidate])
        if "\ufffd" in text or not all(c.isprintable() or c in "\n\t" for c in text):
            bad.append(candidate)
    return bad


def train_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on a built-in corpus; return a fast HF tokenizer.

    Byte-level, so any text round-trips; ``<pad>``, ``<s>`` and ``</s>`` are
    its special tokens and `CHAT_TEMPLATE` its chat template.

    Examples:
        >>> tokenizer = train_tokenizer(300)
        >>> tokenizer.decode(tokenizer("déjà vu 🙂")["input_ids"])
        'déjà vu 🙂'
    """
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
