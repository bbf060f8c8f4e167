"""What a request carries: sniff media bytes, normalise inputs to content blocks, inspect messages.

Requests use LangChain's standard content blocks, so they flow through LCEL
and any chat model unchanged:

- ``{"type": "image", "base64": ..., "mime_type": "image/png"}`` (or ``"url"``)
- ``{"type": "audio", "base64": ..., "mime_type": "audio/wav"}`` (or ``"url"``)
- ``{"type": "text", "text": ...}``

`as_prompt_value` turns what a user naturally has -- a PIL image, raw bytes, a
path, ``{"audio": "meeting.wav"}``, ``{"image": img, "text": "What is this?"}``
-- into a human message with such blocks (`media_block` does one value; PIL
images become PNG and audio arrays 16-bit WAV). `sniff_mime` tells media bytes
apart by their magic bytes; `inspect_content` says what a message carries.
Reading the media back out of a block lives in `llmrouter.multimodal._media`.
PIL and numpy are imported only by the functions that need them.
"""

from __future__ import annotations

import base64
import io
import mimetypes
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import ChatPromptValue, PromptValue, StringPromptValue

from llmrouter.errors import ModalityError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "Found",
    "as_prompt_value",
    "data_url_bytes",
    "inspect_content",
    "last_human",
    "media_block",
    "png_bytes",
    "sniff_mime",
]

MediaKind = Literal["image", "audio"]

#: Keys of a plain dict input (``{"image": ..., "text": ...}``) and what they hold.
_DICT_KEYS = {
    "text": "text",
    "prompt": "text",
    "image": "image",
    "images": "image",
    "audio": "audio",
}

_SIGNATURES: list[tuple[bytes, int, str]] = [  # (magic, offset, mime type)
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"fLaC", 0, "audio/flac"),
    (b"OggS", 0, "audio/ogg"),
    (b"ID3", 0, "audio/mpeg"),
    (b"%PDF", 0, "application/pdf"),
]


# ----------------------------------------------------------------------- sniffing


def sniff_mime(data: bytes) -> str | None:
    """The mime type of ``data`` from its magic bytes, or ``None`` if unknown.

    Knows PNG, JPEG, GIF, BMP, WEBP, WAV, MP3, FLAC, OGG, M4A and PDF.

    Examples:
        >>> from llmrouter.multimodal._detect import sniff_mime
        >>> sniff_mime(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff_mime(b"RIFF\\0\\0\\0\\0WAVEfmt ")
        ('image/png', 'audio/wav')
        >>> sniff_mime(b"hello") is None
        True
    """
    head = bytes(data[:16])
    for magic, offset, mime in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"WEBP"):
        return "audio/wav" if head[8:12] == b"WAVE" else "image/webp"
    if head[4:8] == b"ftyp" and head[8:11] == b"M4A":
        return "audio/mp4"
    if _is_mp3_frame(head):
        return "audio/mpeg"
    return None


