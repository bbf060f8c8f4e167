"""Tests for llmrouter.models._huggingface against a real tiny transformers model."""

from __future__ import annotations

import asyncio
import gc
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_huggingface import HuggingFacePipeline
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmrouter import ModelSpec
from llmrouter.models import huggingface_pipeline
from llmrouter.models._huggingface import ChatHuggingFacePipeline, loaded_pipelines
from llmrouter.testing import build_tiny_chat_model

MAX_NEW = 12
PROMPTS = ["hello there", "What is the capital of France?", "def add(a, b):", "Summarize this."]
Reference = Callable[..., tuple[str, bool]]


@pytest.fixture(scope="module")
def spec(tiny_model_dir: Path) -> ModelSpec:
    return huggingface_pipeline(
        str(tiny_model_dir), name="tiny", max_new_tokens=MAX_NEW, do_sample=False
    )


@pytest.fixture(scope="module")
def chat(spec: ModelSpec) -> ChatHuggingFacePipeline:
    model = spec.chat_model
    assert isinstance(model, ChatHuggingFacePipeline)
    return model


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, tokenizer: Any) -> Reference:
    """Greedy generation straight through transformers: (new text, ended with EOS)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    def generate(
        user: str, max_new_tokens: int = MAX_NEW, system: str | None = None
    ) -> tuple[str, bool]:
        prompt = template(tokenizer, user, system)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1] :]
        ended = tokenizer.eos_token_id in new.tolist()
        return tokenizer.decode(new, skip_special_tokens=True), ended

    return generate


@pytest.fixture(scope="module")
def generated_count(tiny_model_dir: Path, tokenizer: Any) -> Callable[..., int]:
    """Tokens a greedy transformers run generates, up to and including EOS."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    def generated(user: str, system: str | None = None, max_new_tokens: int = MAX_NEW) -> int:
        prompt = template(tokenizer, user, system)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1] :].tolist()
        eos = tokenizer.eos_token_id
        return new.index(eos) + 1 if eos in new else len(new)

    return generated


def template(tokenizer: Any, user: str, system: str | None = None) -> str:
    turns = [{"role": "system", "content": system}] if system else []
    turns.append({"role": "user", "content": user})
    return str(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))


def count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("llmrouter-stream")]


# ------------------------------------------------------------------ factory


def test_factory_splits_keywords(tiny_model_dir: Path) -> None:
    spec = huggingface_pipeline(
        str(tiny_model_dir) + "/",
        tasks={"chat"},
        tags={"local"},
        max_batch_size=3,
        batch_wait_ms=5,
        max_new_tokens=7,
        temperature=0.0,
    )
    model = spec.chat_model
    assert isinstance(model, ChatHuggingFacePipeline)
    assert spec.name == tiny_model_dir.name  # last path component
    assert spec.tasks == {"chat"} and spec.tags == {"local"}
    assert (spec.input_cost, spec.output_cost) == (0.0, 0.0)
    assert spec.context_window == 512  # n_positions, read from config.json
    assert (model.max_batch_size, model.batch_wait_ms) == (3, 5)
    assert model.pipeline_kwargs == {"max_new_tokens": 7, "temperature": 0.0}
    priced = huggingface_pipeline("org/some-model", input_cost=0.1, context_window=99)
    assert (priced.name, priced.input_cost, priced.context_window) == ("some-model", 0.1, 99)


def test_langsmith_params(chat: ChatHuggingFacePipeline) -> None:
    params = chat._get_ls_params(max_tokens=5)
    assert params["ls_provider"] == "huggingface"
    assert params["ls_model_name"] == chat.model_id
    assert params["ls_max_tokens"] == 5
    assert chat._llm_type == "huggingface-pipeline-chat"


# ------------------------------------------------------------------ invoke


def test_invoke_returns_only_the_generated_text(
    chat: ChatHuggingFacePipeline,
    tokenizer: Any,
    reference: Reference,
    generated_count: Callable[..., int],
) -> None:
    reply = chat.invoke([SystemMessage("Be brief."), HumanMessage("hello there")])
    expected, ended = reference("hello there", system="Be brief.")

    assert reply.content == expected
    assert reply.content  # the tiny model does say something
    prompt = template(tokenizer, "hello there", system="Be brief.")
    # output tokens are the tokens really generated (EOS included), not a re-count
    generated = generated_count("hello there", system="Be brief.")
    assert reply.usage_metadata == {
        "input_tokens": count(tokenizer, prompt),
        "output_tokens": generated,
        "total_tokens": count(tokenizer, prompt) + generated,
    }
    assert reply.response_metadata["model_name"] == chat.model_id
    assert reply.response_metadata["finish_reason"] == ("stop" if ended else "length")


