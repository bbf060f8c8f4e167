"""``/v1/embeddings`` and ``/v1/images/generations`` through a MultiModalRouter, with
the official openai client (base64 embeddings, its default) and plain HTTP."""

from __future__ import annotations

import base64
import io
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from _fixtures.serve import ServedApp, serve_app
from fastapi.testclient import TestClient
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import BaseChatModel, FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from openai import OpenAI
from PIL import Image

from llmrouter import ModelRouter, ModelSpec, MultiModalRouter
from llmrouter.multimodal._media import image_block
from llmrouter.serve import create_app


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


class Painter(BaseChatModel):
    """Answers every prompt with a red 4x4 PNG (safe to call concurrently)."""

    @property
    def _llm_type(self) -> str:
        return "painter"

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        message = AIMessage(content=[image_block(png("red"))])
        return ChatResult(generations=[ChatGeneration(message=message)])


def painter() -> ModelSpec:
    return ModelSpec(name="painter", model=Painter(), modality="image_generation")


@pytest.fixture(scope="module")
def app() -> Any:
    media = MultiModalRouter(
        text=FakeListChatModel(responses=["hi"]),
        embeddings=DeterministicFakeEmbedding(size=8),
        image_generation=painter(),
        name="media",
    )
    chat = ModelRouter(models=[ModelSpec(name="c", model=FakeListChatModel(responses=["x"]))])
    return create_app({"media": media, "chat": chat}, {})


@pytest.fixture(scope="module")
def served(app: Any) -> Iterator[ServedApp]:
    with serve_app(app) as running:
        yield running


def test_the_openai_client_gets_embeddings_of_each_input(served: ServedApp) -> None:
    client = OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    reply = client.embeddings.create(model="media", input=["first text", "second text"])
    vectors = [item.embedding for item in reply.data]
    assert [item.index for item in reply.data] == [0, 1]
    assert all(len(v) == 8 for v in vectors) and vectors[0] != vectors[1]
    again = client.embeddings.create(model="media", input="first text").data[0].embedding
    assert again == pytest.approx(vectors[0])  # deterministic: same text, same vector


def test_float_and_base64_encodings_carry_the_same_vector(app: Any) -> None:
    http = TestClient(app)
    body = {"model": "media", "input": "hello"}
    floats = http.post("/v1/embeddings", json={**body, "encoding_format": "float"}).json()
    packed = http.post("/v1/embeddings", json={**body, "encoding_format": "base64"}).json()
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(
        floats["data"][0]["embedding"], rel=1e-6
    )
    short = http.post("/v1/embeddings", json={**body, "dimensions": 3}).json()
    assert len(short["data"][0]["embedding"]) == 3


def test_images_come_back_as_base64_pngs(served: ServedApp) -> None:
    client = OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
    reply = client.images.generate(model="media", prompt="a red square", n=2)
    assert len(reply.data) == 2
    image = Image.open(io.BytesIO(base64.b64decode(reply.data[0].b64_json or "")))
    assert image.size == (4, 4) and image.getpixel((0, 0)) == (255, 0, 0)


def test_a_router_without_the_route_is_a_400_naming_those_with_it(app: Any) -> None:
    http = TestClient(app)
    reply = http.post("/v1/embeddings", json={"model": "chat", "input": "x"})
    assert reply.status_code == 400
    assert "these do: media" in reply.json()["error"]["message"]
    images = http.post("/v1/images/generations", json={"model": "chat", "prompt": "x"})
    assert images.status_code == 400 and images.json()["error"]["code"] == "wrong_modality"


def test_bad_bodies_are_400s(app: Any) -> None:
    http = TestClient(app)
    assert http.post("/v1/embeddings", json={"model": "media", "input": []}).status_code == 400
    assert http.post("/v1/embeddings", json={"model": "media"}).status_code == 400
    unknown = http.post("/v1/images/generations", json={"model": "media", "prompt": "p", "x": 1})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "x"
    assert http.post("/v1/embeddings", json={"model": "nope", "input": "x"}).status_code == 404
