"""Routing by modality: `MultiModalRouter` and the content helpers it is built on."""

from llmrouter.multimodal._content import (
    as_prompt_value,
    embedding_of,
    image_block,
    images_of,
    inspect_content,
    load_audio,
    load_image,
    media_block,
    read_block,
    sniff_mime,
)
from llmrouter.multimodal._router import ROUTES, MultiModalRouter

__all__ = [
    "ROUTES",
    "MultiModalRouter",
    "as_prompt_value",
    "embedding_of",
    "image_block",
    "images_of",
    "inspect_content",
    "load_audio",
    "load_image",
    "media_block",
    "read_block",
    "sniff_mime",
]