def test_chat_template_is_used(
    chat: ChatHuggingFacePipeline, tokenizer: Any, reference: Reference
) -> None:
    reply = chat.invoke("What is the capital of France?")
    assert reply.content == reference("What is the capital of France?")[0]
    templated = template(tokenizer, "What is the capital of France?")
    assert templated.endswith("<|assistant|>\n")
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == count(tokenizer, templated)


def test_plain_rendering_without_a_chat_template(tiny_model_dir: Path, tmp_path: Path) -> None:
    plain_dir = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, plain_dir)
    (plain_dir / "chat_template.jinja").unlink()
    plain_tokenizer = AutoTokenizer.from_pretrained(plain_dir)
    assert not plain_tokenizer.chat_template

    reply = huggingface_pipeline(str(plain_dir), max_new_tokens=4).chat_model.invoke("hi")
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == len(
        plain_tokenizer("user: hi\nassistant:")["input_ids"]
    )


def test_count_prompt_tokens_equals_the_reported_input_tokens(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    plain_dir = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, plain_dir)
    (plain_dir / "chat_template.jinja").unlink()
    messages = [SystemMessage("Be brief."), HumanMessage("What is the capital of France?")]
    for path in (str(tiny_model_dir), str(plain_dir)):  # chat template, plain rendering
        chat = ChatHuggingFacePipeline(model_id=path, pipeline_kwargs={"max_new_tokens": 2})
        before = chat.count_prompt_tokens(messages)
        assert not chat.is_loaded  # the tokenizer alone was read
        reply = chat.invoke(messages)
        assert reply.usage_metadata is not None
        assert before == reply.usage_metadata["input_tokens"]
        assert chat.count_prompt_tokens(messages) == before  # now with the loaded pipeline

    missing = ChatHuggingFacePipeline(model_id=str(tmp_path / "missing"))
    for _ in range(2):  # the failure is remembered, and reported each time
        with pytest.raises(OSError, match="cannot load the tokenizer of"):
            missing.count_prompt_tokens(messages)


def test_per_call_max_tokens(
    chat: ChatHuggingFacePipeline, tokenizer: Any, reference: Reference
) -> None:
    expected, ended = reference("hello there", max_new_tokens=3)
    for key in ("max_tokens", "max_new_tokens"):
        reply = chat.invoke("hello there", **{key: 3})
        assert reply.content == expected
        assert reply.response_metadata["finish_reason"] == ("stop" if ended else "length")
    assert chat.invoke("hello there").content == reference("hello there")[0]


def test_stop_sequence_truncates(
    chat: ChatHuggingFacePipeline, tokenizer: Any, generated_count: Callable[..., int]
) -> None:
    full = str(chat.invoke("def add(a, b):").content)
    # A stop string the unconstrained greedy output provably contains, first at `at`.
    at = next(i for i in range(2, len(full) - 2) if full.find(full[i : i + 2]) == i)
    stop = full[at : at + 2]

    reply = chat.invoke("def add(a, b):", stop=[stop, "never-generated"])
    assert reply.content == full[:at]
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.usage_metadata is not None
    # generation stopped early: at least the returned text, at most the full run
    output_tokens = reply.usage_metadata["output_tokens"]
    assert count(tokenizer, full[:at]) <= output_tokens <= generated_count("def add(a, b):")

    chunks = list(chat.stream("def add(a, b):", stop=[stop]))
    assert "".join(str(c.content) for c in chunks) == full[:at]
    assert chunks[-1].response_metadata["finish_reason"] == "stop"


def test_generation_errors_reach_the_caller(chat: ChatHuggingFacePipeline) -> None:
    with pytest.raises(ValueError):
        chat.invoke("hello there", max_new_tokens=-1)
    assert chat.invoke("hello there").content  # the batcher recovered


# ------------------------------------------------------------------ streaming


def test_stream_joins_to_the_invoke_text(chat: ChatHuggingFacePipeline) -> None:
    reply = chat.invoke("hello there")
    chunks = list(chat.stream("hello there"))

    assert len([c for c in chunks if c.content]) > 1  # really streamed
    assert "".join(str(c.content) for c in chunks) == reply.content
    total: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.usage_metadata == reply.usage_metadata
    assert total.response_metadata["model_name"] == chat.model_id
    assert total.response_metadata["finish_reason"] == reply.response_metadata["finish_reason"]
    assert not stream_threads()


