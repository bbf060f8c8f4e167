"""Factories that return `ModelSpec`s for local and remote backends.

Every factory takes the `ModelSpec` fields as keywords (``name``, ``tasks``,
``input_cost``, ``output_cost``, ``context_window``, ``quality``, ``tags``, ...)
and passes any other keyword to the underlying LangChain class. Each factory's
backend is imported on first use of that factory, so ``import llmrouter``
stays light.

Local models load once per process into one registry: `loaded_models` lists
them with their size, `set_memory_budget` caps memory or count (least recently
used idle models unload, and load again on next use), `unload_models` frees them.
`ModelLock` / `verify_model` check local files against ``llmrouter.lock``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy table below resolves to, for type checkers and docs
    from llmrouter.models._diffusion import text_to_image_pipeline
    from llmrouter.models._endpoint import huggingface_endpoint
    from llmrouter.models._http import use_aiohttp
    from llmrouter.models._hub import verify_model
    from llmrouter.models._huggingface import huggingface_pipeline
    from llmrouter.models._images import openai_images
    from llmrouter.models._lock import ModelLock
    from llmrouter.models._multimodal import embeddings_model, huggingface_inference
    from llmrouter.models._openai import openai_compatible
    from llmrouter.models._registry import (
        LoadedModel,
        loaded_models,
        set_memory_budget,
        unload_models,
    )
    from llmrouter.models._speech import speech_to_text_pipeline
    from llmrouter.models._vision import image_to_text_pipeline

_FACTORIES: dict[str, str] = {
    "huggingface_pipeline": "_huggingface",
    "openai_compatible": "_openai",
    "huggingface_endpoint": "_endpoint",
    "image_to_text_pipeline": "_vision",
    "speech_to_text_pipeline": "_speech",
    "text_to_image_pipeline": "_diffusion",
    "openai_images": "_images",
    "huggingface_inference": "_multimodal",
    "embeddings_model": "_multimodal",
}
_HELPERS: dict[str, str] = {
    "LoadedModel": "_registry",
    "loaded_models": "_registry",
    "set_memory_budget": "_registry",
    "unload_models": "_registry",
    "ModelLock": "_lock",
    "verify_model": "_hub",
    "use_aiohttp": "_http",
}

__all__ = [
    "LoadedModel",
    "ModelLock",
    "embeddings_model",
    "huggingface_endpoint",
    "huggingface_inference",
    "huggingface_pipeline",
    "image_to_text_pipeline",
    "loaded_models",
    "openai_compatible",
    "openai_images",
    "set_memory_budget",
    "speech_to_text_pipeline",
    "text_to_image_pipeline",
    "unload_models",
    "use_aiohttp",
    "verify_model",
]


def __getattr__(name: str) -> Any:
    module = _FACTORIES.get(name) or _HELPERS.get(name)
    if module is None:
        raise AttributeError(
            f"llmrouter.models has no factory {name!r}; the factories are {sorted(_FACTORIES)}"
        )
    factory = getattr(importlib.import_module(f"llmrouter.models.{module}"), name)
    globals()[name] = factory  # resolved once
    return factory


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
