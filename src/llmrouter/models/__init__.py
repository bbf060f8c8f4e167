"""Factories that return `ModelSpec`s for local and remote backends.

Every factory takes the `ModelSpec` fields as keywords (``name``, ``tasks``,
``input_cost``, ``output_cost``, ``context_window``, ``quality``, ``tags``, ...)
and passes any other keyword to the underlying LangChain class. Backends are
imported only when a factory is called, so ``import llmrouter`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrouter.spec import ModelSpec


def huggingface_pipeline(model_id_or_path: str, **kwargs: Any) -> ModelSpec:
    """A local transformers pipeline, loaded lazily on first use and shared.

    See `llmrouter.models.huggingface.huggingface_pipeline`.
    """
    from llmrouter.models.huggingface import huggingface_pipeline as factory

    return factory(model_id_or_path, **kwargs)


def openai_compatible(model: str, base_url: str | None = None, **kwargs: Any) -> ModelSpec:
    """An OpenAI-compatible server (vLLM, TGI, llama.cpp, Ollama, OpenAI).

    See `llmrouter.models.openai.openai_compatible`.
    """
    from llmrouter.models.openai import openai_compatible as factory

    return factory(model, base_url, **kwargs)


def huggingface_endpoint(endpoint_url_or_repo_id: str, **kwargs: Any) -> ModelSpec:
    """A Hugging Face inference endpoint or TGI server.

    See `llmrouter.models.endpoint.huggingface_endpoint`.
    """
    from llmrouter.models.endpoint import huggingface_endpoint as factory

    return factory(endpoint_url_or_repo_id, **kwargs)


__all__ = ["huggingface_endpoint", "huggingface_pipeline", "openai_compatible"]
