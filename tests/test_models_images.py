"""llmrouter.models._images: the OpenAI images API against a real local HTTP server."""

from __future__ import annotations

import openai
import pytest
from _fixtures.tiny_multimodal import SERVER_KEY, MediaServer

from llmrouter import ConfigurationError
from llmrouter.errors import ModalityError
from llmrouter.models._images import ChatOpenAIImages, openai_images
from llmrouter.multimodal._media import images_of


def test_factory_rejects_misspelled_keywords() -> None:
    with pytest.raises(ConfigurationError, match=r"'sise' .*did you mean 'size'.*parameters="):
        openai_images("dall-e-3", api_key="sk-x", sise="1024x1024")
    with pytest.raises(ConfigurationError, match=r"'max_retry' .*did you mean 'max_retries'"):
        openai_images("dall-e-3", api_key="sk-x", max_retry=1)
    spec = openai_images(
        "dall-e-3",
        api_key="sk-x",
        size="1024x1024",
        style="vivid",
        timeout=30,
        verbose=False,
        parameters={"custom": 1},
    )
    chat = spec.chat_model
    assert isinstance(chat, ChatOpenAIImages) and chat.timeout == 30
    assert chat.parameters == {"custom": 1, "size": "1024x1024", "style": "vivid"}


def test_generate(media_server: MediaServer) -> None:
    spec = openai_images(
        "dall-e-3", media_server.openai_base_url, api_key=SERVER_KEY, size="256x256"
    )
    reply = spec.chat_model.invoke("a watercolor fox")
    (block,) = reply.content
    assert isinstance(block, dict)
    assert (block["type"], block["mime_type"]) == ("image", "image/png")
    assert images_of(reply)[0].startswith(b"\x89PNG")
    metadata = reply.response_metadata
    assert metadata["model_name"] == "dall-e-3" and metadata["modality"] == "image_generation"
    assert metadata["revised_prompts"] == ["a watercolor fox"]
    assert reply.usage_metadata == {"input_tokens": 3, "output_tokens": 100, "total_tokens": 103}
    request = media_server.requests[-1]
    assert request["json"] == {
        "model": "dall-e-3",
        "prompt": "a watercolor fox",
        "size": "256x256",
        "response_format": "b64_json",
    }
    assert request["headers"]["authorization"] == f"Bearer {SERVER_KEY}"


def test_gpt_image_models_get_no_response_format(media_server: MediaServer) -> None:
    spec = openai_images(
        "gpt-image-1", media_server.openai_base_url, api_key=SERVER_KEY, quality="low"
    )
    reply = spec.chat_model.invoke("a fox", n=2, temperature=0.2)
    assert len(images_of(reply)) == 2
    body = media_server.requests[-1]["json"]
    assert body == {"model": "gpt-image-1", "prompt": "a fox", "quality": "low", "n": 2}


async def test_async_client(media_server: MediaServer) -> None:
    spec = openai_images("dall-e-2", media_server.openai_base_url, api_key=SERVER_KEY)
    for _ in range(2):  # the async client survives across calls
        reply = await spec.chat_model.ainvoke("an async fox")
        assert len(images_of(reply)) == 1


def test_url_answers_stay_urls(media_server: MediaServer) -> None:
    spec = openai_images("dall-e-2", media_server.url_base_url, api_key=SERVER_KEY)
    reply = spec.chat_model.invoke("a fox")
    assert reply.content == [{"type": "image", "url": "https://example.com/a.png"}]
    assert reply.usage_metadata is None


def test_server_errors_surface(media_server: MediaServer) -> None:
    spec = openai_images(
        "dall-e-2", media_server.failing_base_url, api_key=SERVER_KEY, max_retries=0
    )
    with pytest.raises(openai.InternalServerError):
        spec.chat_model.invoke("a fox")


def test_keys_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="api_key='EMPTY'"):
        openai_images("dall-e-3")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-secret")
    spec = openai_images("dall-e-3", quality={"image_generation": 0.9})
    assert spec.quality == {"image_generation": 0.9}  # a dict is the spec's quality
    assert "sk-from-env-secret" not in repr(spec.chat_model)


def test_prompt_is_required() -> None:
    chat = ChatOpenAIImages(model="dall-e-3", api_key="sk-x")  # type: ignore[arg-type]
    with pytest.raises(ModalityError, match="needs a text prompt"):
        chat.invoke("   ")
