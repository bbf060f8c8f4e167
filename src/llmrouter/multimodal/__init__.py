"""Routing by modality: `MultiModalRouter` and the content helpers it is built on."""

from llmrouter.multimodal._detect import as_prompt_value, inspect_content, media_block, sniff_mime
from llmrouter.multimodal._media import (
    embedding_of,
    image_block,
    images_of,
    load_audio,
    load_image,
    read_block,
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
