"""Tiny offline models for tests (interim: the builders move here from the backends)."""

from llmrouter.models._diffusion import build_tiny_text_to_image
from llmrouter.models._speech import build_tiny_speech_recognizer
from llmrouter.models._vision import build_tiny_captioner
from llmrouter.tiny import build_tiny_chat_model

__all__ = [
    "build_tiny_captioner",
    "build_tiny_chat_model",
    "build_tiny_speech_recognizer",
    "build_tiny_text_to_image",
]
