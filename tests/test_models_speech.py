"""llmrouter.models._speech over a tiny random Whisper through the real transformers pipeline."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from _fixtures.tiny_multimodal import wav_bytes
from langchain_core.messages import HumanMessage

from llmrouter import ConfigurationError, ModelSpec
from llmrouter.errors import ModalityError
from llmrouter.models._speech import ChatSpeechToTextPipeline, speech_to_text_pipeline
from llmrouter.multimodal._detect import media_block

WAV = wav_bytes(0.5, 22050)  # resampled to the model's 16 kHz on the way in


@pytest.fixture(scope="module")
def spec(tiny_speech_dir: Path) -> ModelSpec:
    return speech_to_text_pipeline(str(tiny_speech_dir), name="asr")


def test_factory_splits_keywords(tiny_speech_dir: Path) -> None:
    spec = speech_to_text_pipeline(
        str(tiny_speech_dir), output_cost=1.0, chunk_length_s=2, generate_kwargs={"num_beams": 1}
    )
    assert (spec.name, spec.modality, spec.output_cost) == ("tiny-whisper", "speech_to_text", 1.0)
    model = spec.chat_model
    assert isinstance(model, ChatSpeechToTextPipeline)
    assert model.pipeline_kwargs == {"chunk_length_s": 2, "generate_kwargs": {"num_beams": 1}}


def test_factory_rejects_misspelled_keywords(tiny_speech_dir: Path) -> None:
    path = str(tiny_speech_dir)
    with pytest.raises(ConfigurationError, match=r"'chunk_lenght_s' .*'chunk_length_s'"):
        speech_to_text_pipeline(path, chunk_lenght_s=30)
    with pytest.raises(ConfigurationError, match=r"'languge' .*did you mean 'language'"):
        speech_to_text_pipeline(path, languge="en")
    spec = speech_to_text_pipeline(path, language="en", num_beams=1, return_timestamps=True)
    model = spec.chat_model
    assert isinstance(model, ChatSpeechToTextPipeline)
    assert model.pipeline_kwargs == {"language": "en", "num_beams": 1, "return_timestamps": True}


def test_generation_settings_go_to_generate_kwargs() -> None:
    model = ChatSpeechToTextPipeline(
        model_id="unused",
        pipeline_kwargs={"language": "en", "num_beams": 2, "generate_kwargs": {"task": "x"}},
    )
    seq2seq, ctc = SimpleNamespace(type="seq2seq"), SimpleNamespace(type="ctc")
    call = {"max_tokens": 5, "temperature": 0.3, "chunk_length_s": 4, "num_beams": 1}
    assert model._settings(seq2seq, dict(call)) == {
        "chunk_length_s": 4,
        "generate_kwargs": {"task": "x", "language": "en", "num_beams": 1, "max_new_tokens": 5},
    }
    assert model._settings(ctc, dict(call)) == {"chunk_length_s": 4}


def test_transcribe_wav(spec: ModelSpec) -> None:
    reply = spec.chat_model.invoke({"audio": WAV})
    assert isinstance(reply.content, str)
    metadata = reply.response_metadata
    assert (metadata["modality"], metadata["audio_seconds"]) == ("speech_to_text", 0.5)
    assert metadata["model_name"] == spec.chat_model.model_id  # type: ignore[attr-defined]
    usage = reply.usage_metadata
    assert usage is not None and usage["input_tokens"] == 0 and 0 < usage["output_tokens"] <= 8


def test_flac_and_arrays_decode(spec: ModelSpec) -> None:
    tone = np.sin(np.arange(12000) / 3).astype(np.float32)
    flac = io.BytesIO()
    soundfile.write(flac, tone, 24000, format="FLAC")
    reply = spec.chat_model.invoke(flac.getvalue())
    assert reply.response_metadata["audio_seconds"] == 0.5
    reply = spec.chat_model.invoke({"audio": {"array": tone, "sampling_rate": 16000}})
    assert reply.response_metadata["audio_seconds"] == 0.75


def test_max_tokens_per_call_goes_to_generate(spec: ModelSpec) -> None:
    reply = spec.chat_model.invoke({"audio": WAV}, max_tokens=2, temperature=0.7)
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] <= 2


def test_several_clips_one_transcript_per_line(spec: ModelSpec, tmp_path: Path) -> None:
    path = tmp_path / "meeting.wav"
    path.write_bytes(WAV)
    message = HumanMessage(content=[media_block(WAV), media_block(str(path))])
    reply = spec.chat_model.invoke([message])
    assert len(str(reply.content).split("\n")) == 2
    assert reply.response_metadata["audio_seconds"] == 1.0


async def test_async(spec: ModelSpec) -> None:
    reply = await spec.chat_model.ainvoke({"audio": WAV})
    assert reply.response_metadata["audio_seconds"] == 0.5


def test_no_audio_is_a_clear_error(spec: ModelSpec) -> None:
    with pytest.raises(ModalityError, match="needs audio input"):
        spec.chat_model.invoke("hello")
