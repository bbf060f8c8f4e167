"""Chat adapter over a local transformers text-generation pipeline.

Upstream ``ChatHuggingFace`` over a local ``HuggingFacePipeline`` has no async,
no ``usage_metadata``, ignores ``stop`` and echoes the prompt. This adapter keeps
the real ``HuggingFacePipeline.from_model_id`` loading path and closes those gaps:

- lazy and shared: nothing loads before the first generation, and one pipeline
  per (model id, device, model kwargs) serves every adapter in the process;
- only the generated text is returned, cut at the first ``stop`` sequence
  (streaming holds back text that could start one);
- prompt and output fit the model's context window: the output limit is capped,
  and a prompt that cannot fit fails before generating, with the
  ``ContextOverflowError`` routers fall back on (checks in ``_hf_checks``);
- a request's failure stays its own: a failed batch is run again one by one;
- a bad model path is reported plainly, by ``warm_up()`` or on the first call;
- ``usage_metadata`` counted with the model's own tokenizer, ``finish_reason``;
- concurrent calls (``batch``, ``abatch``, threads) are coalesced into one
  pipeline call by a leader micro-batcher with no background thread;
- async never blocks the event loop: generation runs in worker threads.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables.config import run_in_executor
from pydantic import Field, PrivateAttr, field_validator

from llmrouter.errors import (
    ConfigurationError,
    InvalidRequestError,
    LLMRouterError,
    reject_unknown_keywords,
)
from llmrouter.models._common import (
    SPEC_FIELDS,
    default_name,
    freeze,
    generation_fields,
    make_spec,
    recorded,
    split_spec_kwargs,
)
from llmrouter.models._hf_checks import (
    DEFAULT_MAX_NEW_TOKENS,
    check_generation,
    check_model_id,
    check_model_source,
    context_window_of,
    context_window_on_disk,
    output_limit,
)

if TYPE_CHECKING:
    import torch

    from llmrouter.spec import ModelSpec

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "ChatHuggingFacePipeline",
    "clear_pipelines",
    "huggingface_pipeline",
    "loaded_pipelines",
]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_CALL_OVERRIDES = ("max_new_tokens", "temperature", "top_p", "top_k", "do_sample")
_PIPELINE_ONLY = ("return_full_text", "return_text", "return_tensors", "stop_sequence")


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class _Generation:
    """One row of a pipeline call: the raw new text, whether the model emitted EOS,
    and how many tokens it generated (EOS included, padding not)."""

    text: str
    ended: bool
    generated: int | None = None


class _Tracker:
    """A stopping criterion that records the sequences generated so far.

    It stops nothing by itself, except when ``cancel`` is set (a stream consumer
    went away), so the generation thread ends promptly.
    """

    def __init__(self, cancel: threading.Event | None = None) -> None:
        self.cancel = cancel
        self.sequences: torch.Tensor | None = None
        self.steps = 0

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        self.sequences, self.steps = input_ids, self.steps + 1
        stop = self.cancel is not None and self.cancel.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    def ended(self, row: int, eos_ids: frozenset[int]) -> bool:
        """True if row ``row`` generated an end-of-sequence token."""
        if self.sequences is None:
            return True  # nothing generated at all
        new_tokens = self.sequences[row, self.sequences.shape[1] - self.steps :].tolist()
        return any(token in eos_ids for token in new_tokens)

    def generated(self, row: int, eos_ids: frozenset[int]) -> int:
        """Tokens row ``row`` really generated: up to its first EOS (a finished row
        of a batch keeps being padded until the longest row is done)."""
        if self.sequences is None:
            return 0
        new_tokens = self.sequences[row, self.sequences.shape[1] - self.steps :].tolist()
        for index, token in enumerate(new_tokens):
            if token in eos_ids:
                return index + 1
        return len(new_tokens)


@dataclass(eq=False)
class _Request:
    prompt: str
    kwargs: dict[str, Any]
    key: Hashable
    future: Future[_Generation] = field(default_factory=Future)


class _MicroBatcher:
    """Coalesces concurrent requests into one pipeline call, without a background thread.

    The first caller that finds no leader becomes the leader: it waits a moment
    for others to join, runs compatible pending requests together, and repeats
    until its own request is done; then it hands leadership to a waiting caller.
    """

    def __init__(self, run: Callable[[list[_Request]], None]) -> None:
        self._run = run
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._leading = False

    def submit(self, request: _Request, wait_s: float, max_batch: int) -> _Generation:
        with self._cond:
            self._pending.append(request)
            while self._leading and not request.future.done():
                self._cond.wait()
            lead = not request.future.done()
            # When no leader runs, every request taken so far is done: ours is pending.
            self._leading = self._leading or lead
            pause = lead and wait_s > 0 and len(self._pending) < max_batch
        if lead:
            try:
                if pause:
                    time.sleep(wait_s)
                while not request.future.done():
                    with self._cond:
                        group = self._take(max_batch)
                    self._run(group)
                    with self._cond:
                        self._cond.notify_all()
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        return request.future.result()

    def _take(self, max_batch: int) -> list[_Request]:
        key = self._pending[0].key
        group = [r for r in self._pending if r.key == key][:max_batch]
        self._pending = [r for r in self._pending if r not in group]
        return group


class _SharedPipeline:
    """One loaded pipeline, shared by every adapter with the same load settings."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        """The langchain_huggingface ``HuggingFacePipeline`` that loaded it."""
        self.pipeline: Any = llm.pipeline
        self.tokenizer: Any = self.pipeline.tokenizer
        self.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        generation_config = self.pipeline.model.generation_config
        eos = generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        self.eos_ids = frozenset(i for i in eos_ids if i is not None)
        self.window = context_window_of(self.pipeline.model)
        """Most prompt plus output tokens the model takes (``None``: unknown)."""
        self.default_new_tokens: int = (
            getattr(generation_config, "max_new_tokens", None) or DEFAULT_MAX_NEW_TOKENS
        )
        """Output limit when neither the call nor the adapter sets one."""
        self.templated = _templated(self.tokenizer)
        self.calls = 0
        self.batcher = _MicroBatcher(self._run_group)
        self._run_lock = threading.Lock()  # one generation at a time on this model

    def count_tokens(self, text: str, *, prompt: bool = False) -> int:
        return _count_tokens(self.tokenizer, text, prompt=prompt)

    def generate(
        self, prompts: list[str], kwargs: dict[str, Any], **extra: Any
    ) -> list[_Generation]:
        """Run the pipeline once on ``prompts`` (one batch) and return each row."""
        from transformers import StoppingCriteriaList

        tracker = _Tracker(extra.pop("cancel", None))
        call = {
            **kwargs,
            **extra,
            "add_special_tokens": not self.templated,
            "stopping_criteria": StoppingCriteriaList([tracker]),
        }
        with self._run_lock:
            self.calls += 1
            outputs = self.pipeline(prompts, batch_size=len(prompts), **call)
        return [
            _Generation(
                out[0]["generated_text"],
                tracker.ended(row, self.eos_ids),
                tracker.generated(row, self.eos_ids),
            )
            for row, out in enumerate(outputs)
        ]

    def _run_group(self, group: list[_Request]) -> None:
        try:
            results = self.generate([r.prompt for r in group], group[0].kwargs)
        except Exception as exc:
            if len(group) == 1:
                group[0].future.set_exception(exc)
            else:  # one bad request must not fail the others: run each alone
                for request in group:
                    self._run_group([request])
            return
        except BaseException as exc:
            for request in group:
                request.future.set_exception(exc)
            raise
        for request, result in zip(group, results, strict=True):
            request.future.set_result(result)


def _count_tokens(tokenizer: Any, text: str, *, prompt: bool = False) -> int:
    """Tokens of ``text``; a prompt gets the tokenizer's specials unless a chat template
    wrote its own."""
    special = prompt and not _templated(tokenizer)
    # verbose=False: a prompt longer than the model's window is a count like any other
    return len(tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])


def _templated(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


_CACHE: dict[Hashable, tuple[str, _SharedPipeline]] = {}
_CACHE_LOCK = threading.Lock()
_LOAD_LOCKS: dict[Hashable, threading.Lock] = {}


def loaded_pipelines() -> list[str]:
    """Model ids of the pipelines loaded in this process, one entry per load.

    Examples:
        >>> from llmrouter.models._huggingface import loaded_pipelines
        >>> isinstance(loaded_pipelines(), list)
        True
    """
    with _CACHE_LOCK:
        return [model_id for model_id, _ in _CACHE.values()]


def clear_pipelines() -> None:
    """Forget every shared pipeline (adapters holding one keep using it).

    Examples:
        >>> from llmrouter.models._huggingface import clear_pipelines, loaded_pipelines
        >>> clear_pipelines(); loaded_pipelines()
        []
    """
    with _CACHE_LOCK:
        _CACHE.clear()


def _shared_pipeline(
    model_id: str, device: int | str | None, model_kwargs: dict[str, Any]
) -> _SharedPipeline:
    key = (model_id, freeze(device), freeze(model_kwargs))
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key][1]
        load_lock = _LOAD_LOCKS.setdefault(key, threading.Lock())
    with load_lock:  # per key: loading one model does not block loading another
        with _CACHE_LOCK:
            if key in _CACHE:
                return _CACHE[key][1]
        from langchain_huggingface import HuggingFacePipeline

        check_model_source(model_id)
        index, device_map = _device_args(device)
        try:
            llm = HuggingFacePipeline.from_model_id(
                model_id=model_id,
                task="text-generation",
                device=index,
                device_map=device_map,
                model_kwargs=dict(model_kwargs) or None,
                pipeline_kwargs={"return_full_text": False},
            )
        except (OSError, ValueError, ImportError) as exc:
            raise _load_error(model_id, exc) from exc
        shared = _SharedPipeline(llm)
        with _CACHE_LOCK:
            _CACHE[key] = (model_id, shared)
            _LOAD_LOCKS.pop(key, None)
    return shared


def _load_error(model_id: str, exc: Exception) -> Exception:
    """What to raise when loading ``model_id`` failed with ``exc``: a
    `ConfigurationError`, unless a retry may fix it (a dropped download)."""
    from llmrouter.resilience._classify import ErrorKind, classify_error

    if isinstance(exc, LLMRouterError) or classify_error(exc).kind is ErrorKind.RETRYABLE:
        return exc
    return ConfigurationError(
        f"cannot load model {model_id!r} ({type(exc).__name__}: {exc}); check the "
        "model id or path and model_kwargs"
    )


_TOKENIZERS: dict[Hashable, Any] = {}
"""Tokenizers read on their own (counting before the model loads), or why they could not be."""


def _tokenizer_alone(model_id: str, model_kwargs: dict[str, Any]) -> Any:
    """The tokenizer ``from_model_id`` loads for ``model_id``, without the weights.

    Read once per process; a failure is remembered and reported again without
    retrying (counting runs on every request).

    Raises:
        OSError: the tokenizer cannot be loaded.
    """
    key = (model_id, freeze(model_kwargs))
    with _CACHE_LOCK:
        found = _TOKENIZERS.get(key)
    if found is None:
        try:
            from transformers import AutoTokenizer

            check_model_source(model_id)
            found = AutoTokenizer.from_pretrained(model_id, **model_kwargs)
        except Exception as exc:
            found = exc
        with _CACHE_LOCK:
            found = _TOKENIZERS.setdefault(key, found)
    if isinstance(found, ConfigurationError):
        raise OSError(f"cannot load the tokenizer of {model_id!r}: {found}") from found
    if isinstance(found, Exception):
        raise OSError(
            f"cannot load the tokenizer of {model_id!r} ({type(found).__name__}: {found})"
        ) from found
    return found


def _device_args(device: int | str | None) -> tuple[int | None, str | None]:
    """Map ``device`` to ``from_model_id``'s (device index, device_map)."""
    if device is None or isinstance(device, int):
        return device, None
    if device == "cpu":
        return -1, None
    if device == "cuda" or device.startswith("cuda:"):
        return int(device.partition(":")[2] or 0), None
    return None, device  # "auto", "mps", ...: let accelerate place it


