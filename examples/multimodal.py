"""MultiModalRouter over tiny local models: generate an image, describe it, transcribe audio.

Run: python examples/multimodal.py   (needs the extras image and audio; offline)

Builds tiny random models on the spot -- GPT-2 (text), Stable Diffusion (image
generation), BLIP (image to text), Whisper (speech to text) -- so every output
is noise; what is real is the routing and every pipeline step. Writes the
generated PNG and a tone WAV to a temporary directory and prints their paths.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
import wave
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage

from llmrouter import ModalityError, MultiModalRouter, models, route_of
from llmrouter.multimodal import images_of
from llmrouter.testing import (
    build_tiny_captioner,
    build_tiny_chat_model,
    build_tiny_speech_recognizer,
    build_tiny_text_to_image,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tone_wav(path: Path, seconds: float = 1.0, rate: int = 16000, hz: float = 440.0) -> Path:
    """Write a sine tone as 16-bit mono WAV."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(
            b"".join(
                struct.pack("<h", int(10000 * math.sin(2 * math.pi * hz * i / rate)))
                for i in range(int(seconds * rate))
            )
        )
    return path


def show(label: str, message: AIMessage) -> None:
    record = route_of(message)
    print(f"{label:22} -> {record.model:8} [{record.task_source}: {record.reason}]")


def main() -> None:
    models_dir = Path(tempfile.gettempdir()) / "llmrouter-multimodal"  # reused between runs
    out = Path(tempfile.mkdtemp(prefix="llmrouter-multimodal-"))

    router = MultiModalRouter(
        text=models.huggingface_pipeline(
            str(build_tiny_chat_model(models_dir / "chat")), name="gpt2", max_new_tokens=12
        ),
        image_generation=models.text_to_image_pipeline(
            str(build_tiny_text_to_image(models_dir / "sd")),
            name="sd",
            num_inference_steps=4,
            seed=0,
        ),
        image_to_text=models.image_to_text_pipeline(
            str(build_tiny_captioner(models_dir / "blip")), name="blip", max_new_tokens=8
        ),
        speech_to_text=models.speech_to_text_pipeline(
            str(build_tiny_speech_recognizer(models_dir / "whisper")), name="whisper"
        ),
    )
    print("routes:", router.routes)

    # 1. an image produced: the answer is a standard image block (base64 PNG)
    picture = router.invoke("a watercolor fox", task="image_generation")
    show("image generation", picture)
    png = out / "fox.png"
    png.write_bytes(images_of(picture)[0])
    print("  wrote", png, picture.response_metadata["size"])

    # 2. an image described: image + question in one human message
    described = router.invoke(
        HumanMessage(
            content=[{"type": "text", "text": "What is in this picture?"}, *picture.content]
        )
    )
    show("image to text", described)
    print("  caption:", repr(described.content))

    # 3. a file path as input: the router reads it and sniffs what it is
    caption = router.invoke({"image": str(png)})
    show("image from a path", caption)

    # 4. audio: transcribe a generated tone
    wav = tone_wav(out / "tone.wav")
    transcript = router.invoke({"audio": str(wav)})
    show("speech to text", transcript)
    print("  wrote", wav, "transcript:", repr(transcript.content))

    # 5. plain text goes to the text model
    show("text", router.invoke("Hello there!"))

    # 6. ambiguous input: a typed error naming what was found and the routes
    try:
        router.invoke({"image": png.read_bytes(), "audio": wav.read_bytes()})
    except ModalityError as exc:
        print("ambiguous input ->", type(exc).__name__, "found:", exc.found)


if __name__ == "__main__":
    main()
