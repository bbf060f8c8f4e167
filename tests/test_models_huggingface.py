"""Tests for llmrouter.models._huggingface against a real tiny transformers model."""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from _fixtures.fakes import Recorder
from langchain_core.exceptions import ContextOverflowError
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_huggingface import HuggingFacePipeline
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmrouter import ConfigurationError, ModelRouter, ModelSpec, route_of
from llmrouter.models import huggingface_pipeline
from llmrouter.models._huggingface import (
    DEFAULT_MAX_NEW_TOKENS,
    ChatHuggingFacePipeline,
    clear_pipelines,
    loaded_pipelines,
)
from llmrouter.resilience import ErrorKind, classify_error
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
        clear_pipelines()  # an earlier test loaded it: the registry is process-wide
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
    calls = chat.pipeline_calls
    with pytest.raises(ValueError, match="top_k"):  # raised inside transformers
        chat.invoke("hello there", do_sample=True, top_k=-3)
    assert chat.pipeline_calls == calls + 1
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


def first_stop(full: str) -> str:
    """A 2-character stop string ``full`` first contains at index 2 or later."""
    at = next(i for i in range(2, len(full) - 2) if full.find(full[i : i + 2]) == i)
    return full[at : at + 2]


def test_calls_with_other_limits_and_stops_share_one_batch(
    chat: ChatHuggingFacePipeline,
) -> None:
    wide = chat.model_copy(update={"max_batch_size": 16, "batch_wait_ms": 200})
    jobs: list[tuple[str, dict[str, Any]]] = []
    for prompt in PROMPTS:
        stop = first_stop(str(chat.invoke(prompt).content))
        kinds = [{}, {"max_tokens": 2}, {"stop": [stop]}, {"max_tokens": 5, "stop": [stop, "zz"]}]
        jobs += [(prompt, kw) for kw in kinds]
    alone = [chat.invoke(prompt, **kw) for prompt, kw in jobs]
    before = wide.pipeline_calls
    barrier = threading.Barrier(len(jobs))

    def call(job: tuple[str, dict[str, Any]]) -> AIMessage:
        barrier.wait()
        return wide.invoke(job[0], **job[1])

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        replies = list(pool.map(call, jobs))
    # four kinds of settings: batched apart, they would take at least four calls
    assert wide.pipeline_calls - before < 4
    assert max(r.response_metadata["batch"]["size"] for r in replies) > 4
    for reply, single in zip(replies, alone, strict=True):  # each row stopped at its own
        assert reply.content == single.content
        assert reply.usage_metadata == single.usage_metadata
        finish = reply.response_metadata["finish_reason"]
        assert finish == single.response_metadata["finish_reason"]
    finishes = {r.response_metadata["finish_reason"] for r in replies}
    assert finishes == {"stop", "length"}  # both kinds of ending were in the batch


def test_a_reply_says_its_batch_and_how_long_it_queued(chat: ChatHuggingFacePipeline) -> None:
    lone = chat.model_copy(update={"batch_wait_ms": 50}).invoke("hello there")
    assert lone.response_metadata["batch"]["size"] == 1
    assert 50 <= lone.response_metadata["batch"]["queued_ms"] < 1000  # it waited the window
    replies = chat.model_copy(update={"batch_wait_ms": 200}).batch(PROMPTS)
    sizes = [r.response_metadata["batch"]["size"] for r in replies]
    assert max(sizes) > 1 and all(1 <= s <= len(PROMPTS) for s in sizes)


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


# ------------------------------------------------------------------ context window

WINDOW = 128


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with a 128-token context window."""
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-small"), n_positions=WINDOW)


@pytest.fixture(scope="module")
def small(small_dir: Path) -> ChatHuggingFacePipeline:
    model = huggingface_pipeline(str(small_dir), name="small", do_sample=False).chat_model
    assert isinstance(model, ChatHuggingFacePipeline)
    return model


def user_text(chat: ChatHuggingFacePipeline, tokens: int, word: str = "") -> str:
    """A user message whose rendered prompt is exactly ``tokens`` tokens long."""
    text = word
    while chat.count_prompt_tokens([HumanMessage(text + "~")]) <= tokens:
        text += "~"  # one token each: the tiny tokenizer learnt no merges of "~"
    assert chat.count_prompt_tokens([HumanMessage(text)]) == tokens
    return text


class Spy:
    """Wraps a shared pipeline's call; records the prompts and keywords of each call."""

    def __init__(self, pipeline: Any, poison: str | None = None) -> None:
        self.pipeline, self.poison = pipeline, poison
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, prompts: list[str], **kwargs: Any) -> Any:
        self.calls.append((list(prompts), kwargs))
        if self.poison is not None and any(self.poison in p for p in prompts):
            raise RuntimeError("poisoned batch")
        return self.pipeline(prompts, **kwargs)


