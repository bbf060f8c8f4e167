"""Media out of content blocks: read, decode and resample; image and embedding answers.

`read_block` gets the bytes of an image or audio block (base64, a ``data:`` or
``file:`` URL, or over HTTP); `load_image` decodes them to an RGB PIL image and
`load_audio` to mono float32 samples at a model's sampling rate, for local
models. On the way out, `image_block` makes a generated image a standard block,
`images_of` gets the images of an answer back as bytes and `embedding_of` the
vector of an ``embeddings`` answer. PIL, numpy, soundfile and scipy are
imported only by the functions that need them. Telling what a request carries
lives in `llmrouter.multimodal._detect`.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import io
import json
import math
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage

from llmrouter.errors import ModalityError
from llmrouter.multimodal._detect import data_url_bytes, inspect_content, png_bytes, sniff_mime

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image as PILImage

__all__ = [
    "embedding_of",
    "image_block",
    "images_of",
    "load_audio",
    "load_image",
    "read_block",
]


# ----------------------------------------------------------------- reading media


def read_block(block: Mapping[str, Any], *, timeout: float = 30.0) -> bytes:
    """The bytes of a media block: base64, a ``data:``/``file:`` URL, or fetched over HTTP.

    Raises:
        ModalityError: the block holds no data this function can read (e.g. a
            provider ``file_id``).
    """
    if block.get("base64"):
        try:
            return base64.b64decode(block["base64"], validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ModalityError(f"{block.get('type')} block has invalid base64: {exc}") from exc
    url = block.get("url")
    if isinstance(url, str):
        if url.startswith("data:"):
            return data_url_bytes(url)
        if url.startswith("file://"):
            return Path(urllib.request.url2pathname(url[len("file://") :])).read_bytes()
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bytes(response.read())
    raise ModalityError(
        f"cannot read a {block.get('type')} block with keys {sorted(block)}: give base64 "
        "data or a URL"
    )


def load_image(block: Mapping[str, Any]) -> PILImage:
    """A media block as an RGB PIL image."""
    from PIL import Image

    image = Image.open(io.BytesIO(read_block(block)))
    image.load()
    return image.convert("RGB")


def load_audio(block: Mapping[str, Any], sampling_rate: int) -> np.ndarray:
    """A media block as mono float32 samples at ``sampling_rate``.

    Decodes with ``soundfile`` (WAV, FLAC, OGG, MP3; extra ``llmrouter[audio]``)
    or, without it, 16-bit PCM WAV with the standard library.
    """
    import numpy as np

    samples, rate = _decode_audio(read_block(block))
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return _resample(samples.astype(np.float32), rate, sampling_rate)


def _decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    try:  # imported by name: soundfile ships no type information
        soundfile: Any = importlib.import_module("soundfile")
    except ImportError:
        soundfile = None
    if soundfile is not None:
        try:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
        except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
            raise ModalityError(f"cannot decode the audio ({sniff_mime(data)}): {exc}") from exc
        return samples, int(rate)
    if sniff_mime(data) != "audio/wav":
        raise ModalityError(
            f"cannot decode {sniff_mime(data) or 'this audio'} without soundfile: "
            "pip install 'llmrouter[audio]' (or pass 16-bit PCM WAV)"
        )
    return _decode_wav(data)


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    import wave

    import numpy as np

    with wave.open(io.BytesIO(data), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ModalityError(
                "only 16-bit PCM WAV decodes without soundfile: pip install soundfile"
            )
        frames = wav.readframes(wav.getnframes())
        channels, rate = wav.getnchannels(), wav.getframerate()
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels) if channels > 1 else samples, rate


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or samples.size == 0:
        return samples
    try:
        signal: Any = importlib.import_module("scipy.signal")
    except ImportError:  # linear interpolation: fine for speech, no extra dependency
        import numpy as np

        size = round(samples.size * target / rate)
        positions = np.linspace(0, samples.size - 1, size)
        interpolated: np.ndarray = np.interp(positions, np.arange(samples.size), samples)
        return interpolated.astype(np.float32)
    common = math.gcd(rate, target)
    resampled: np.ndarray = signal.resample_poly(samples, target // common, rate // common)
    return resampled.astype("float32")


# ---------------------------------------------------------------------- outputs


def image_block(image: PILImage | bytes) -> dict[str, Any]:
    """An output image as a standard block: base64 PNG (bytes are kept as they are).

    Examples:
        >>> from PIL import Image
        >>> from llmrouter.multimodal._media import image_block
        >>> block = image_block(Image.new("RGB", (4, 4)))
        >>> block["type"], block["mime_type"]
        ('image', 'image/png')
    """
    data = image if isinstance(image, bytes) else png_bytes(image)
    mime = sniff_mime(data) or "image/png"
    return {"type": "image", "base64": base64.b64encode(data).decode("ascii"), "mime_type": mime}


def images_of(message: BaseMessage) -> list[bytes]:
    """The inline (base64) images of a message, decoded, e.g. to save or display.

    Examples:
        >>> from langchain_core.messages import AIMessage
        >>> from llmrouter.multimodal._media import images_of
        >>> images_of(AIMessage(content=[{"type": "image", "base64": "iVBORw0KGgo=",
        ...                               "mime_type": "image/png"}]))
        [b'\\x89PNG\\r\\n\\x1a\\n']
    """
    return [read_block(b) for b in inspect_content(message).images if b.get("base64")]


def embedding_of(message: BaseMessage) -> list[float]:
    """The vector of an ``embeddings`` answer (its content is the JSON array).

    Examples:
        >>> from langchain_core.messages import AIMessage
        >>> from llmrouter.multimodal._media import embedding_of
        >>> embedding_of(AIMessage(content="[0.5, -0.25]"))
        [0.5, -0.25]
    """
    text = message.text if isinstance(message, AIMessage) else str(message.content)
    try:
        vector = json.loads(text)
    except ValueError:
        vector = None
    if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
        raise ModalityError(
            "this message holds no embedding: embeddings answers carry a JSON array of "
            "floats; route with task='embeddings'"
        )
    return [float(x) for x in vector]
