"""llmrouter.multimodal._media: reading and decoding media blocks, image and embedding answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _fixtures.tiny_multimodal import wav_bytes
from langchain_core.messages import AIMessage, HumanMessage
from PIL import Image

from llmrouter.errors import ModalityError
from llmrouter.multimodal._detect import as_prompt_value, media_block
from llmrouter.multimodal._media import (
    embedding_of,
    image_block,
    images_of,
    load_audio,
    read_block,
)

WAV = wav_bytes(0.1, 8000)


def test_audio_arrays_are_encoded_as_wav() -> None:
    tone = np.sin(np.arange(1600) / 5).astype(np.float32)
    for value in ((tone, 16000), {"array": tone, "sampling_rate": 16000}):
        (message,) = as_prompt_value({"audio": value}).to_messages()
        block = message.content[0]
        assert isinstance(block, dict)
        assert block["mime_type"] == "audio/wav"
        decoded = load_audio(block, 16000)
        assert decoded.shape == (1600,)
        assert np.abs(decoded - tone).max() < 1e-3


def test_load_audio_resamples_to_the_model_rate() -> None:
    block = media_block(WAV)
    assert load_audio(block, 16000).shape == (1600,)  # 0.1 s at 8 kHz, read at 16 kHz


def test_output_helpers() -> None:
    block = image_block(Image.new("RGB", (3, 3)))
    message = AIMessage(content=[block])
    assert images_of(message)[0].startswith(b"\x89PNG")
    assert embedding_of(AIMessage(content="[1, 2.5]")) == [1.0, 2.5]
    with pytest.raises(ModalityError, match="task='embeddings'"):
        embedding_of(AIMessage(content="not a vector"))


def test_read_block_reads_data_and_file_urls(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    path.write_bytes(WAV)
    assert read_block({"type": "audio", "url": path.as_uri()}) == WAV
    assert read_block({"type": "image", "url": "data:text/plain,a%20b"}) == b"a b"
    assert read_block({"type": "image", "url": "data:image/png;base64,iVBORw0KGgo="}) == (
        b"\x89PNG\r\n\x1a\n"
    )


def test_read_block_says_what_it_cannot_read() -> None:
    with pytest.raises(ModalityError, match="give base64 data or a URL"):
        read_block({"type": "image", "file_id": "file-123"})


def test_images_of_skips_images_given_by_url() -> None:
    message = HumanMessage(
        content=[image_block(b"\x89PNG\r\n\x1a\n"), {"type": "image", "url": "https://x/a.png"}]
    )
    assert images_of(message) == [b"\x89PNG\r\n\x1a\n"]
    assert image_block(b"\x89PNG\r\n\x1a\n")["mime_type"] == "image/png"


def test_embedding_of_wants_a_list_of_numbers() -> None:
    with pytest.raises(ModalityError, match="holds no embedding"):
        embedding_of(AIMessage(content='["a", "b"]'))