def spy_on(chat: ChatHuggingFacePipeline, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Spy:
    shared = chat.warm_up()._pipeline_load().peek()
    assert shared is not None
    spy = Spy(shared.pipeline, **kw)
    monkeypatch.setattr(shared, "pipeline", spy)
    return spy


def test_output_limit_is_capped_by_the_context_window(small: ChatHuggingFacePipeline) -> None:
    text = user_text(small, WINDOW - 20)
    for kwargs in ({}, {"max_tokens": 200}, {"max_new_tokens": 500}):
        reply = small.invoke(text, **kwargs)  # crashed with IndexError before
        assert reply.usage_metadata is not None
        assert reply.usage_metadata["input_tokens"] == WINDOW - 20
        assert reply.usage_metadata["total_tokens"] <= WINDOW
    chunks = list(small.stream(text, max_tokens=200))
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata["total_tokens"] <= WINDOW


def test_default_output_limit(
    tiny_model_dir: Path, small: ChatHuggingFacePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DEFAULT_MAX_NEW_TOKENS == 256
    spy = spy_on(small, monkeypatch)
    small.invoke(user_text(small, WINDOW - 20))  # the model's generation config says 16
    small.invoke(user_text(small, WINDOW - 5))
    small.invoke(user_text(small, WINDOW - 5), max_tokens=3)
    assert [kwargs["max_new_tokens"] for _, kwargs in spy.calls] == [16, 5, 3]


def test_default_output_limit_without_a_generation_config_limit(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, bare)
    config = json.loads((bare / "generation_config.json").read_text())
    del config["max_new_tokens"]
    (bare / "generation_config.json").write_text(json.dumps(config))
    chat = huggingface_pipeline(str(bare)).chat_model
    assert isinstance(chat, ChatHuggingFacePipeline)
    spy = spy_on(chat, monkeypatch)
    chat.invoke("hi")
    chat.invoke(user_text(chat, 400))
    assert [kwargs["max_new_tokens"] for _, kwargs in spy.calls] == [256, 512 - 400]


def test_a_prompt_that_does_not_fit_fails_before_generating(
    small: ChatHuggingFacePipeline,
) -> None:
    last_fit = small.invoke(user_text(small, WINDOW - 1), max_tokens=50)
    assert last_fit.usage_metadata is not None
    assert last_fit.usage_metadata["output_tokens"] <= 1
    calls = small.pipeline_calls
    for tokens in (WINDOW, WINDOW + 40):
        for call in (small.invoke, lambda text: list(small.stream(text))):
            with pytest.raises(ContextOverflowError, match="context window") as caught:
                call(user_text(small, tokens))
            assert f"{tokens} tokens" in str(caught.value)
            assert classify_error(caught.value).kind is ErrorKind.CONTEXT_LENGTH
    assert small.pipeline_calls == calls  # nothing was generated


def test_a_router_falls_back_from_a_small_local_window(small_dir: Path) -> None:
    # The spec claims a larger window than the model has (a wrong or copied number),
    # so the router's own window check lets the long prompt through to the model.
    local = huggingface_pipeline(
        str(small_dir), name="local", tasks={"chat"}, max_new_tokens=8, context_window=4096
    )
    large = ModelSpec(
        name="large", model=Recorder(reply="from large"), tasks={"chat"}, context_window=100_000
    )
    router = ModelRouter(models=[local, large], routes={"chat": "local"})
    assert router.invoke("hi", task="chat").response_metadata["model_name"] == "local"
    reply = router.invoke("word " * 300, task="chat")  # crashed with IndexError (fatal) before
    assert reply.content == "from large"
    record = route_of(reply)
    assert [(a.model, a.ok, a.kind) for a in record.attempts] == [
        ("local", False, "context_length"),
        ("large", True, None),
    ]
    texts = ["hi", "word " * 300, "ok there", "Summarize.", "def add(a, b):"]
    replies = router.batch(texts, task="chat")
    assert [route_of(r).model for r in replies] == ["local", "large", "local", "local", "local"]


def test_sampling_near_the_limit_never_crashes(small: ChatHuggingFacePipeline) -> None:
    words = ["cat", "The", "def", "price", "Paris", "{", "42", "dog", ""]
    texts = [user_text(small, WINDOW - gap, words[gap % len(words)]) for gap in range(1, 41)]
    replies = small.batch(texts, max_tokens=200, temperature=1.5, top_k=0, return_exceptions=True)
    failures = [r for r in replies if not isinstance(r, AIMessage)]
    assert failures == []
    for reply in replies:
        assert isinstance(reply, AIMessage) and reply.usage_metadata is not None
        assert reply.usage_metadata["total_tokens"] <= WINDOW


# ------------------------------------------------------------------ failures stay their own


async def test_a_too_long_request_fails_alone_when_gathered(
    small: ChatHuggingFacePipeline,
) -> None:
    texts = [*PROMPTS, "hi", "ok there", "Summarize.", "word " * 300]
    replies = await asyncio.gather(*(small.ainvoke(t) for t in texts), return_exceptions=True)
    assert [type(r).__name__ for r in replies] == ["AIMessage"] * 7 + ["ContextOverflowError"]


def test_a_too_long_request_fails_alone_in_a_batch(small: ChatHuggingFacePipeline) -> None:
    texts = [*PROMPTS, "hi", "word " * 300, "ok there", "Summarize."]
    replies = small.batch(texts, return_exceptions=True)
    assert [isinstance(r, ContextOverflowError) for r in replies] == [False] * 5 + [True] + [
        False
    ] * 2
    assert all(isinstance(r, AIMessage) for i, r in enumerate(replies) if i != 5)


def test_a_batch_keeps_its_longest_row_within_the_window(
    small: ChatHuggingFacePipeline,
) -> None:
    # 100 + 8 and 30 + 90 tokens each fit 128, but not together: padded to the
    # longer prompt, the batch would run 100 + 90 positions
    jobs = [(user_text(small, 100, "long"), 8), (user_text(small, 30, "short"), 90)]
    alone = [small.invoke(text, max_tokens=limit).content for text, limit in jobs]
    wide = small.model_copy(update={"batch_wait_ms": 200})
    barrier = threading.Barrier(len(jobs))

    def call(job: tuple[str, int]) -> AIMessage:
        barrier.wait()
        return wide.invoke(job[0], max_tokens=job[1])

    before = wide.pipeline_calls
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        replies = list(pool.map(call, jobs))
    assert [r.content for r in replies] == alone
    assert [r.response_metadata["batch"]["size"] for r in replies] == [1, 1]
    assert wide.pipeline_calls - before == 2  # no batch that failed and ran one by one


def test_a_failed_batch_is_retried_one_by_one(
    chat: ChatHuggingFacePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [*PROMPTS, "hi", "POISON", "ok there", "Summarize."]
    alone = [chat.invoke(t).content for t in texts if t != "POISON"]
    spy = spy_on(chat, monkeypatch, poison="POISON")
    replies = chat.batch(texts, return_exceptions=True)
    assert isinstance(replies[5], RuntimeError)
    assert [r.content for r in replies if isinstance(r, AIMessage)] == alone
    assert max(len(prompts) for prompts, _ in spy.calls) > 1  # it did batch first


# ------------------------------------------------------------------ stop


def test_stop_as_a_string_is_one_sequence(chat: ChatHuggingFacePipeline) -> None:
    full = str(chat.invoke("def add(a, b):").content)
    # a 3-character stop string first found at `at`, one of whose characters comes earlier
    at = next(
        i
        for i in range(2, len(full) - 3)
        if full.find(full[i : i + 3]) == i and any(c in full[:i] for c in full[i : i + 3])
    )
    stop = full[at : at + 3]
    assert chat.invoke("def add(a, b):", stop=stop).content == full[:at]
    assert chat.invoke("def add(a, b):", stop=[stop]).content == full[:at]
    chunks = list(chat.stream("def add(a, b):", stop=stop))
    assert "".join(str(c.content) for c in chunks) == full[:at]
    assert chat.invoke("def add(a, b):", stop="\x00never").content == full


def test_stop_sequence_is_the_adapters_default_stop(
    chat: ChatHuggingFacePipeline, tiny_model_dir: Path
) -> None:
    full = str(chat.invoke("def add(a, b):").content)
    stop = first_stop(full)
    spec = huggingface_pipeline(
        str(tiny_model_dir), stop_sequence=stop, max_new_tokens=MAX_NEW, do_sample=False
    )
    at = full.index(stop)
    assert spec.chat_model.invoke("def add(a, b):").content == full[:at]
    chunks = list(spec.chat_model.stream("def add(a, b):"))
    assert "".join(str(c.content) for c in chunks) == full[:at]
    # a call's own stop replaces the default
    assert spec.chat_model.invoke("def add(a, b):", stop=["\x00never"]).content == full


# ------------------------------------------------------------------ configuration


def test_factory_validates_its_arguments(tiny_model_dir: Path) -> None:
    assert huggingface_pipeline(tiny_model_dir).chat_model.model_id == str(tiny_model_dir)
    bad: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
        ((None,), {}, "model_id_or_path must be a non-empty str or os.PathLike"),
        (("",), {}, "model_id_or_path must be a non-empty str or os.PathLike"),
        ((str(tiny_model_dir),), {"max_new_tokens": "lots"}, "max_new_tokens must be a positive"),
        ((str(tiny_model_dir),), {"max_new_tokens": 0}, "max_new_tokens must be a positive"),
        ((str(tiny_model_dir),), {"max_tokens": 1.5}, "max_tokens must be a positive"),
        ((str(tiny_model_dir),), {"max_tokens": True}, "max_tokens must be a positive"),
        ((str(tiny_model_dir),), {"temperature": -1}, "temperature must be a number >= 0"),
        ((str(tiny_model_dir),), {"temperature": "hot"}, "temperature must be a number >= 0"),
        (
            (str(tiny_model_dir),),
            {"pipeline_kwargs": {"max_new_tokens": -3}},
            "max_new_tokens must be a positive",
        ),
    ]
    for args, kwargs, message in bad:
        with pytest.raises(ConfigurationError, match=message):
            huggingface_pipeline(*args, **kwargs)


def test_per_call_settings_are_validated(chat: ChatHuggingFacePipeline) -> None:
    calls = chat.pipeline_calls
    with pytest.raises(ValueError, match="max_tokens must be a positive integer, got 'x'"):
        chat.invoke("hi", max_tokens="x")
    with pytest.raises(
        ValueError, match=r"temperature must be a number >= 0 \(0 = greedy\), got -2"
    ):
        chat.invoke("hi", temperature=-2)
    assert chat.pipeline_calls == calls


def test_warm_up_loads_the_pipeline_now(tmp_path: Path) -> None:
    path = str(build_tiny_chat_model(tmp_path, seed=3))
    chat = huggingface_pipeline(path, max_new_tokens=2).chat_model
    assert isinstance(chat, ChatHuggingFacePipeline) and not chat.is_loaded
    assert chat.warm_up() is chat
    assert chat.is_loaded and loaded_pipelines().count(path) == 1
    assert chat.pipeline_calls == 0


def bad_sources(tmp_path: Path) -> list[tuple[str, str]]:
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"")
    return [
        (str(tmp_path / "missing" / "model"), "does not exist"),
        (str(tmp_path / "empty"), "has no config.json"),
        (str(tmp_path / "weights.bin"), "is a file, not a model directory"),
        ("not a model!", "neither an existing local path nor a valid Hugging Face Hub repo id"),
        ("nobody-here/no-such-model", "not in the local Hugging Face cache, and HF_HUB_OFFLINE=1"),
    ]


def test_warm_up_explains_a_bad_model_source(tmp_path: Path) -> None:
    for source, message in bad_sources(tmp_path):
        chat = huggingface_pipeline(source).chat_model
        assert isinstance(chat, ChatHuggingFacePipeline)
        with pytest.raises(ConfigurationError, match=message) as caught:
            chat.warm_up()
        assert source in str(caught.value)
        assert classify_error(caught.value).kind is ErrorKind.FATAL
        fresh = huggingface_pipeline(source).chat_model  # no warm_up: the first call says it
        with pytest.raises(ConfigurationError, match=message):
            fresh.invoke("hi")
        with pytest.raises(ConfigurationError, match=message):
            list(fresh.stream("hi"))


def test_a_bad_model_source_is_not_retried_and_the_router_falls_back(tmp_path: Path) -> None:
    broken = huggingface_pipeline(str(tmp_path / "nowhere"), name="broken", tasks={"chat"})
    spare = ModelSpec(name="spare", model=Recorder(reply="spare"), tasks={"chat"})
    reply = ModelRouter(models=[broken, spare], routes={"chat": "broken"}).invoke("hi", task="chat")
    assert reply.content == "spare"
    first = route_of(reply).attempts[0]
    assert (first.model, first.error_type, first.kind) == ("broken", "ConfigurationError", "fatal")
    assert first.error is not None and "does not exist" in first.error
    assert len(route_of(reply).attempts) == 2  # no retry on the broken model


def test_a_misspelled_generation_keyword_is_refused_with_the_closest_name() -> None:
    with pytest.raises(ConfigurationError, match=r"'do_smple' \(did you mean 'do_sample'\?\)"):
        huggingface_pipeline("/tmp", do_smple=True)
    spec = huggingface_pipeline("/tmp", top_k=3, return_full_text=False, max_batch_size=2)
    assert spec.chat_model.pipeline_kwargs == {"top_k": 3, "return_full_text": False}
