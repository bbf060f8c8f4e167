"""Text to image with a local diffusers pipeline (extra ``llmrouter[image]``).

Any pipeline ``diffusers.AutoPipelineForText2Image`` loads: Stable Diffusion
1.x/2.x/XL, SD3, FLUX, PixArt, Kandinsky, ... The answer carries each image as
a base64 PNG image block.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.messages import AIMessage, HumanMessage
from pydantic import Field

from llmrouter.errors import ConfigurationError
from llmrouter.models._common import local_pipeline_spec, recorded
from llmrouter.models._multimodal import (
    CHAT_ONLY_KEYWORDS,
    MediaChatModel,
    SharedModel,
    shared_model,
    text_only,
    usage,
)
from llmrouter.multimodal._media import image_block

if TYPE_CHECKING:
    from llmrouter.spec import ModelSpec

__all__ = ["ChatTextToImagePipeline", "text_to_image_pipeline"]


#: The text-to-image pipelines whose call arguments a factory accepts, besides the
#: class a local model's ``model_index.json`` names.
_COMMON_PIPELINES = (
    "StableDiffusionPipeline",
    "StableDiffusionXLPipeline",
    "StableDiffusion3Pipeline",
    "FluxPipeline",
    "PixArtAlphaPipeline",
    "PixArtSigmaPipeline",
    "SanaPipeline",
)
#: What `ChatTextToImagePipeline._settings` reads itself (``n``, ``size``, ``seed``).
_ADAPTER_KEYWORDS = frozenset({"n", "size", "seed"})
#: Call arguments the adapter sets itself, or whose answer it cannot read.
_SET_BY_ADAPTER = frozenset({"self", "prompt", "output_type", "return_dict", "kwargs"})


@functools.cache
def _pipeline_arguments(class_names: tuple[str, ...]) -> frozenset[str]:
    """The ``__call__`` arguments of the diffusers pipelines ``class_names``.

    Raises:
        ImportError: diffusers is not installed (not cached: it may be later).
    """
    import diffusers

    names: set[str] = set()
    for class_name in class_names:
        pipeline = getattr(diffusers, class_name, None)
        if isinstance(pipeline, type):
            names |= set(inspect.signature(pipeline.__call__).parameters)
    return frozenset(names - _SET_BY_ADAPTER - CHAT_ONLY_KEYWORDS)


def _local_class(model_id: str) -> str | None:
    """The pipeline class a local model's ``model_index.json`` names, if any."""
    try:
        index = json.loads((Path(model_id) / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) else None


class ChatTextToImagePipeline(MediaChatModel):
    """A chat model over a local diffusers text-to-image pipeline.

    The last human message's text is the prompt. The answer's content is one
    ``{"type": "image", "base64": <PNG>, "mime_type": "image/png"}`` block per
    image; ``response_metadata`` has ``images`` (count), ``size`` (``[w, h]``)
    and ``seed``; ``usage_metadata.input_tokens`` counts the prompt with the
    pipeline's tokenizer.

    Per-call keywords: ``n`` (images), ``size`` (``"512x512"``), ``seed``, and
    any pipeline argument (``num_inference_steps``, ``guidance_scale``,
    ``negative_prompt``, ``height``, ``width``, ...).

    Examples:
        >>> import tempfile
        >>> from llmrouter.multimodal._media import images_of
        >>> from llmrouter.models._diffusion import ChatTextToImagePipeline
        >>> from llmrouter.testing import build_tiny_text_to_image
        >>> path = str(build_tiny_text_to_image(tempfile.mkdtemp()))
        >>> chat = ChatTextToImagePipeline(model_id=path, seed=0,
        ...                                pipeline_kwargs={"num_inference_steps": 2})
        >>> reply = chat.invoke("a watercolor fox")
        >>> reply.content[0]["mime_type"], reply.response_metadata["size"]
        ('image/png', [32, 32])
        >>> images_of(reply)[0][:4]
        b'\\x89PNG'
    """

    model_id: str
    """Hub repo id or local directory of a diffusers pipeline."""
    device: str | None = None
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; ``None`` leaves it where it loads."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keywords for ``from_pretrained`` (e.g. ``{"torch_dtype": torch.float16}``)."""
    pipeline_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Call defaults, e.g. ``{"num_inference_steps": 25, "guidance_scale": 7.0}``."""
    seed: int | None = None
    """Seed of the generator for reproducible images; ``None``: random."""

    call_keywords_hint: ClassVar[str] = (
        "Call defaults are diffusers text-to-image pipeline arguments, n, size and seed"
    )

    @classmethod
    def call_keywords(cls, model_id: str) -> frozenset[str] | None:
        """The ``__call__`` arguments of common diffusers text-to-image pipelines and
        of the one a local ``model_id`` names, plus ``n``, ``size`` and ``seed``
        (``None`` without diffusers: loading will say what to install)."""
        local = _local_class(model_id)
        try:
            names = _pipeline_arguments((*_COMMON_PIPELINES, *([local] if local else [])))
        except ImportError:
            return None
        return names | _ADAPTER_KEYWORDS

    @property
    def modality(self) -> str:
        return "image_generation"

    @property
    def model_label(self) -> str:
        return self.model_id

    def _load(self) -> SharedModel:
        def load() -> Any:
            try:
                from diffusers import AutoPipelineForText2Image
            except ImportError as exc:
                raise ConfigurationError(
                    f"text_to_image_pipeline needs diffusers ({exc}): "
                    "pip install 'llmrouter[image]'"
                ) from exc
            pipe = AutoPipelineForText2Image.from_pretrained(  # type: ignore[no-untyped-call]
                self.model_id, **self.model_kwargs
            )
            if self.device is not None:
                pipe = pipe.to(self.device)
            pipe.set_progress_bar_config(disable=True)
            return pipe

        settings = {"device": self.device, "model_kwargs": self.model_kwargs}
        return shared_model("text-to-image", self.model_id, settings, load)

    def _settings(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        settings = {**self.pipeline_kwargs, **kwargs}
        seed = settings.pop("seed", self.seed)
        if "n" in settings:
            settings["num_images_per_prompt"] = settings.pop("n")
        size = settings.pop("size", None)
        if size is not None:
            width, _, height = str(size).partition("x")
            settings["width"], settings["height"] = int(width), int(height or width)
        return {k: v for k, v in settings.items() if k not in CHAT_ONLY_KEYWORDS}, seed

    def answer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        import torch

        prompt = text_only(message, "image generation")
        settings, seed = self._settings(dict(kwargs))
        shared = self._load()
        pipe = shared.model
        with shared.lock:
            if seed is not None:
                device = getattr(pipe, "device", "cpu")
                settings["generator"] = torch.Generator(device=device).manual_seed(int(seed))
            output = pipe(prompt, output_type="pil", **settings)
        images = list(output.images)
        metadata: dict[str, Any] = {
            "images": len(images),
            "size": list(images[0].size) if images else None,
            "seed": seed,
        }
        flagged = getattr(output, "nsfw_content_detected", None)
        if flagged:
            metadata["nsfw_content_detected"] = list(flagged)
        tokenizer = getattr(pipe, "tokenizer", None)
        counted = None
        if tokenizer is not None:
            counted = usage(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]), 0)
        return AIMessage(
            content=[image_block(image) for image in images],
            usage_metadata=counted,
            response_metadata=metadata,
        )


@recorded
def text_to_image_pipeline(
    model_id_or_path: str,
    *,
    name: str | None = None,
    device: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A `ModelSpec` (modality ``image_generation``) for a local diffusers pipeline.

    Needs the extra ``llmrouter[image]`` (diffusers). Loaded lazily on first use
    and shared. `ModelSpec` fields go to the spec; ``seed`` and ``callbacks`` to
    `ChatTextToImagePipeline`; any other keyword is a call default: ``n``,
    ``size`` or an argument of a diffusers text-to-image pipeline
    (``num_inference_steps``, ``guidance_scale``, ``height``, ``width``, ...: those
    of Stable Diffusion 1.x/2.x/XL/3, FLUX, PixArt, Sana, and of the class a local
    model's ``model_index.json`` names). Other arguments go in
    ``pipeline_kwargs={...}``, ``from_pretrained`` keywords in ``model_kwargs``.

    Raises:
        ConfigurationError: an unknown keyword (the message names the closest
            valid one).

    Examples:
        >>> from llmrouter.models._diffusion import text_to_image_pipeline
        >>> spec = text_to_image_pipeline("stabilityai/sd-turbo", num_inference_steps=1,
        ...                               guidance_scale=0.0, seed=7)
        >>> spec.name, spec.modality, spec.chat_model.seed
        ('sd-turbo', 'image_generation', 7)
    """
    return local_pipeline_spec(
        ChatTextToImagePipeline,
        model_id_or_path,
        factory="text_to_image_pipeline",
        modality="image_generation",
        name=name,
        device=device,
        model_kwargs=model_kwargs,
        kwargs=kwargs,
    )
