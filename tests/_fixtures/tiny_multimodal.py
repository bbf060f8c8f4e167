"""Tiny random multimodal models built at test time, sample media, and a media server.

- ``tiny_captioner_dir``: BLIP (image-text-to-text), ``tiny_speech_dir``: Whisper
  (automatic-speech-recognition), ``tiny_text_to_image_dir``: Stable Diffusion
  (diffusers). Each is written once per session under the session's base temp
  directory (the builders are idempotent, so a module that imports these
  fixtures directly reuses the same directory).
- ``sample_png`` / ``sample_wav``: a 48x40 gradient image and a 0.5 s tone at
  22.05 kHz (so speech input is resampled to the model's 16 kHz).
- ``media_server``: a real HTTP server on 127.0.0.1 that answers OpenAI's
  ``/v1/images/generations`` and Hugging Face inference requests (text-to-image,
  image-to-text, speech recognition) and records what it was sent. Paths under
  ``/fail/`` answer 500, for fallback tests.

PYTEST_DONT_REWRITE: test modules import the helpers below before the module is
loaded as a plugin; it has no asserts to rewrite.
"""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llmrouter.testing import (
    build_tiny_captioner,
    build_tiny_speech_recognizer,
    build_tiny_text_to_image,
)

SERVER_KEY = "sk-media-test-2b7e"
"""The key tests send; the server answers 401 without an Authorization header."""


@pytest.fixture(scope="session")
def tiny_captioner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BLIP captioning model with its processor."""
    return build_tiny_captioner(tmp_path_factory.getbasetemp() / "tiny-captioner")


@pytest.fixture(scope="session")
def tiny_speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Whisper model with its feature extractor and tokenizer."""
    return build_tiny_speech_recognizer(tmp_path_factory.getbasetemp() / "tiny-whisper")


@pytest.fixture(scope="session")
def tiny_text_to_image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Stable Diffusion pipeline (32x32 images)."""
    return build_tiny_text_to_image(tmp_path_factory.getbasetemp() / "tiny-sd")


def png_bytes(width: int = 48, height: int = 40) -> bytes:
    """A small RGB gradient as PNG."""
    from PIL import Image

    image = Image.new("RGB", (width, height))
    image.putdata([(x * 5 % 256, y * 6 % 256, 128) for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(seconds: float = 0.5, rate: int = 22050, hz: float = 440.0) -> bytes:
    """A sine tone as 16-bit mono PCM WAV."""
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def sample_png() -> bytes:
    return png_bytes()


@pytest.fixture(scope="session")
def sample_wav() -> bytes:
    return wav_bytes()


# --------------------------------------------------------------------- media server


@dataclass
class MediaServer:
    """A running media server and the requests it received."""

    url: str
    """Server root, e.g. ``http://127.0.0.1:40123``."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """One entry per request: ``path``, ``headers``, ``json`` or ``body`` (bytes)."""

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def url_base_url(self) -> str:
        """A base URL whose images endpoint answers with image URLs, not base64."""
        return f"{self.url}/url/v1"

    @property
    def failing_base_url(self) -> str:
        return f"{self.url}/fail/v1"

    def hf(self, task: str) -> str:
        """Endpoint URL of a Hugging Face task: ``text-to-image``, ``image-to-text``, ``asr``."""
        return f"{self.url}/hf/{task}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        entry: dict[str, Any] = {"path": self.path, "headers": dict(self.headers)}
        try:
            entry["json"] = json.loads(body)
        except ValueError:
            entry["body"] = body
        self.server.record.requests.append(entry)
        if "Authorization" not in self.headers:
            return self._send(401, {"error": "missing Authorization header"})
        if self.path.startswith("/fail/"):
            return self._send(500, {"error": {"message": "injected failure", "type": "server"}})
        if self.path == "/v1/images/generations":
            return self._images(entry["json"])
        if self.path == "/url/v1/images/generations":
            return self._send(200, {"created": 1, "data": [{"url": "https://example.com/a.png"}]})
        if self.path == "/hf/text-to-image":
            return self._send(200, self.server.png, "image/png")
        if self.path == "/hf/image-to-text":
            return self._send(200, [{"generated_text": "a small gradient"}])
        if self.path == "/hf/asr":
            return self._send(200, {"text": "hello from the server"})
        return self._send(404, {"error": f"no route {self.path}"})

    def _images(self, request: dict[str, Any]) -> None:
        n = int(request.get("n") or 1)
        b64 = base64.b64encode(self.server.png).decode("ascii")
        words = len(str(request.get("prompt", "")).split())
        self._send(
            200,
            {
                "created": 1700000000,
                "data": [{"b64_json": b64, "revised_prompt": request.get("prompt")}] * n,
                "usage": {
                    "input_tokens": words,
                    "output_tokens": 100 * n,
                    "total_tokens": words + 100 * n,
                    "input_tokens_details": {"text_tokens": words, "image_tokens": 0},
                },
            },
        )

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, record: MediaServer, png: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.record = record
        self.png = png


@pytest.fixture(scope="session")
def media_server() -> Iterator[MediaServer]:
    """A media server on 127.0.0.1, stopped at the end of the session."""
    record = MediaServer(url="")
    server = _Server(record, png_bytes(16, 16))
    record.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="media-server", daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
