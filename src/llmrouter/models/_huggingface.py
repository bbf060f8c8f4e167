"""Chat adapter over a local transformers text-generation pipeline.

Upstream ``ChatHuggingFace`` over a local ``HuggingFacePipeline`` has no async,
no ``usage_metadata``, ignores ``stop`` and echoes the prompt. This adapter keeps
the real ``HuggingFacePipeline.from_model_id`` loading path and closes those gaps:

- lazy and shared: nothing loads before the first generation, and one pipeline
  per (model source, device, model kwargs, quantization) serves every adapter in
  the process, through the process-wide model registry (``_hf_loading``), which
  may unload it when idle under a memory budget;
- a hub repo id loads a revision from the Hugging Face cache, downloading it if
  needed and allowed, and a model listed in ``llmrouter.lock`` is checked against
  it (``_hub``, ``_lock``);
- only the generated text is returned, cut at the first ``stop`` sequence
  (streaming holds back text that could start one);
- prompt and output fit the model's context window: the output limit is capped,
  and a prompt that cannot fit fails before generating, with the
  ``ContextOverflowError`` routers fall back on (checks in ``_hf_checks``);
- a request's failure stays its own: a failed batch is run again one by one;
- a bad model path is reported plainly, by ``warm_up()`` or on the first call;
- ``usage_metadata`` counted with the model's own tokenizer, ``finish_reason``;
- concurrent calls (``batch``, ``abatch``, threads) are coalesced into one
  pipeline call by a leader micro-batcher with no background thread (``_hf_batch``);
- async never blocks the event loop: generation runs in worker threads.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ChatMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables.config import run_in_executor
from pydantic import Field, PrivateAttr, SecretStr, field_validator

from llmrouter.errors import ConfigurationError, InvalidRequestError, reject_unknown_keywords
from llmrouter.models._common import (
    SPEC_FIELDS,
    default_name,
    freeze,
    generation_fields,
    make_spec,
    recorded,
    split_spec_kwargs,
)
from llmrouter.models._hf_batch import Generation, Request, waiting_pool
from llmrouter.models._hf_checks import (
    DEFAULT_MAX_NEW_TOKENS,
    check_generation,
    check_model_id,
    context_window_on_disk,
    output_limit,
)
from llmrouter.models._hf_loading import (
    KIND,
    PipelineLoad,
    SharedPipeline,
    clear_pipelines,
    count_tokens,
    loaded_pipelines,
    templated,
    tokenizer_alone,
)
from llmrouter.models._hub import ModelSource
from llmrouter.models._registry import registry

if TYPE_CHECKING:
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


# --------------------------------------------------------------------------- adapter


class ChatHuggingFacePipeline(BaseChatModel):
    """A chat model over a local transformers text-generation pipeline.

    The pipeline loads on the first generation (or `warm_up`) and is shared by
    every adapter with the same source (``model_id``, ``revision``, ...),
    ``device``, ``model_kwargs`` and ``quantize``, through the process-wide model
    registry (`llmrouter.models.loaded_models`); under a memory budget an idle
    pipeline may be unloaded, and loads again on next use. A hub repo id is read
    from the Hugging Face cache, downloaded there if missing and allowed; a model
    listed in ``llmrouter.lock`` loads the locked commit and must match the lock.
    ``ainvoke`` and ``astream`` run generation in worker threads (LangChain's
    executor), so the event loop keeps running.

    Output limit: the call's ``max_tokens``/``max_new_tokens``, else the adapter's
    (``pipeline_kwargs``), else the model's generation config ``max_new_tokens``,
    else `DEFAULT_MAX_NEW_TOKENS` (256); always capped at the context window
    minus the prompt's tokens. A prompt leaving no room for one new token raises
    langchain-core's ``ContextOverflowError`` before generating, so routers fall
    back to a model with a larger window. ``stop`` is a string or a list of them;
    ``stop_sequence`` in ``pipeline_kwargs`` (a factory keyword) is the default stop.

    Concurrent calls share a pipeline call (see ``max_batch_size``,
    ``max_batch_tokens`` and ``batch_wait_ms``), even with different output limits
    and stops; ``response_metadata["batch"]`` gives the rows of that call, how long
    the request waited for it to start and how long it ran (milliseconds).

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
        >>> wide = chat.model_copy(update={"batch_wait_ms": 200})
        >>> replies = wide.batch(["hi", "hello"])
        >>> [r.response_metadata["batch"]["size"] for r in replies]
        [2, 2]
    """

    model_id: str
    """Hub repo id or local directory of a causal LM."""
    device: int | str | None = None
    """``-1``/``"cpu"``, an accelerator index or ``"cuda:N"``; other strings become a
    ``device_map`` (e.g. ``"auto"``). ``None``: transformers' default."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keywords for ``from_pretrained`` (e.g. ``{"dtype": "bfloat16"}``, or a
    ``quantization_config`` for bitsandbytes on a GPU)."""
    quantize: Literal["int8"] | None = None
    """``"int8"``: dynamic int8 quantization of the linear layers, on the CPU."""
    revision: str | None = None
    """Hub branch, tag or commit (default ``main``, or the commit ``llmrouter.lock``
    records)."""
    cache_dir: str | None = None
    """Hugging Face cache folder (default: ``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    allow_patterns: tuple[str, ...] | None = None
    """Download only the files matching these globs (e.g. ``("*.json", "*.safetensors")``)."""
    local_files_only: bool = False
    """Never download (as ``HF_HUB_OFFLINE=1``): the cache or a directory only."""
    lock: str | None = None
    """The lock file (default: ``LLMROUTER_LOCK``, else ``./llmrouter.lock`` if it exists,
    checking only the models it lists). A named lock must list the model."""
    verify: bool = True
    """Check the files against the lock; ``False`` loads them even if they differ."""
    token: SecretStr | None = Field(default=None, repr=False, exclude=True)
    """Hub token (default ``HF_TOKEN`` or the stored login); never printed or recorded."""
    adapter: str | None = None
    """A LoRA adapter (peft folder or hub repo id) applied to ``model_id``: adapters of
    one base share one copy of its weights (needs ``llmrouter[lora]``)."""
    adapter_revision: str | None = None
    """Hub revision of ``adapter`` (default ``main``, or the commit the lock records)."""
    pipeline_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Generation defaults, e.g. ``max_new_tokens``, ``temperature``, ``do_sample``.
    ``temperature=0`` means greedy decoding."""
    max_batch_size: int = Field(default=32, ge=1)
    """Most prompts run together in one pipeline call."""
    max_batch_tokens: int = Field(default=16384, ge=1)
    """Most padded tokens in one pipeline call: prompts times (the longest prompt plus
    the largest output limit). It bounds a batch's memory: long prompts run in smaller
    batches. A request alone may exceed it."""
    batch_wait_ms: float = Field(default=2.0, ge=0)
    """How long a batch leader waits for another concurrent call to join its batch; each
    call that joins restarts the wait, up to 10 times this in all (a full batch starts
    at once)."""

    _load_spec: PipelineLoad | None = PrivateAttr(default=None)
    _adapter_spec: ModelSource | None = PrivateAttr(default=None)

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
            "adapter": self.adapter,
            "device": self.device,
            "pipeline_kwargs": self.pipeline_kwargs,
        }

    @property
    def is_loaded(self) -> bool:
        """True once this adapter has its (possibly shared) pipeline."""
        return self._pipeline_load().peek() is not None

    @property
    def pipeline_calls(self) -> int:
        """Pipeline calls made on this adapter's shared pipeline since it was loaded
        (0 when it is not loaded)."""
        shared = self._pipeline_load().peek()
        return 0 if shared is None else shared.calls

    @property
    def hf_pipeline(self) -> Any:
        """The underlying langchain_huggingface ``HuggingFacePipeline`` (loads it)."""
        with self._using() as shared:
            return shared.llm

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
        with self._using():
            return self

    def _pipeline_load(self) -> PipelineLoad:
        if self._load_spec is None:
            source = self._source(self.model_id, self.revision, allow_patterns=self.allow_patterns)
            self._load_spec = PipelineLoad(source, self.device, self.model_kwargs, self.quantize)
        return self._load_spec

    def _source(self, model_id: str, revision: str | None, **extra: Any) -> ModelSource:
        return ModelSource(
            model_id,
            revision=revision,
            cache_dir=self.cache_dir,
            local_files_only=self.local_files_only,
            lock=self.lock,
            verify=self.verify,
            token=self.token.get_secret_value() if self.token else None,
            **extra,
        )

    def _adapter_on(self, shared: SharedPipeline) -> str | None:
        """This adapter's LoRA adapter name on ``shared``, loading it there the first time."""
        if self.adapter is None:
            return None
        if self._adapter_spec is None:
            _check_adapter(self.adapter, self.quantize)
            self._adapter_spec = self._source(
                self.adapter, self.adapter_revision, required="adapter_config.json"
            )
        folder = self._adapter_spec.locate()
        if str(folder) in shared.adapters:
            return shared.adapters[str(folder)]
        name = shared.adapter_name(self._adapter_spec.resolve())  # checked against the lock
        registry.refresh(KIND, self.model_id, self._pipeline_load())
        return name

    @contextmanager
    def _using(self) -> Iterator[SharedPipeline]:
        """The shared pipeline, loaded if needed and kept while the block runs."""
        with self._pipeline_load().using() as shared:
            yield shared

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "huggingface"
        params["ls_model_name"] = self.model_id
        settings = self._settings(kwargs)
        if isinstance(settings.get("temperature"), int | float):
            params["ls_temperature"] = settings["temperature"]
        if isinstance(settings.get("max_new_tokens"), int):
            params["ls_max_tokens"] = settings["max_new_tokens"]
        return params

    # ------------------------------------------------------------------ helpers

    def _stop_for(self, stop: str | Sequence[str] | None) -> list[str] | None:
        """The call's stop sequences, else the adapter's (``stop_sequence`` in
        ``pipeline_kwargs``, transformers' pipeline keyword)."""
        return _stops(stop) or _stops(self.pipeline_kwargs.get("stop_sequence"))

    def _settings(self, call: dict[str, Any]) -> dict[str, Any]:
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
        return settings

    def _prepare(
        self,
        shared: SharedPipeline,
        messages: list[BaseMessage],
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
        settings = self._settings(call)
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
        load = self._pipeline_load()
        shared = load.peek()
        tokenizer = shared.tokenizer if shared is not None else tokenizer_alone(load)
        return count_tokens(tokenizer, self._render(list(messages), tokenizer), prompt=True)

    @staticmethod
    def _render(messages: list[BaseMessage], tokenizer: Any) -> str:
        turns = [
            {
                "role": m.role if isinstance(m, ChatMessage) else _ROLES.get(m.type, m.type),
                "content": str(m.text),
            }
            for m in messages
        ]
        if templated(tokenizer):
            prompt = tokenizer.apply_chat_template(
                turns, tokenize=False, add_generation_prompt=True
            )
            return str(prompt)
        return "".join(f"{t['role']}: {t['content']}\n" for t in turns) + "assistant:"

    def _metadata(
        self,
        shared: SharedPipeline,
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
        metadata = {"model_name": self.model_id, "finish_reason": finish}
        if self.adapter is not None:
            metadata["adapter"] = self.adapter
        return usage, metadata

    # ------------------------------------------------------------------ generation

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stop = self._stop_for(stop)
        with self._using() as shared:
            shared.batcher.announce()  # a leader gathering a batch waits for this call
            try:
                prompt, settings, prompt_tokens = self._prepare(shared, messages, kwargs)
                adapter = self._adapter_on(shared)
            except BaseException:
                shared.batcher.withdraw()
                raise
            # requests with other output limits or stops share a batch; each row
            # stops at its own (see MicroBatcher)
            limit = settings.pop("max_new_tokens")
            request = Request(
                prompt,
                settings,
                (freeze(settings), adapter),
                adapter,
                limit=limit,
                stop=tuple(stop or ()),
                tokens=prompt_tokens,
            )
            wait_s = self.batch_wait_ms / 1000
            result = shared.batcher.submit(
                request,
                wait_s,
                self.max_batch_size,
                announced=True,
                max_tokens=self.max_batch_tokens,
            )
            text, cut = _cut_at_stop(result.text, stop)
            finish = "stop" if cut or result.ended else "length"
            usage, metadata = self._metadata(shared, prompt_tokens, text, finish, result.generated)
            metadata["batch"] = {
                "size": result.batch_size,
                "queued_ms": round(result.queued_s * 1000, 3),
                "run_ms": round(result.run_s * 1000, 3),
            }
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
        with self._using() as shared:  # kept loaded until the stream ends
            yield from self._stream_on(shared, messages, self._stop_for(stop), kwargs)

    def _stream_on(
        self,
        shared: SharedPipeline,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> Generator[ChatGenerationChunk, None, None]:
        from transformers import TextIteratorStreamer

        prompt, settings, prompt_tokens = self._prepare(shared, messages, kwargs)
        adapter = self._adapter_on(shared)
        streamer = TextIteratorStreamer(
            shared.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        cancel = threading.Event()
        outcome: list[Generation] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                outcome.extend(
                    shared.generate(
                        [prompt],
                        settings,
                        stops=[stop or ()],
                        streamer=streamer,
                        cancel=cancel,
                        adapter=adapter,
                    )
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

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # As BaseChatModel's default, in a wider pool: concurrent calls must reach the
        # batcher together to share a batch.
        context = copy_context()  # callbacks and tracing see the caller's context
        manager = run_manager.get_sync() if run_manager else None

        def generate() -> ChatResult:
            return context.run(self._generate, messages, stop, manager, **kwargs)

        return await run_in_executor(waiting_pool(), generate)

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


def _check_adapter(adapter: str | None, quantize: str | None) -> None:
    if adapter is not None and quantize is not None:
        raise ConfigurationError(
            f"adapter={adapter!r} with quantize={quantize!r} is not supported: LoRA layers "
            "need the base model's float linear layers; drop one of them"
        )


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

    A hub repo id takes ``revision``, ``cache_dir``, ``allow_patterns``,
    ``token`` and ``local_files_only``; with ``HF_HUB_OFFLINE=1`` it loads from a
    warm cache only. ``lock`` / ``verify`` check the files against
    ``llmrouter.lock`` (`IntegrityError` when they differ); ``quantize="int8"``
    quantizes the linear layers on the CPU; ``dtype`` and ``device_map`` go in
    ``model_kwargs``, ``device`` picks the device. ``adapter="path-or-repo"`` applies a
    LoRA adapter (peft): several adapters of one base are separate specs (named after
    the adapter) sharing one copy of the base weights, routable like any model.

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
    _check_adapter(adapter.get("adapter"), adapter.get("quantize"))
    if spec_kwargs.get("context_window") is None:
        spec_kwargs["context_window"] = context_window_on_disk(
            model_id, revision=adapter.get("revision"), cache_dir=adapter.get("cache_dir")
        )
    model = ChatHuggingFacePipeline(
        model_id=model_id,
        device=device,
        model_kwargs=dict(model_kwargs or {}),
        pipeline_kwargs=generation,
        **adapter,
    )
    return make_spec(name or default_name(model.adapter or model_id), model, spec_kwargs)
