"""Speech to text with a local transformers ``automatic-speech-recognition`` pipeline.

Whisper, wav2vec2, HuBERT, ... Audio is decoded and resampled here (soundfile,
or the standard library for 16-bit WAV) and handed to the pipeline as samples,
so neither ffmpeg nor torchaudio is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, HumanMessage
from pydantic import Field

from llmrouter.models._common import local_pipeline_spec
from llmrouter.models._multimodal import (
    CHAT_ONLY_KEYWORDS,
    MediaChatModel,
    SharedModel,
    _one_media,
    device_kwargs,
    shared_model,
    usage,
)
from llmrouter.multimodal._media import load_audio

if TYPE_CHECKING:
    from llmrouter.spec import ModelSpec

__all__ = ["ChatSpeechToTextPipeline", "speech_to_text_pipeline"]

#: Per-call keywords that belong in ``generate_kwargs`` (sequence-to-sequence models).
_GENERATE_KEYWORDS = ("max_new_tokens", "language", "task", "num_beams")


class ChatSpeechToTextPipeline(MediaChatModel):
    """A chat model over a local speech recognition pipeline: the answer is the transcript.

    Each audio block of the last human message is transcribed (several give one
    transcript per line). ``response_metadata`` has ``audio_seconds`` and, with
    ``return_timestamps=True``, the pipeline's ``chunks``; ``usage_metadata``
    counts the transcript's tokens as output.

    Examples:
        >>> import tempfile
        >>> import numpy as np
        >>> from llmrouter.models._speech import ChatSpeechToTextPipeline
        >>> from llmrouter.testing import build_tiny_speech_recognizer
        >>> path = str(build_tiny_speech_recognizer(tempfile.mkdtemp()))
        >>> chat = ChatSpeechToTextPipeline(model_id=path)
        >>> tone = np.sin(np.arange(8000) * 0.1).astype("float32")  # 0.5 s at 16 kHz
        >>> reply = chat.invoke({"audio": (tone, 16000)})
        >>> reply.response_metadata["audio_seconds"]
        0.5
    """

    model_id: str
    """Hub repo id or local directory of the model (with its feature extractor)."""
    device: int | str | None = None
    """``"cpu"``, ``"cuda:0"``, an index, or ``"auto"`` (a device map)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keywords for ``from_pretrained``."""
    pipeline_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Call defaults, e.g. ``{"chunk_length_s": 30, "return_timestamps": True,
    "generate_kwargs": {"language": "en"}}``; per-call keywords win (``language``,
    ``task``, ``max_new_tokens``/``max_tokens`` go into ``generate_kwargs``)."""

    @property
    def modality(self) -> str:
        return "speech_to_text"

    @property
    def model_label(self) -> str:
        return self.model_id

    def _load(self) -> SharedModel:
        def load() -> Any:
            from transformers import pipeline

            return pipeline(
                "automatic-speech-recognition",
                model=self.model_id,
                model_kwargs=dict(self.model_kwargs) or None,
                **device_kwargs(self.device),
            )

        settings = {"device": self.device, "model_kwargs": self.model_kwargs}
        return shared_model("automatic-speech-recognition", self.model_id, settings, load)

    def _settings(self, pipe: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        settings = {**self.pipeline_kwargs}
        generate = dict(settings.pop("generate_kwargs", None) or {})
        generate.update(kwargs.pop("generate_kwargs", None) or {})
        if "max_tokens" in kwargs:
            kwargs.setdefault("max_new_tokens", kwargs.pop("max_tokens"))
        for key in _GENERATE_KEYWORDS:
            if key in kwargs:
                generate[key] = kwargs.pop(key)
        settings.update({k: v for k, v in kwargs.items() if k not in CHAT_ONLY_KEYWORDS})
        if generate and getattr(pipe, "type", "") != "ctc":  # CTC models do not generate
            settings["generate_kwargs"] = generate
        return settings

    def answer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        blocks = _one_media(message, "audio")
        shared = self._load()
        pipe = shared.model
        rate = int(pipe.feature_extractor.sampling_rate)
        clips = [load_audio(block, rate) for block in blocks]
        settings = self._settings(pipe, dict(kwargs))
        with shared.lock:
            rows = [pipe({"raw": clip, "sampling_rate": rate}, **settings) for clip in clips]
        text = "\n".join(str(row["text"]).strip() for row in rows)
        metadata: dict[str, Any] = {
            "audio_seconds": round(sum(len(clip) for clip in clips) / rate, 3)
        }
        chunks = [chunk for row in rows for chunk in row.get("chunks", ())]
        if chunks:
            metadata["chunks"] = chunks
        tokenizer = getattr(pipe, "tokenizer", None)
        counted = None
        if tokenizer is not None:
            counted = usage(0, len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        return AIMessage(content=text, usage_metadata=counted, response_metadata=metadata)


def speech_to_text_pipeline(
    model_id_or_path: str,
    *,
    name: str | None = None,
    device: int | str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A `ModelSpec` (modality ``speech_to_text``) for a local speech recognition model.

    Loaded lazily on first use and shared. `ModelSpec` fields go to the spec;
    ``callbacks`` and the like to `ChatSpeechToTextPipeline`; any other keyword
    (``chunk_length_s``, ``return_timestamps``, ``generate_kwargs``, ...) is a
    pipeline call default.

    Examples:
        >>> from llmrouter.models._speech import speech_to_text_pipeline
        >>> spec = speech_to_text_pipeline("openai/whisper-tiny", chunk_length_s=30)
        >>> spec.name, spec.modality, spec.chat_model.pipeline_kwargs
        ('whisper-tiny', 'speech_to_text', {'chunk_length_s': 30})
    """
    return local_pipeline_spec(
        ChatSpeechToTextPipeline,
        model_id_or_path,
        modality="speech_to_text",
        name=name,
        device=device,
        model_kwargs=model_kwargs,
        kwargs=kwargs,
    )
