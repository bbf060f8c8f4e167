"""Speech to text with a local transformers ``automatic-speech-recognition`` pipeline.

Whisper, wav2vec2, HuBERT, ... Audio is decoded and resampled here (soundfile,
or the standard library for 16-bit WAV) and handed to the pipeline as samples,
so neither ffmpeg nor torchaudio is needed.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar

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
from llmrouter.multimodal._media import load_audio

if TYPE_CHECKING:
    from llmrouter.spec import ModelSpec

__all__ = ["ChatSpeechToTextPipeline", "speech_to_text_pipeline"]

#: Keywords that belong in ``generate_kwargs`` (sequence-to-sequence models), besides
#: the ``GenerationConfig`` fields: Whisper's ``generate`` arguments.
_GENERATE_KEYWORDS = frozenset({"language", "task"})


@functools.cache
def _direct_arguments() -> frozenset[str]:
    """What an ``automatic-speech-recognition`` pipeline call takes by name."""
    from transformers import AutomaticSpeechRecognitionPipeline

    return pipeline_arguments(AutomaticSpeechRecognitionPipeline)


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

    call_keywords_hint: ClassVar[str] = (
        "Call defaults are AutomaticSpeechRecognitionPipeline arguments, GenerationConfig "
        "fields, language and task; put other generate() arguments in generate_kwargs={...}"
    )

    @classmethod
    def call_keywords(cls, model_id: str) -> frozenset[str] | None:
        """The pipeline's arguments (``chunk_length_s``, ``return_timestamps``,
        ``generate_kwargs``, ...), `GenerationConfig` fields, ``language``, ``task``
        and ``max_tokens``."""
        return _direct_arguments() | generation_fields() | _GENERATE_KEYWORDS | {"max_tokens"}

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
        defaults, call = media_settings(self.pipeline_kwargs, kwargs)
        direct = _direct_arguments()
        settings = route_generation(defaults, direct, _GENERATE_KEYWORDS)
        routed = route_generation(call, direct, _GENERATE_KEYWORDS)
        generate = {
            **(settings.pop("generate_kwargs", None) or {}),
            **(routed.pop("generate_kwargs", None) or {}),
        }
        settings.update(routed)
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


@recorded
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
    is a pipeline call default: a pipeline argument (``chunk_length_s``,
    ``return_timestamps``, ``generate_kwargs``, ...), or a ``GenerationConfig``
    field, ``language`` or ``task`` (passed in ``generate_kwargs``). Other
    pipeline arguments go in ``pipeline_kwargs={...}``, ``from_pretrained``
    keywords in ``model_kwargs``.

    Raises:
        ConfigurationError: an unknown keyword (the message names the closest
            valid one).

    Examples:
        >>> from llmrouter.models._speech import speech_to_text_pipeline
        >>> spec = speech_to_text_pipeline("openai/whisper-tiny", chunk_length_s=30)
        >>> spec.name, spec.modality, spec.chat_model.pipeline_kwargs
        ('whisper-tiny', 'speech_to_text', {'chunk_length_s': 30})
    """
    return local_pipeline_spec(
        ChatSpeechToTextPipeline,
        model_id_or_path,
        factory="speech_to_text_pipeline",
        modality="speech_to_text",
        name=name,
        device=device,
        model_kwargs=model_kwargs,
        kwargs=kwargs,
    )