def _is_mp3_frame(head: bytes) -> bool:
    """An MPEG layer III frame header (an MP3 without ID3 tag): sync, layer, rates valid."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


def _kind_of_mime(mime: str | None) -> str | None:
    if not mime:
        return None
    major = mime.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else None


# ------------------------------------------------------------------- input blocks


def media_block(value: Any, kind: MediaKind | None = None) -> dict[str, Any]:
    """One image or audio value as a standard content block.

    ``value`` may be bytes, a PIL image, a `pathlib.Path` or path string, an
    ``http(s)://`` or ``data:`` URL, audio as ``(array, sampling_rate)`` or
    ``{"array": ..., "sampling_rate": ...}`` (the ``datasets`` format), or a
    content block already. Files are read into base64 (no network access: URLs
    stay URLs). ``kind`` is what the caller says it is; without it the kind is
    sniffed from the bytes.

    Raises:
        ModalityError: the value is none of the above, or its kind is unknown.
        FileNotFoundError: a path that does not exist.

    Examples:
        >>> from llmrouter.multimodal._detect import media_block
        >>> media_block(b"RIFF\\0\\0\\0\\0WAVEfmt ")["type"]
        'audio'
        >>> media_block("https://x/cat.png", "image")
        {'type': 'image', 'url': 'https://x/cat.png'}
    """
    if isinstance(value, Mapping):
        if "type" in value:
            return _resolve_path(dict(value))
        if "array" in value and "sampling_rate" in value:
            return _bytes_block(_wav_bytes(value["array"], int(value["sampling_rate"])), "audio")
        raise ModalityError(
            f"cannot read a {kind or 'media'} value from a dict with keys {sorted(value)}; "
            "give bytes, a path, a URL, a PIL image, or {'array': ..., 'sampling_rate': ...}"
        )
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return _bytes_block(_wav_bytes(value[0], value[1]), "audio")
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes_block(bytes(value), kind)
    if _is_pil_image(value):
        return _bytes_block(png_bytes(value), "image")
    if isinstance(value, str):
        if value.startswith(("http://", "https://")):
            if kind is None:
                kind = _kind_of_url(value)
            return {"type": kind, "url": value}
        if value.startswith("data:"):
            return _bytes_block(data_url_bytes(value), kind)
        return _path_block(Path(value), kind)
    if isinstance(value, os.PathLike):
        return _path_block(Path(os.fspath(value)), kind)
    raise ModalityError(
        f"cannot use a {type(value).__name__} as {kind or 'an image or audio'}: give bytes, "
        "a path, a URL, a PIL image or a content block"
    )


def _kind_of_url(url: str) -> MediaKind:
    kind = _kind_of_mime(mimetypes.guess_type(url.split("?", 1)[0])[0])
    if kind in ("image", "audio"):
        return kind  # type: ignore[return-value]
    raise ModalityError(
        f"cannot tell whether {url!r} is an image or audio from its name; "
        "pass it as {'image': url} or {'audio': url}"
    )


def _bytes_block(data: bytes, kind: MediaKind | None) -> dict[str, Any]:
    mime = sniff_mime(data)
    sniffed = _kind_of_mime(mime)
    if kind is None:
        if sniffed not in ("image", "audio"):
            raise ModalityError(
                f"cannot tell what these {len(data)} bytes are (not PNG, JPEG, GIF, BMP, WEBP, "
                "WAV, MP3, FLAC, OGG or M4A); pass them as {'image': data} or {'audio': data}",
                found=f"{len(data)} bytes of unknown type",
            )
        kind = sniffed  # type: ignore[assignment]
    if sniffed != kind:
        mime = None  # the caller knows better than a failed (or odd) sniff
    block: dict[str, Any] = {"type": kind, "base64": base64.b64encode(data).decode("ascii")}
    block["mime_type"] = mime or "application/octet-stream"
    return block


def _path_block(path: Path, kind: MediaKind | None) -> dict[str, Any]:
    path = path.expanduser()
    if not path.is_file():
        what = kind or "media"
        raise FileNotFoundError(
            f"{what} file not found: {str(path)!r}; pass an existing path, bytes, or a URL"
        )
    data = path.read_bytes()
    if kind is None and sniff_mime(data) is None:
        guessed = _kind_of_mime(mimetypes.guess_type(path.name)[0])
        kind = guessed if guessed in ("image", "audio") else None  # type: ignore[assignment]
    block = _bytes_block(data, kind)
    if block["mime_type"] == "application/octet-stream":
        block["mime_type"] = mimetypes.guess_type(path.name)[0] or block["mime_type"]
    return block


def _resolve_path(block: dict[str, Any]) -> dict[str, Any]:
    """A block with a local ``path`` (not a LangChain key) becomes a base64 block."""
    if "path" not in block:
        return block
    kind = block.get("type")
    loaded = _path_block(Path(block["path"]), kind if kind in ("image", "audio") else None)
    rest = {k: v for k, v in block.items() if k not in ("path", "mime_type")}
    return {
        **rest,
        "base64": loaded["base64"],
        "mime_type": block.get("mime_type") or loaded["mime_type"],
    }


# ----------------------------------------------------------------------- encoding
# `data_url_bytes` and `png_bytes` serve `llmrouter.multimodal._media` too.


def data_url_bytes(url: str) -> bytes:
    """The payload of a ``data:`` URL (base64 or percent-encoded)."""
    header, _, payload = url.partition(",")
    if header.endswith(";base64"):
        return base64.b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


def _is_pil_image(value: Any) -> bool:
    module = type(value).__module__
    if not module.startswith("PIL."):
        return False
    from PIL import Image

    return isinstance(value, Image.Image)


def png_bytes(image: PILImage) -> bytes:
    """Encode a PIL image as PNG (modes PNG cannot hold are converted to RGB)."""
    buffer = io.BytesIO()
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "I", "I;16", "1"):
        image = image.convert("RGB")
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _wav_bytes(array: Any, sampling_rate: int) -> bytes:
    """Encode a float or int array (mono, or frames x channels) as 16-bit PCM WAV."""
    import wave

    import numpy as np

    samples = np.asarray(array)
    if samples.dtype.kind == "f":
        samples = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    else:
        samples = samples.astype("<i2")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sampling_rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


# --------------------------------------------------------------- input messages


def as_prompt_value(value: Any) -> PromptValue:
    """Any supported input as a prompt value whose media are standard blocks.

    Accepts what ``BaseChatModel`` accepts (a string, messages, a prompt value)
    and also: a single message, a PIL image, bytes, a `pathlib.Path`, a content block, and
    a dict with ``image``/``images``, ``audio`` and ``text``/``prompt`` keys (or
    a message dict with ``role`` and ``content``). Blocks with a local ``path``
    are read into base64.

    Raises:
        ModalityError: the input is none of these.

    Examples:
        >>> from llmrouter.multimodal._detect import as_prompt_value
        >>> wav = b"RIFF\\0\\0\\0\\0WAVEfmt "
        >>> message = as_prompt_value({"audio": wav, "text": "Transcribe"}).to_messages()[0]
        >>> [block["type"] for block in message.content]
        ['text', 'audio']
    """
    if isinstance(value, PromptValue):
        if isinstance(value, StringPromptValue):
            return value
        return ChatPromptValue(messages=_resolve_messages(value.to_messages()))
    if isinstance(value, str):
        return StringPromptValue(text=value)
    if isinstance(value, BaseMessage):
        return ChatPromptValue(messages=_resolve_messages([value]))
    if isinstance(value, Mapping):
        return ChatPromptValue(messages=[_dict_message(value)])
    if isinstance(value, bytes | bytearray | memoryview | os.PathLike) or _is_pil_image(value):
        return ChatPromptValue(messages=[HumanMessage(content=[media_block(value)])])
    if isinstance(value, Sequence):
        try:
            messages = convert_to_messages(value)
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise ModalityError(f"cannot read the input as messages: {exc}") from exc
        return ChatPromptValue(messages=_resolve_messages(messages))
    raise ModalityError(
        f"cannot route a {type(value).__name__}: give a string, messages, a PIL image, bytes, "
        "a path, or a dict like {'image': ..., 'text': ...} / {'audio': ...}"
    )


def _dict_message(value: Mapping[str, Any]) -> BaseMessage:
    if "role" in value and "content" in value:
        return _resolve_messages(convert_to_messages([dict(value)]))[0]
    if "type" in value:
        return HumanMessage(content=[media_block(value)])
    unknown = sorted(set(value) - set(_DICT_KEYS))
    if unknown:
        raise ModalityError(
            f"unknown input keys {unknown}: a dict input takes {sorted(_DICT_KEYS)} "
            "(or is a message with 'role' and 'content')",
            found=f"dict with keys {sorted(value)}",
        )
    blocks: list[str | dict[str, Any]] = []
    for key, item in value.items():
        if _DICT_KEYS[key] == "text":
            blocks.append({"type": "text", "text": str(item)})
    for key, item in value.items():
        kind = _DICT_KEYS[key]
        if kind == "text":
            continue
        items = item if key == "images" and isinstance(item, list | tuple) else [item]
        blocks.extend(media_block(x, kind) for x in items)  # type: ignore[arg-type]
    return HumanMessage(content=blocks)


def _resolve_messages(messages: list[BaseMessage]) -> list[BaseMessage]:
    resolved = []
    for message in messages:
        content = message.content
        if isinstance(content, list) and any(
            isinstance(b, dict) and "path" in b and "type" in b for b in content
        ):
            blocks = [_resolve_path(b) if isinstance(b, dict) else b for b in content]
            message = message.model_copy(update={"content": blocks})
        resolved.append(message)
    return resolved


def last_human(messages: Sequence[BaseMessage]) -> HumanMessage | None:
    """The last human message of a conversation, if any."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message
    return None