# --------------------------------------------------------------------------- adapter


class ChatHuggingFacePipeline(BaseChatModel):
    """A chat model over a local transformers text-generation pipeline.

    The pipeline loads on the first generation (or `warm_up`) and is shared by
    every adapter with the same ``model_id``, ``device`` and ``model_kwargs``.
    ``ainvoke`` and ``astream`` run generation in worker threads (LangChain's
    executor), so the event loop keeps running.

    Output limit: the call's ``max_tokens``/``max_new_tokens``, else the adapter's
    (``pipeline_kwargs``), else the model's generation config ``max_new_tokens``,
    else `DEFAULT_MAX_NEW_TOKENS` (256); always capped at the context window
    minus the prompt's tokens. A prompt leaving no room for one new token raises
    langchain-core's ``ContextOverflowError`` before generating, so routers fall
    back to a model with a larger window. ``stop`` is a string or a list of them.

    Examples:
        >>> import tempfile
        >>> from llmrouter.testing import build_tiny_chat_model
        >>> from llmrouter.models._huggingface import ChatHuggingFacePipeline
        >>> path = str(build_tiny_chat_model(tempfile.mkdtemp()))
        >>> chat = ChatHuggingFacePipeline(model_id=path,
        ...                                pipeline_kwargs={"max_new_tokens": 4})
        >>> reply = chat.invoke("hello")
        >>> reply.usage_metadata["output_tokens"] <= 4
        True
    """

    model_id: str
    """Hub repo id or local directory of a causal LM."""
    device: int | str | None = None
    """``-1``/``"cpu"``, an accelerator index or ``"cuda:N"``; other strings become a
    ``device_map`` (e.g. ``"auto"``). ``None``: transformers' default."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keywords for ``from_pretrained`` (e.g. ``{"torch_dtype": "bfloat16"}``)."""
    pipeline_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Generation defaults, e.g. ``max_new_tokens``, ``temperature``, ``do_sample``.
    ``temperature=0`` means greedy decoding."""
    max_batch_size: int = Field(default=8, ge=1)
    """Most prompts run together in one pipeline call."""
    batch_wait_ms: float = Field(default=2.0, ge=0)
    """How long a batch leader waits for concurrent calls to join its batch."""

    _shared: _SharedPipeline | None = PrivateAttr(default=None)

    @field_validator("model_id", mode="before")
    @classmethod
    def _model_id_is_text(cls, value: Any) -> str:
        return check_model_id(value)

    @field_validator("pipeline_kwargs")
    @classmethod
    def _usable_generation(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_generation(value)
        return value

    @property
    def _llm_type(self) -> str:
        return "huggingface-pipeline-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "device": self.device,
            "pipeline_kwargs": self.pipeline_kwargs,
        }

    @property
    def is_loaded(self) -> bool:
        """True once this adapter has its (possibly shared) pipeline."""
        return self._shared is not None

    @property
    def pipeline_calls(self) -> int:
        """Pipeline calls made so far on this adapter's shared pipeline (0 before loading)."""
        return 0 if self._shared is None else self._shared.calls

    @property
    def hf_pipeline(self) -> Any:
        """The underlying langchain_huggingface ``HuggingFacePipeline`` (loads it)."""
        return self._load().llm

    def warm_up(self) -> ChatHuggingFacePipeline:
        """Load the pipeline now (once per process) rather than on the first call.

        Returns this adapter. Call it at start-up to find a bad model path before
        serving, e.g. ``spec.chat_model.warm_up()`` for a spec built by
        `huggingface_pipeline`. Without it, the first call raises the same error.

        Raises:
            ConfigurationError: the model cannot be loaded; the message says why
                (the path does not exist, a directory without ``config.json``, not
                a valid hub repo id, not cached while ``HF_HUB_OFFLINE=1``, ...).

        Examples:
            >>> import tempfile
            >>> from llmrouter.testing import build_tiny_chat_model
            >>> from llmrouter.models import huggingface_pipeline
            >>> path = str(build_tiny_chat_model(tempfile.mkdtemp()))
            >>> huggingface_pipeline(path).chat_model.warm_up().is_loaded
            True
            >>> huggingface_pipeline("/no/such/dir").chat_model.warm_up()  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            llmrouter.errors.ConfigurationError: model path '/no/such/dir' does not exist ...
        """
        self._load()
        return self

    def _load(self) -> _SharedPipeline:
        if self._shared is None:
            self._shared = _shared_pipeline(self.model_id, self.device, self.model_kwargs)
        return self._shared

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "huggingface"
        params["ls_model_name"] = self.model_id
        settings = self._settings(None, kwargs)
        if isinstance(settings.get("temperature"), int | float):
            params["ls_temperature"] = settings["temperature"]
        if isinstance(settings.get("max_new_tokens"), int):
            params["ls_max_tokens"] = settings["max_new_tokens"]
        return params

    # ------------------------------------------------------------------ helpers

    def _settings(self, stop: list[str] | None, call: dict[str, Any]) -> dict[str, Any]:
        """Generation keywords: the defaults, then this call's overrides (unchecked)."""
        settings = {k: v for k, v in self.pipeline_kwargs.items() if k not in _PIPELINE_ONLY}
        if "max_tokens" in settings:
            settings.setdefault("max_new_tokens", settings.pop("max_tokens"))
        overrides = {k: call[k] for k in _CALL_OVERRIDES if call.get(k) is not None}
        if call.get("max_tokens") is not None:
            overrides["max_new_tokens"] = call["max_tokens"]
        if "temperature" in overrides and "do_sample" not in overrides:
            overrides["do_sample"] = overrides["temperature"] > 0  # OpenAI-style meaning
        settings.update(overrides)
        if settings.get("temperature") == 0:
            del settings["temperature"]
            settings["do_sample"] = False
        if stop:
            settings["stop_sequence"] = list(stop)  # transformers stops early on these
        return settings

    def _prepare(
        self,
        shared: _SharedPipeline,
        messages: list[BaseMessage],
        stop: list[str] | None,
        call: dict[str, Any],
    ) -> tuple[str, dict[str, Any], int]:
        """The prompt, its generation keywords and its token count, checked before
        any batching: a request that cannot run fails here, alone.

        Raises:
            InvalidRequestError: a per-call output limit or temperature is unusable.
            ContextOverflowError: the prompt leaves no room in the context window.
        """
        check_generation(call, InvalidRequestError)
        prompt = self._render(messages, shared.tokenizer)
        prompt_tokens = shared.count_tokens(prompt, prompt=True)
        settings = self._settings(stop, call)
        wanted = settings.get("max_new_tokens") or shared.default_new_tokens
        settings["max_new_tokens"] = output_limit(
            wanted, prompt_tokens, shared.window, self.model_id
        )
        return prompt, settings, prompt_tokens

    def count_prompt_tokens(self, messages: Sequence[BaseMessage]) -> int:
        """The input tokens a generation on ``messages`` reports, counted without generating.

        The prompt is rendered and counted exactly as generation does it (the
        model's chat template, or ``role: content`` lines without one). Before
        the model is loaded only its tokenizer is read, once per process.

        Raises:
            OSError: the tokenizer cannot be loaded (not retried in this process).

        Examples:
            >>> import tempfile
            >>> from langchain_core.messages import HumanMessage
            >>> from llmrouter.testing import build_tiny_chat_model
            >>> from llmrouter.models._huggingface import ChatHuggingFacePipeline
            >>> path = str(build_tiny_chat_model(tempfile.mkdtemp()))
            >>> chat = ChatHuggingFacePipeline(model_id=path)
            >>> tokens = chat.count_prompt_tokens([HumanMessage("hello")])
            >>> tokens > 0, chat.is_loaded
            (True, False)
        """
        if self._shared is not None:
            tokenizer = self._shared.tokenizer
        else:
            tokenizer = _tokenizer_alone(self.model_id, self.model_kwargs)
        return _count_tokens(tokenizer, self._render(list(messages), tokenizer), prompt=True)

    @staticmethod
    def _render(messages: list[BaseMessage], tokenizer: Any) -> str:
        turns = [
            {
                "role": m.role if isinstance(m, ChatMessage) else _ROLES.get(m.type, m.type),
                "content": str(m.text),
            }
            for m in messages
        ]
        if _templated(tokenizer):
            prompt = tokenizer.apply_chat_template(
                turns, tokenize=False, add_generation_prompt=True
            )
            return str(prompt)
        return "".join(f"{t['role']}: {t['content']}\n" for t in turns) + "assistant:"

    def _metadata(
        self,
        shared: _SharedPipeline,
        input_tokens: int,
        text: str,
        finish: str,
        generated: int | None = None,
    ) -> tuple[UsageMetadata, dict[str, Any]]:
        # the tokens the model really generated (what compute costs); re-tokenizing
        # the text is only the fallback, it can differ from what was generated
        output_tokens = generated if generated is not None else shared.count_tokens(text)
        usage = UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
        return usage, {"model_name": self.model_id, "finish_reason": finish}

    # ------------------------------------------------------------------ generation

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stop = _stops(stop)
        shared = self._load()
        prompt, settings, prompt_tokens = self._prepare(shared, messages, stop, kwargs)
        request = _Request(prompt, settings, freeze(settings))
        result = shared.batcher.submit(request, self.batch_wait_ms / 1000, self.max_batch_size)
        text, cut = _cut_at_stop(result.text, stop)
        finish = "stop" if cut or result.ended else "length"
        usage, metadata = self._metadata(shared, prompt_tokens, text, finish, result.generated)
        message = AIMessage(content=text, usage_metadata=usage, response_metadata=metadata)
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info={"finish_reason": finish})]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Generator[ChatGenerationChunk, None, None]:
        from transformers import TextIteratorStreamer

        stop = _stops(stop)
        shared = self._load()
        prompt, settings, prompt_tokens = self._prepare(shared, messages, stop, kwargs)
        streamer = TextIteratorStreamer(
            shared.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        cancel = threading.Event()
        outcome: list[_Generation] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                outcome.extend(
                    shared.generate([prompt], settings, streamer=streamer, cancel=cancel)
                )
            except BaseException as exc:
                failure.append(exc)
                streamer.end()  # type: ignore[no-untyped-call]  # unblock the consumer

        worker = threading.Thread(target=work, name=f"llmrouter-stream-{self.model_id}")
        worker.start()
        text, sent, cut = "", 0, False
        try:
            for piece in streamer:
                text += piece
                text, cut = _cut_at_stop(text, stop)
                safe = len(text) if cut else len(text) - _stop_prefix_len(text, stop)
                if safe > sent:
                    yield _chunk(text[sent:safe])
                    sent = safe
                if cut:
                    break
        finally:
            cancel.set()  # no-op once generation ended; stops it if we ended early
            worker.join()
        if failure:
            raise failure[0]
        if sent < len(text):
            yield _chunk(text[sent:])
        ended = cut or not outcome or outcome[0].ended
        generated = outcome[0].generated if outcome else None
        usage, metadata = self._metadata(
            shared, prompt_tokens, text, "stop" if ended else "length", generated
        )
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=usage,
                response_metadata=metadata,
                chunk_position="last",
            ),
            generation_info={"finish_reason": metadata["finish_reason"]},
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # Like BaseChatModel's default (each step in a worker thread), but always
        # closes the sync stream, so an abandoned stream stops its generation thread.
        iterator = self._stream(messages, stop, None, **kwargs)
        try:
            while (item := await run_in_executor(None, _next_or_none, iterator)) is not None:
                yield item
        finally:
            await run_in_executor(None, iterator.close)


