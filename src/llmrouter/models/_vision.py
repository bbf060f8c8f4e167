"""Image understanding with a local transformers pipeline (captioning, visual questions).

transformers 5 serves captioning and visual question answering through the
``image-text-to-text`` pipeline (BLIP, GIT, Florence-2, LLaVA, SmolVLM, Qwen-VL,
...); transformers 4 through ``image-to-text``. The adapter picks the one the
installed version has. A processor with a chat template (chat VLMs) gets the
question and images as one chat turn; otherwise each image is captioned with
the message's text as the prompt (empty for plain captioning).
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any, ClassVar, cast

from langchain_core.messages import AIMessage, HumanMessage
from pydantic import Field

from llmrouter.models._common import generation_fields, local_pipeline_spec, recorded
from llmrouter.models._multimodal import (
    MediaChatModel,
    SharedModel,
    _one_media,
    device_kwargs,
    media_settings,
    pipeline_arguments,
    route_generation,
    shared_model,
    usage,
)
from llmrouter.multimodal._media import load_image

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from transformers import Pipeline

    from llmrouter.spec import ModelSpec

__all__ = ["ChatImageToTextPipeline", "image_to_text_pipeline"]


def _pipeline_task() -> str:
    import transformers

    major = int(transformers.__version__.split(".", 1)[0])
    return "image-text-to-text" if major >= 5 else "image-to-text"


def _pipeline_class(task: str) -> type[Pipeline]:
    """The transformers pipeline class that serves ``task``."""
    from transformers.pipelines import SUPPORTED_TASKS

    impl = cast(dict[str, Any], SUPPORTED_TASKS[task])["impl"]
    if isinstance(impl, str):  # transformers 5 names it: "package.module.Class"
        module, _, name = impl.rpartition(".")
        impl = getattr(importlib.import_module(module), name)
    return cast("type[Pipeline]", impl)


@functools.cache
def _direct_arguments() -> frozenset[str]:
    """What the installed version's pipeline call takes by name."""
    return pipeline_arguments(_pipeline_class(_pipeline_task()))


#: Arguments `_describe` passes itself.
_SET_BY_ADAPTER = frozenset({"images", "text", "prompt", "return_full_text"})


