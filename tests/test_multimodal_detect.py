"""llmrouter.multimodal._detect: sniffing, input normalisation to content blocks, inspection."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from _fixtures.tiny_multimodal import png_bytes, wav_bytes
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.prompt_values import ChatPromptValue, StringPromptValue
from PIL import Image

from llmrouter.errors import InvalidRequestError, LLMRouterError, ModalityError
from llmrouter.multimodal._detect import (
    as_prompt_value,
    inspect_content,
    last_human,
    media_block,
    sniff_mime,
)
from llmrouter.multimodal._media import load_image, read_block

PNG = png_bytes(8, 6)
WAV = wav_bytes(0.1, 8000)


def only_message(value: object) -> HumanMessage:
    messages = as_prompt_value(value).to_messages()
    assert len(messages) == 1
    assert isinstance(messages[0], HumanMessage)
    return messages[0]


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0\0\x10JFIF", "image/jpeg"),
        (b"GIF89a....", "image/gif"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
        (WAV, "audio/wav"),
        (b"ID3\x04\0\0\0\0", "audio/mpeg"),
        (b"\xff\xfb\x90\x64", "audio/mpeg"),
        (b"fLaC\0\0\0\x22", "audio/flac"),
        (b"OggS\0\x02", "audio/ogg"),
        (b"\0\0\0\x20ftypM4A ", "audio/mp4"),
        (b"%PDF-1.7", "application/pdf"),
        (b"plain text", None),
        (b"\xff\xfe\x00t\x00", None),  # a UTF-16 byte order mark is no MP3 frame
    ],
)
def test_sniff_mime(head: bytes, mime: str | None) -> None:
    assert sniff_mime(head) == mime


def test_last_human_finds_the_last_user_message() -> None:
    messages = [HumanMessage("first"), SystemMessage("be brief"), HumanMessage("second")]
    assert last_human(messages) is messages[2]
    assert last_human([SystemMessage("be brief")]) is None


def test_strings_and_messages_pass_through() -> None:
    assert isinstance(as_prompt_value("hello"), StringPromptValue)
    value = as_prompt_value([SystemMessage("be brief"), HumanMessage("hi")])
    assert isinstance(value, ChatPromptValue)
    assert [m.type for m in value.to_messages()] == ["system", "human"]


def test_pil_image_becomes_png_block() -> None:
    block = only_message(Image.new("RGB", (5, 4), "blue")).content[0]
    assert isinstance(block, dict)
    assert (block["type"], block["mime_type"]) == ("image", "image/png")
    assert load_image(block).size == (5, 4)


def test_bytes_are_sniffed() -> None:
    image = only_message(PNG).content[0]
    audio = only_message(WAV).content[0]
    assert isinstance(image, dict) and isinstance(audio, dict)
    assert (image["type"], image["mime_type"]) == ("image", "image/png")
    assert (audio["type"], audio["mime_type"]) == ("audio", "audio/wav")
    assert base64.b64decode(image["base64"]) == PNG


def test_media_block_takes_the_callers_kind_and_guesses_urls() -> None:
    assert media_block("https://x/cat.png") == {"type": "image", "url": "https://x/cat.png"}
    with pytest.raises(ModalityError, match=r"pass it as \{'image': url\}"):
        media_block("https://x/clip")
    block = media_block(b"raw pixels", "image")  # unsniffable, but the caller says image
    assert (block["type"], block["mime_type"]) == ("image", "application/octet-stream")


def test_unknown_bytes_say_how_to_wrap_them() -> None:
    with pytest.raises(ModalityError, match=r"\{'image': data\} or \{'audio': data\}"):
        as_prompt_value(b"not a known format")


def test_dict_with_text_image_and_audio(tmp_path: Path) -> None:
    path = tmp_path / "meeting.wav"
    path.write_bytes(WAV)
    message = only_message({"text": "What is this?", "image": PNG, "audio": str(path)})
    kinds = [b["type"] for b in message.content if isinstance(b, dict)]
    assert kinds == ["text", "image", "audio"]
    assert message.text == "What is this?"
    found = inspect_content(message)
    assert found.describe() == "text, 1 image, 1 audio"


def test_images_list_and_urls() -> None:
    message = only_message({"images": [PNG, "https://example.com/cat.jpg"], "prompt": "compare"})
    found = inspect_content(message)
    assert len(found.images) == 2
    assert found.images[1]["url"] == "https://example.com/cat.jpg"


def test_path_objects_and_path_blocks(tmp_path: Path) -> None:
    path = tmp_path / "picture.png"
    path.write_bytes(PNG)
    assert inspect_content(only_message(path)).describe() == "1 image"
    block_message = HumanMessage(content=[{"type": "image", "path": str(path)}])
    resolved = only_message([block_message])
    block = resolved.content[0]
    assert isinstance(block, dict) and "path" not in block
    assert read_block(block) == PNG


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="audio file not found"):
        as_prompt_value({"audio": str(tmp_path / "nope.wav")})


def test_unknown_dict_keys_and_types() -> None:
    with pytest.raises(ModalityError, match=r"unknown input keys \['video'\]"):
        as_prompt_value({"video": "clip.mp4"})
    with pytest.raises(ModalityError, match="cannot route a int"):
        as_prompt_value(42)
    assert issubclass(ModalityError, InvalidRequestError)
    assert issubclass(ModalityError, LLMRouterError)
    assert issubclass(ModalityError, ValueError)


def test_message_dict_and_single_block() -> None:
    message = only_message({"role": "user", "content": "hi"})
    assert message.text == "hi"
    block = {"type": "image", "base64": base64.b64encode(PNG).decode(), "mime_type": "image/png"}
    assert inspect_content(only_message(block)).describe() == "1 image"


def test_inspect_reads_provider_formats() -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "  "},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "file", "url": "https://x/report.pdf", "mime_type": "application/pdf"},
            {"type": "video", "url": "https://x/clip.mp4"},
        ]
    )
    found = inspect_content(message)
    assert not found.text  # blank text does not count
    assert (len(found.images), len(found.audio)) == (1, 1)
    assert found.other == ["file (application/pdf)", "video"]
    assert read_block(found.images[0]) == b"\x89PNG\r\n\x1a\n"
