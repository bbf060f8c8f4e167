"""Offline token counting: the estimate, named tokenizers, and local pipelines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage

from llmrouter import ModelSpec, models
from llmrouter._tokens import TokenCounter, estimate_tokens


def remote(name: str) -> ModelSpec:
    return ModelSpec(name=name, model=FakeListChatModel(responses=["x"]))


def test_estimate_is_chars_over_four_plus_message_overhead() -> None:
    assert estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2
    spec = remote("m")
    count = TokenCounter().count(spec, [HumanMessage("abcde"), AIMessage("abcd")])
    assert count == (2 + 4 + 1 + 4, "estimate")


def test_named_tokenizer_directory_counts_with_the_chat_template(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    messages = [HumanMessage("Summarize the weather today, please.")]
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": messages[0].text}], tokenize=False, add_generation_prompt=True
    )
    expected = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    counter = TokenCounter({"remote": str(tiny_model_dir)})
    assert counter.count(remote("remote"), messages) == (expected, "tokenizer")


def test_a_tokenizer_that_cannot_load_falls_back_to_the_estimate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = TokenCounter({"remote": str(tmp_path / "missing")})
    with caplog.at_level(logging.WARNING, logger="llmrouter"):
        count = counter.count(remote("remote"), [HumanMessage("hello")])
    assert count.method == "estimate"
    assert "could not load tokenizer" in caplog.text


def test_local_pipeline_count_equals_the_usage_it_reports(tiny_model_dir: Path) -> None:
    spec = models.huggingface_pipeline(
        str(tiny_model_dir), name="local", max_new_tokens=3, do_sample=False
    )
    messages = [HumanMessage("What is the capital of France?")]
    counter = TokenCounter()
    before = counter.count(spec, messages)  # tokenizer files only: the model is not loaded
    assert before.method == "tokenizer" and not spec.chat_model.is_loaded  # type: ignore[attr-defined]
    reply = spec.chat_model.invoke(messages)
    assert reply.usage_metadata is not None
    assert before.tokens == reply.usage_metadata["input_tokens"]
    assert TokenCounter().count(spec, messages) == before  # from the loaded pipeline
