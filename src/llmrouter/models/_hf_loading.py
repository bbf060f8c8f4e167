"""Loading local text-generation pipelines, once per process, through the model registry.

A `PipelineLoad` names what to load: the model's source (a directory or a hub
repo at a revision, checked against ``llmrouter.lock``), the device, the
``from_pretrained`` keywords and the quantization. Equal loads share one
`SharedPipeline` in `llmrouter.models._registry.registry`, which may unload it
when idle under a memory budget; the next use loads it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llmrouter.errors import ConfigurationError, LLMRouterError
from llmrouter.models._common import freeze
from llmrouter.models._hf_adapters import active_adapter, attach_adapter
from llmrouter.models._hf_batch import Generation, MicroBatcher, Request, Tracker
from llmrouter.models._hf_checks import DEFAULT_MAX_NEW_TOKENS, context_window_of
from llmrouter.models._hub import ModelSource
from llmrouter.models._registry import registry

if TYPE_CHECKING:
    from transformers import StopStringCriteria

__all__ = [
    "KIND",
    "PipelineLoad",
    "SharedPipeline",
    "clear_pipelines",
    "count_tokens",
    "loaded_pipelines",
    "templated",
    "tokenizer_alone",
]

KIND = "text-generation"
"""The registry kind of these pipelines (``text-generation:<model id>``)."""
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


class SharedPipeline:
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
        self.templated = templated(self.tokenizer)
        self.calls = 0
        self.batcher = MicroBatcher(self._run_group, window=self.window)
        self.adapters: dict[str, str] = {}
        """LoRA adapters loaded onto this model: their folder -> their name in peft."""
        self._run_lock = threading.Lock()  # one generation at a time on this model

    def adapter_name(self, folder: Path) -> str:
        """The name of the LoRA adapter in ``folder`` on this model, loading it the
        first time (every adapter shares this one copy of the base weights)."""
        with self._run_lock:
            name = self.adapters.get(str(folder))
            if name is None:
                name = f"adapter{len(self.adapters)}"
                attach_adapter(self.pipeline, folder, name)
                self.adapters[str(folder)] = name
        return name

    def count_tokens(self, text: str, *, prompt: bool = False) -> int:
        return count_tokens(self.tokenizer, text, prompt=prompt)

    def generate(
        self,
        prompts: list[str],
        kwargs: dict[str, Any],
        *,
        limits: Sequence[int | None] | None = None,
        stops: Sequence[Sequence[str]] | None = None,
        cancel: threading.Event | None = None,
        adapter: str | None = None,
        **extra: Any,
    ) -> list[Generation]:
        """Run the pipeline once on ``prompts`` (one batch) and return each row.

        ``limits`` and ``stops`` are each row's output limit and stop sequences:
        the batch runs up to the largest limit, and each row stops at its own.
        """
        from transformers import StoppingCriteriaList

        default = kwargs.get("max_new_tokens") or self.default_new_tokens
        rows = [limit or default for limit in limits] if limits else None
        tracker = Tracker(cancel, rows, self._stop_criteria(stops or ()))
        call = {
            **kwargs,
            **extra,
            "add_special_tokens": not self.templated,
            "stopping_criteria": StoppingCriteriaList([tracker]),
        }
        if rows:
            call["max_new_tokens"] = max(rows)
        with self._run_lock:  # adapters are attached under this lock too: read them here
            switch = (
                active_adapter(self.pipeline.model, adapter) if self.adapters else nullcontext()
            )
            with switch:
                self.calls += 1
                outputs = self.pipeline(prompts, batch_size=len(prompts), **call)
        return [
            Generation(
                out[0]["generated_text"],
                tracker.ended(row, self.eos_ids),
                tracker.generated(row, self.eos_ids),
            )
            for row, out in enumerate(outputs)
        ]

    def _stop_criteria(self, stops: Sequence[Sequence[str]]) -> list[StopStringCriteria | None]:
        """A stop-string criterion per row (``None``: no stop), one per distinct set."""
        from transformers import StopStringCriteria

        made: dict[tuple[str, ...], StopStringCriteria] = {}
        for stop in stops:
            if stop and tuple(stop) not in made:
                made[tuple(stop)] = StopStringCriteria(self.tokenizer, list(stop))
        return [made[tuple(stop)] if stop else None for stop in stops]

    def _run_group(self, group: list[Request]) -> None:
        started = time.monotonic()
        try:
            results = self.generate(
                [r.prompt for r in group],
                group[0].kwargs,
                limits=[r.limit for r in group],
                stops=[r.stop for r in group],
                adapter=group[0].adapter,
            )
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
            done = replace(result, batch_size=len(group), run_s=time.monotonic() - started)
            request.future.set_result(done)


def count_tokens(tokenizer: Any, text: str, *, prompt: bool = False) -> int:
    """Tokens of ``text``; a prompt gets the tokenizer's specials unless a chat template
    wrote its own."""
    special = prompt and not templated(tokenizer)
    # verbose=False: a prompt longer than the model's window is a count like any other
    return len(tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])


def templated(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


@dataclass(frozen=True)
class PipelineLoad:
    """What to load: equal loads share one pipeline."""

    source: ModelSource
    device: int | str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    quantize: Literal["int8"] | None = None
    frozen_kwargs: Hashable = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "frozen_kwargs", freeze(self.model_kwargs))

    @property
    def model_id(self) -> str:
        return self.source.model_id

    @contextmanager
    def using(self) -> Iterator[SharedPipeline]:
        """The shared pipeline, loaded if needed, not unloaded before the block ends."""
        folder = self.source.locate()
        with registry.using(
            KIND,
            self.model_id,
            self,
            lambda: self._load(self.source.resolve()),  # checked against the lock to load
            estimate=lambda: _on_disk(folder),  # only when a load is due
        ) as shared:
            yield shared

    def peek(self) -> SharedPipeline | None:
        """The shared pipeline if it is loaded now (never loads)."""
        found = registry.peek(KIND, self.model_id, self)
        return found if isinstance(found, SharedPipeline) else None

    def _load(self, folder: Path) -> SharedPipeline:
        from langchain_huggingface import HuggingFacePipeline

        index, device_map = device_args(self.device)
        try:
            llm = HuggingFacePipeline.from_model_id(
                model_id=str(folder),
                task="text-generation",
                device=index,
                device_map=device_map,
                model_kwargs=dict(self.model_kwargs) or None,
                pipeline_kwargs={"return_full_text": False},
            )
        except (OSError, ValueError, ImportError) as exc:
            raise load_error(self.model_id, exc) from exc
        if self.quantize == "int8":
            from llmrouter.models._quantize import quantize_int8

            llm.pipeline.model = quantize_int8(llm.pipeline.model)
        return SharedPipeline(llm)


def _on_disk(folder: Path) -> int:
    """Bytes of the weight files in ``folder`` (what loading will roughly take)."""
    try:
        return sum(p.stat().st_size for p in folder.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES))
    except OSError:
        return 0


def loaded_pipelines() -> list[str]:
    """Model ids of the text-generation pipelines loaded in this process, one per load.

    Examples:
        >>> from llmrouter.models._hf_loading import loaded_pipelines
        >>> isinstance(loaded_pipelines(), list)
        True
    """
    return [m.name.partition(":")[2] for m in registry.loaded(KIND)]


def clear_pipelines() -> None:
    """Forget every shared text-generation pipeline (calls running on one finish with it).

    Examples:
        >>> from llmrouter.models._hf_loading import clear_pipelines, loaded_pipelines
        >>> clear_pipelines(); loaded_pipelines()
        []
    """
    registry.clear(KIND)


def load_error(model_id: str, exc: Exception) -> Exception:
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
_TOKENIZERS_LOCK = threading.Lock()


def tokenizer_alone(load: PipelineLoad) -> Any:
    """The tokenizer the pipeline loads, without the weights.

    Read once per process; a failure is remembered and reported again without
    retrying (counting runs on every request).

    Raises:
        OSError: the tokenizer cannot be loaded.
    """
    key = (load.source, load.frozen_kwargs)
    with _TOKENIZERS_LOCK:
        found = _TOKENIZERS.get(key)
    if found is None:
        try:
            from transformers import AutoTokenizer

            folder = load.source.resolve()
            found = AutoTokenizer.from_pretrained(str(folder), **load.model_kwargs)
        except Exception as exc:
            found = exc
        with _TOKENIZERS_LOCK:
            found = _TOKENIZERS.setdefault(key, found)
    model_id = load.model_id
    if isinstance(found, ConfigurationError):
        raise OSError(f"cannot load the tokenizer of {model_id!r}: {found}") from found
    if isinstance(found, Exception):
        raise OSError(
            f"cannot load the tokenizer of {model_id!r} ({type(found).__name__}: {found})"
        ) from found
    return found


def device_args(device: int | str | None) -> tuple[int | None, str | None]:
    """Map ``device`` to ``from_model_id``'s (device index, device_map)."""
    if device is None or isinstance(device, int):
        return device, None
    if device == "cpu":
        return -1, None
    if device == "cuda" or device.startswith("cuda:"):
        return int(device.partition(":")[2] or 0), None
    return None, device  # "auto", "mps", ...: let accelerate place it
