"""Factories that return `ModelSpec`s for local and remote backends.

Every factory takes the `ModelSpec` fields as keywords (``name``, ``tasks``,
``input_cost``, ``output_cost``, ``context_window``, ``quality``, ``tags``, ...)
and passes any other keyword to the underlying LangChain class. Backends are
imported only when a factory is called, so ``import llmrouter`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from llmrouter.spec import ModelSpec


def huggingface_pipeline(model_id_or_path: str, **kwargs: Any) -> ModelSpec:
    """A local transformers pipeline, loaded lazily on first use and shared.

    See `llmrouter.models._huggingface.huggingface_pipeline`.
    """
    from llmrouter.models._huggingface import huggingface_pipeline as factory

    return factory(model_id_or_path, **kwargs)


def openai_compatible(model: str, base_url: str | None = None, **kwargs: Any) -> ModelSpec:
    """An OpenAI-compatible server (vLLM, TGI, llama.cpp, Ollama, OpenAI).

    See `llmrouter.models._openai.openai_compatible`.
    """
    from llmrouter.models._openai import openai_compatible as factory

    return factory(model, base_url, **kwargs)


def huggingface_endpoint(endpoint_url_or_repo_id: str, **kwargs: Any) -> ModelSpec:
    """A Hugging Face inference endpoint or TGI server.

    See `llmrouter.models._endpoint.huggingface_endpoint`.
    """
    from llmrouter.models._endpoint import huggingface_endpoint as factory

    return factory(endpoint_url_or_repo_id, **kwargs)


def image_to_text_pipeline(model_id_or_path: str, **kwargs: Any) -> ModelSpec:
    """A local captioning / visual question answering model (modality ``image_to_text``).

    See `llmrouter.models._vision.image_to_text_pipeline`.
    """
    from llmrouter.models._vision import image_to_text_pipeline as factory

    return factory(model_id_or_path, **kwargs)


def speech_to_text_pipeline(model_id_or_path: str, **kwargs: Any) -> ModelSpec:
    """A local speech recognizer (modality ``speech_to_text``).

    See `llmrouter.models._speech.speech_to_text_pipeline`.
    """
    from llmrouter.models._speech import speech_to_text_pipeline as factory

    return factory(model_id_or_path, **kwargs)


def text_to_image_pipeline(model_id_or_path: str, **kwargs: Any) -> ModelSpec:
    """A local diffusers pipeline (modality ``image_generation``; extra ``image``).

    See `llmrouter.models._diffusion.text_to_image_pipeline`.
    """
    from llmrouter.models._diffusion import text_to_image_pipeline as factory

    return factory(model_id_or_path, **kwargs)


def openai_images(model: str, base_url: str | None = None, **kwargs: Any) -> ModelSpec:
    """An OpenAI-compatible images API. See `llmrouter.models._images.openai_images`."""
    from llmrouter.models._images import openai_images as factory

    return factory(model, base_url, **kwargs)


def huggingface_inference(
    endpoint_url_or_repo_id: str,
    task: Literal["image_generation", "image_to_text", "speech_to_text"],
    **kwargs: Any,
) -> ModelSpec:
    """A Hugging Face endpoint or provider for a media task.

    See `llmrouter.models._multimodal.huggingface_inference`.
    """
    from llmrouter.models._multimodal import huggingface_inference as factory

    return factory(endpoint_url_or_repo_id, task, **kwargs)


def embeddings_model(
    embeddings: Embeddings | Callable[[], Embeddings] | None = None, **kwargs: Any
) -> ModelSpec:
    """A LangChain `Embeddings` as a routable model (default: MiniLM).

    See `llmrouter.models._multimodal.embeddings_model`.
    """
    from llmrouter.models._multimodal import embeddings_model as factory

    return factory(embeddings, **kwargs)


__all__ = [
    "embeddings_model",
    "huggingface_endpoint",
    "huggingface_inference",
    "huggingface_pipeline",
    "image_to_text_pipeline",
    "openai_compatible",
    "openai_images",
    "speech_to_text_pipeline",
    "text_to_image_pipeline",
]