class ChatImageToTextPipeline(MediaChatModel):
    """A chat model over a local image-to-text pipeline: the answer is the caption.

    The last human message's images are read (base64, ``data:``/``file:`` URL,
    or fetched) and its text is the question or caption prompt. Several images
    give one caption per line. ``usage_metadata`` counts the text prompt and the
    answer with the model's tokenizer (image tokens are not counted).

    Examples:
        >>> import tempfile
        >>> from PIL import Image
        >>> from llmrouter.models._vision import ChatImageToTextPipeline
        >>> from llmrouter.testing import build_tiny_captioner
        >>> path = str(build_tiny_captioner(tempfile.mkdtemp()))
        >>> chat = ChatImageToTextPipeline(model_id=path, pipeline_kwargs={"max_new_tokens": 8})
        >>> reply = chat.invoke({"image": Image.new("RGB", (32, 32), "red")})
        >>> isinstance(reply.content, str)
        True
    """

    model_id: str
    """Hub repo id or local directory of the model (with its processor)."""
    device: int | str | None = None
    """``"cpu"``, ``"cuda:0"``, an index, or ``"auto"`` (a device map)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keywords for ``from_pretrained`` (e.g. ``{"dtype": "bfloat16"}``)."""
    pipeline_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Call defaults, e.g. ``{"max_new_tokens": 30}``; per-call keywords win
    (``max_tokens`` is read as ``max_new_tokens``)."""

    call_keywords_hint: ClassVar[str] = (
        "Call defaults are the transformers pipeline's arguments and GenerationConfig fields"
    )

    @classmethod
    def call_keywords(cls, model_id: str) -> frozenset[str] | None:
        """The pipeline's arguments (``max_new_tokens``, ``generate_kwargs``, ...),
        `GenerationConfig` fields (``num_beams``, ...) and ``max_tokens``."""
        names = _direct_arguments() | generation_fields() | {"max_tokens"}
        return names - _SET_BY_ADAPTER

    @property
    def modality(self) -> str:
        return "image_to_text"

    @property
    def model_label(self) -> str:
        return self.model_id

    def _load(self) -> SharedModel:
        task = _pipeline_task()

        def load() -> Any:
            from transformers import pipeline

            return cast(Any, pipeline)(  # overloaded on a Literal task name
                task,
                model=self.model_id,
                model_kwargs=dict(self.model_kwargs) or None,
                **device_kwargs(self.device),
            )

        settings = {"device": self.device, "model_kwargs": self.model_kwargs}
        return shared_model(task, self.model_id, settings, load)

    def answer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        images = [load_image(block) for block in _one_media(message, "image")]
        prompt = message.text.strip()
        defaults, call = media_settings(self.pipeline_kwargs, kwargs)
        shared = self._load()
        settings = route_generation({**defaults, **call}, _direct_arguments())
        with shared.lock:
            texts = _describe(shared.model, images, prompt, settings)
        text = "\n".join(texts)
        tokenizer = _tokenizer(shared.model)
        counted = usage(_count(tokenizer, prompt), _count(tokenizer, text))
        return AIMessage(
            content=text,
            usage_metadata=counted if tokenizer is not None else None,
            response_metadata={"images": len(images)},
        )


def _describe(
    pipe: Any, images: list[PILImage], prompt: str, settings: dict[str, Any]
) -> list[str]:
    """One answer per image (or one for all, with a chat template)."""
    if getattr(pipe, "task", "") == "image-to-text":  # transformers 4
        rows = pipe(images, prompt=prompt or None, **settings)
        return [_strip_prompt(_first_text(row), prompt) for row in rows]
    if _chat_template(pipe):
        content: list[dict[str, Any]] = [{"type": "image", "image": image} for image in images]
        content.append({"type": "text", "text": prompt or "Describe the image."})
        rows = pipe(text=[{"role": "user", "content": content}], return_full_text=False, **settings)
        return [_first_text(rows)]
    rows = pipe(images=images, text=[prompt] * len(images), return_full_text=False, **settings)
    return [_first_text(row).strip() for row in rows]


def _chat_template(pipe: Any) -> bool:
    """True if the pipeline's processor has a chat template (chat VLMs do, BLIP cannot)."""
    return bool(getattr(getattr(pipe, "processor", None), "chat_template", None))


def _first_text(row: Any) -> str:
    while isinstance(row, list):
        row = row[0]
    return str(row["generated_text"]) if isinstance(row, dict) else str(row)


def _strip_prompt(text: str, prompt: str) -> str:
    return text[len(prompt) :].strip() if prompt and text.startswith(prompt) else text.strip()


def _tokenizer(pipe: Any) -> Any:
    return getattr(pipe, "tokenizer", None) or getattr(
        getattr(pipe, "processor", None), "tokenizer", None
    )


def _count(tokenizer: Any, text: str) -> int:
    if tokenizer is None or not text:
        return 0
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@recorded
def image_to_text_pipeline(
    model_id_or_path: str,
    *,
    name: str | None = None,
    device: int | str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A `ModelSpec` (modality ``image_to_text``) for a local captioning / VQA model.

    Loaded lazily on first use and shared. `ModelSpec` fields (``tasks``,
    prices, ``tags``, ...) go to the spec; ``callbacks`` and the like to
    `ChatImageToTextPipeline`; any other keyword is a pipeline call default: an
    argument of the installed transformers pipeline (``max_new_tokens``,
    ``generate_kwargs``, ...) or a ``GenerationConfig`` field (``num_beams``, ...,
    passed in ``generate_kwargs``). Other pipeline arguments go in
    ``pipeline_kwargs={...}``, ``from_pretrained`` keywords in ``model_kwargs``.

    Raises:
        ConfigurationError: an unknown keyword (the message names the closest
            valid one).

    Examples:
        >>> from llmrouter.models._vision import image_to_text_pipeline
        >>> spec = image_to_text_pipeline("Salesforce/blip-image-captioning-base",
        ...                               max_new_tokens=20)
        >>> spec.name, spec.modality, spec.chat_model.pipeline_kwargs
        ('blip-image-captioning-base', 'image_to_text', {'max_new_tokens': 20})
    """
    return local_pipeline_spec(
        ChatImageToTextPipeline,
        model_id_or_path,
        factory="image_to_text_pipeline",
        modality="image_to_text",
        name=name,
        device=device,
        model_kwargs=model_kwargs,
        kwargs=kwargs,
    )
