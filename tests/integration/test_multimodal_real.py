"""MultiModalRouter end to end over real pipelines, one per modality, all offline.

text: tiny GPT-2 (transformers text-generation); image_generation: tiny Stable
Diffusion (diffusers), behind an OpenAI-compatible images server that fails;
image_to_text: tiny BLIP (image-text-to-text); speech_to_text: tiny Whisper
(automatic-speech-recognition); embeddings: all-MiniLM-L6-v2.
"""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest
from _fixtures.tiny_multimodal import SERVER_KEY, MediaServer, png_bytes, wav_bytes
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from PIL import Image

from llmrouter import models, route_of
from llmrouter.models._diffusion import text_to_image_pipeline
from llmrouter.models._images import openai_images
from llmrouter.models._multimodal import embeddings_model
from llmrouter.models._speech import speech_to_text_pipeline
from llmrouter.models._vision import image_to_text_pipeline
from llmrouter.multimodal._media import images_of
from llmrouter.multimodal._router import MultiModalRouter

PNG = png_bytes()
WAV = wav_bytes(0.5, 22050)


@pytest.fixture(scope="module")
def router(
    tiny_model_dir: Path,
    tiny_captioner_dir: Path,
    tiny_speech_dir: Path,
    tiny_text_to_image_dir: Path,
    media_server: MediaServer,
) -> MultiModalRouter:
    return MultiModalRouter(
        text=models.huggingface_pipeline(
            str(tiny_model_dir), name="gpt2", max_new_tokens=8, do_sample=False
        ),
        image_generation=[
            openai_images(
                "dall-e-3",
                media_server.failing_base_url,
                api_key=SERVER_KEY,
                name="remote-painter",
                max_retries=0,
            ),
            text_to_image_pipeline(
                str(tiny_text_to_image_dir), name="sd", num_inference_steps=2, seed=0
            ),
        ],
        image_to_text=image_to_text_pipeline(
            str(tiny_captioner_dir), name="blip", max_new_tokens=6, output_cost=2.0
        ),
        speech_to_text=speech_to_text_pipeline(str(tiny_speech_dir), name="whisper"),
        embeddings=embeddings_model(name="minilm"),
    )


def test_text(router: MultiModalRouter) -> None:
    reply = router.invoke("Hello there")
    record = route_of(reply)
    assert (record.model, record.task, record.reason) == (
        "gpt2",
        "text",
        "input carries text: text",
    )
    assert isinstance(reply.content, str)
    assert record.usage is not None and 0 < record.usage.output_tokens <= 8


def test_image_generation_falls_back_to_the_local_pipeline(router: MultiModalRouter) -> None:
    reply = router.invoke("a watercolor fox", task="image_generation")
    record = route_of(reply)
    assert record.model == "sd" and record.task_source == "explicit"
    *failed, ok = record.attempts  # the router retries a 500 before falling back
    assert failed and {(a.model, a.ok, a.error_type) for a in failed} == {
        ("remote-painter", False, "InternalServerError")
    }
    assert ok.model == "sd" and ok.ok
    (image,) = [Image.open(io.BytesIO(data)) for data in images_of(reply)]
    assert (image.format, image.size) == ("PNG", (32, 32))
    assert reply.response_metadata["size"] == [32, 32]


def test_image_to_text_is_priced(router: MultiModalRouter) -> None:
    b64 = base64.b64encode(PNG).decode()
    reply = router.invoke(
        HumanMessage(
            content=[
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image", "base64": b64, "mime_type": "image/png"},
            ]
        )
    )
    record = route_of(reply)
    assert (record.model, record.task) == ("blip", "image_to_text")
    assert isinstance(reply.content, str) and reply.content
    assert record.usage is not None and 0 < record.usage.output_tokens <= 6
    assert record.cost_usd == pytest.approx(record.usage.output_tokens * 2.0 / 1e6)


def test_speech_to_text_from_a_path(router: MultiModalRouter, tmp_path: Path) -> None:
    path = tmp_path / "meeting.wav"
    path.write_bytes(WAV)
    reply = router.invoke({"audio": str(path)})
    record = route_of(reply)
    assert (record.model, record.task, record.extra["input"]) == (
        "whisper",
        "speech_to_text",
        "1 audio",
    )
    assert isinstance(reply.content, str)
    assert reply.response_metadata["audio_seconds"] == 0.5


def test_embeddings(router: MultiModalRouter) -> None:
    chain = router.bind(task="embeddings") | JsonOutputParser()
    vector = chain.invoke("routers pick models")
    assert len(vector) == 384 and all(isinstance(x, float) for x in vector)


def test_generate_then_describe_in_one_chain(router: MultiModalRouter) -> None:
    def ask_about(image: AIMessage) -> HumanMessage:
        question: list[str | dict[str, Any]] = [{"type": "text", "text": "Describe it."}]
        return HumanMessage(content=question + list(image.content))

    chain = router.bind(task="image_generation") | ask_about | router | StrOutputParser()
    caption = chain.invoke("a red apple on a table")
    assert isinstance(caption, str) and caption


def test_stream_an_image(router: MultiModalRouter) -> None:
    chunks = list(router.stream("a fox", task="image_generation"))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert [b["type"] for b in merged.content_blocks] == ["image"]
    assert merged.response_metadata["route"]["streamed"] is True


async def test_every_modality_at_once(router: MultiModalRouter) -> None:
    inputs: list[Any] = ["hi", {"image": PNG}, {"audio": WAV}, "a fox", "embed me"]
    tasks = [None, None, None, "image_generation", "embeddings"]
    replies = await asyncio.gather(
        *(router.ainvoke(value, task=task) for value, task in zip(inputs, tasks, strict=True))
    )
    assert [r.response_metadata["model_name"] for r in replies] == [
        "gpt2",
        "blip",
        "whisper",
        "sd",
        "minilm",
    ]