def test_abandoned_stream_stops_its_thread(chat: ChatHuggingFacePipeline) -> None:
    stream = chat.stream("hello there", max_new_tokens=200)
    next(stream)
    stream.close()
    assert not stream_threads()


# ------------------------------------------------------------------ async


async def _ticking(coro: Any) -> tuple[Any, int]:
    """Run ``coro`` while a ticker counts how often the event loop got to run it."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    try:
        result = await coro
    finally:
        done.set()
        await task
    return result, ticks


async def test_ainvoke_does_not_block_the_event_loop(chat: ChatHuggingFacePipeline) -> None:
    expected = chat.invoke("hello there", max_new_tokens=80).content
    started = time.perf_counter()
    reply, ticks = await _ticking(chat.ainvoke("hello there", max_new_tokens=80))
    elapsed = time.perf_counter() - started
    assert reply.content == expected
    assert ticks >= 3 and ticks >= elapsed / 0.001 / 10


async def test_astream_does_not_block_the_event_loop(chat: ChatHuggingFacePipeline) -> None:
    expected = chat.invoke("hello there", max_new_tokens=80).content

    async def collect() -> list[AIMessageChunk]:
        return [chunk async for chunk in chat.astream("hello there", max_new_tokens=80)]

    chunks, ticks = await _ticking(collect())
    assert "".join(str(c.content) for c in chunks) == expected
    assert chunks[-1].usage_metadata is not None
    assert ticks >= 3


async def test_abandoned_astream_stops_its_thread(chat: ChatHuggingFacePipeline) -> None:
    stream = chat.astream("hello there", max_new_tokens=200)
    await stream.__anext__()
    await stream.aclose()
    gc.collect()
    for _ in range(200):  # the inner stream is closed by the loop's async-gen finalizer
        if not stream_threads():
            break
        await asyncio.sleep(0.01)
    assert not stream_threads()


# ------------------------------------------------------------------ batching


def test_batch_coalesces_into_fewer_pipeline_calls(chat: ChatHuggingFacePipeline) -> None:
    alone = [chat.invoke(p).content for p in PROMPTS]
    before = chat.pipeline_calls
    replies = chat.batch(PROMPTS)
    assert chat.pipeline_calls - before < len(PROMPTS)
    assert [r.content for r in replies] == alone


async def test_abatch_coalesces_too(chat: ChatHuggingFacePipeline) -> None:
    alone = [chat.invoke(p).content for p in PROMPTS]
    before = chat.pipeline_calls
    replies = await chat.abatch(PROMPTS)
    assert chat.pipeline_calls - before < len(PROMPTS)
    assert [r.content for r in replies] == alone


def test_concurrent_calls_with_different_settings(chat: ChatHuggingFacePipeline) -> None:
    short = chat.bind(max_tokens=2)
    expected = [short.invoke(p).content for p in PROMPTS] + [
        chat.invoke(p).content for p in PROMPTS
    ]
    jobs = [(short, p) for p in PROMPTS] + [(chat, p) for p in PROMPTS]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        replies = list(pool.map(lambda job: job[0].invoke(job[1]).content, jobs))
    assert replies == expected


# ------------------------------------------------------------------ loading


def test_lazy_and_loaded_once_for_every_adapter(tmp_path: Path) -> None:
    path = str(build_tiny_chat_model(tmp_path, seed=2))
    first = huggingface_pipeline(path, name="first")
    second = huggingface_pipeline(path, name="second", max_new_tokens=3)
    adapters = [first.chat_model, second.chat_model]
    assert path not in loaded_pipelines()
    assert not any(a.is_loaded for a in adapters if isinstance(a, ChatHuggingFacePipeline))

    with ThreadPoolExecutor(max_workers=2) as pool:  # both trigger the first load at once
        list(pool.map(lambda a: a.invoke("hi"), adapters))

    assert loaded_pipelines().count(path) == 1
    a, b = adapters
    assert isinstance(a, ChatHuggingFacePipeline) and isinstance(b, ChatHuggingFacePipeline)
    assert a.hf_pipeline is b.hf_pipeline
    assert isinstance(a.hf_pipeline, HuggingFacePipeline)
    assert a.hf_pipeline.pipeline_kwargs["return_full_text"] is False
    huggingface_pipeline(path, name="third").chat_model.invoke("hi")
    assert loaded_pipelines().count(path) == 1