def _next_or_none(
    iterator: Generator[ChatGenerationChunk, None, None],
) -> ChatGenerationChunk | None:
    return next(iterator, None)


def _chunk(text: str) -> ChatGenerationChunk:
    return ChatGenerationChunk(message=AIMessageChunk(content=text))


def _stops(stop: str | Sequence[str] | None) -> list[str] | None:
    """``stop`` as a list: one string is one stop sequence, not its characters."""
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def _cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """``text`` up to the first stop sequence, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stop or () if s) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def _stop_prefix_len(text: str, stop: list[str] | None) -> int:
    """Length of the longest tail of ``text`` that could start a stop sequence."""
    longest = 0
    for s in stop or ():
        for size in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:size]):
                longest = size
                break
    return longest


# --------------------------------------------------------------------------- factory


@functools.cache
def _generation_keywords() -> frozenset[str]:
    """What a text-generation pipeline call takes: GenerationConfig fields, the
    pipeline's own settings, and the OpenAI-style ``max_tokens`` this adapter maps."""
    from transformers import TextGenerationPipeline

    own = inspect.signature(TextGenerationPipeline._sanitize_parameters).parameters
    return generation_fields() | (set(own) - {"self"}) | {"max_tokens"}


@recorded
def huggingface_pipeline(
    model_id_or_path: str | os.PathLike[str],
    *,
    name: str | None = None,
    device: int | str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A `ModelSpec` for a local transformers causal LM, loaded lazily and shared.

    Keywords that are `ModelSpec` fields (``tasks``, ``quality``, prices, ...) go
    to the spec; `ChatHuggingFacePipeline` fields (``max_batch_size``,
    ``batch_wait_ms``, ``callbacks``, ...) go to the adapter; all others, and a
    ``pipeline_kwargs`` dict, are generation defaults (``max_new_tokens``, ...).
    Local models cost nothing unless ``input_cost``/``output_cost`` are given;
    ``context_window`` defaults to the model config's when it is on disk.
    Without ``max_new_tokens``/``max_tokens`` a call generates at most the model's
    generation-config limit, else `DEFAULT_MAX_NEW_TOKENS` (256), capped by the
    context window. The model loads on first use; ``spec.chat_model.warm_up()``
    loads it now and reports a bad path as a `ConfigurationError`.

    Raises:
        ConfigurationError: ``model_id_or_path`` is not a non-empty ``str`` or
            ``os.PathLike``; ``max_new_tokens``/``max_tokens`` is not a positive
            integer, or ``temperature`` not a number >= 0.

    Examples:
        >>> import tempfile
        >>> from llmrouter.testing import build_tiny_chat_model
        >>> from llmrouter.models import huggingface_pipeline
        >>> path = str(build_tiny_chat_model(tempfile.mkdtemp()))
        >>> spec = huggingface_pipeline(path, name="tiny", tasks={"chat"},
        ...                             max_new_tokens=8, do_sample=False)
        >>> spec.name, spec.input_cost, spec.context_window
        ('tiny', 0.0, 512)
        >>> spec.chat_model.pipeline_kwargs
        {'max_new_tokens': 8, 'do_sample': False}
    """
    model_id = check_model_id(model_id_or_path)
    spec_kwargs, rest = split_spec_kwargs(kwargs)
    adapter_fields = set(ChatHuggingFacePipeline.model_fields) - {"model_id", "pipeline_kwargs"}
    adapter = {k: v for k, v in rest.items() if k in adapter_fields}
    generation = dict(rest.pop("pipeline_kwargs", None) or {})
    generation.update({k: v for k, v in rest.items() if k not in adapter_fields})
    reject_unknown_keywords(
        f"huggingface_pipeline({model_id!r})",
        [k for k in rest if k not in adapter_fields and k != "pipeline_kwargs"],
        _generation_keywords() | adapter_fields | SPEC_FIELDS,
        "Generation settings are transformers GenerationConfig fields; pass others "
        "in pipeline_kwargs={...}",
    )
    check_generation(generation)
    if spec_kwargs.get("context_window") is None:
        spec_kwargs["context_window"] = context_window_on_disk(model_id)
    model = ChatHuggingFacePipeline(
        model_id=model_id,
        device=device,
        model_kwargs=dict(model_kwargs or {}),
        pipeline_kwargs=generation,
        **adapter,
    )
    return make_spec(name or default_name(model_id), model, spec_kwargs)