# -------------------------------------------------------------------- inspection


@dataclass
class Found:
    """What one message carries."""

    text: bool = False
    """True if it has non-blank text."""
    images: list[dict[str, Any]] = field(default_factory=list)
    """Its image blocks (standard form)."""
    audio: list[dict[str, Any]] = field(default_factory=list)
    """Its audio blocks (standard form)."""
    other: list[str] = field(default_factory=list)
    """Kinds no route reads, e.g. ``"video"``, ``"file (application/pdf)"``."""

    def describe(self) -> str:
        """A short summary, e.g. ``"text, 1 image"`` or ``"nothing"``."""
        parts = ["text"] if self.text else []
        if self.images:
            parts.append(f"{len(self.images)} image{'s' if len(self.images) > 1 else ''}")
        if self.audio:
            parts.append(f"{len(self.audio)} audio")
        parts += self.other
        return ", ".join(parts) or "nothing"


def inspect_content(message: BaseMessage | None) -> Found:
    """Sort a message's content blocks into text, images, audio and other.

    Reads LangChain's standard view of the content (``message.content_blocks``),
    so OpenAI-style ``image_url``/``input_audio`` blocks and LangChain v0 blocks
    count too. A ``file`` block with an image or audio mime type counts as one.

    Examples:
        >>> from langchain_core.messages import HumanMessage
        >>> from llmrouter.multimodal._detect import inspect_content
        >>> msg = HumanMessage(content=[{"type": "text", "text": "What is this?"},
        ...     {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}])
        >>> inspect_content(msg).describe()
        'text, 1 image'
    """
    found = Found()
    if message is None:
        return found
    for block in message.content_blocks:
        kind = str(block.get("type"))
        if kind == "file":
            mime = block.get("mime_type")
            mime = mime if isinstance(mime, str) else None
            kind = _kind_of_mime(mime) or f"file ({mime or 'unknown type'})"
        if kind in ("text", "text-plain"):
            found.text = found.text or bool(str(block.get("text", "")).strip())
        elif kind == "image":
            found.images.append(dict(block))
        elif kind == "audio":
            found.audio.append(dict(block))
        else:
            found.other.append(str(kind))
    return found
