"""llmrouter.models._vision over a tiny random BLIP through the real transformers pipeline."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _fixtures.tiny_multimodal import png_bytes
from langchain_core.messages import HumanMessage
from PIL import Image

from llmrouter import ConfigurationError, ModelSpec
from llmrouter.errors import ModalityError
from llmrouter.models._multimodal import loaded_media_models
from llmrouter.models._vision import ChatImageToTextPipeline, _describe, image_to_text_pipeline

PNG = png_bytes()


@pytest.fixture(scope="module")
def spec(tiny_captioner_dir: Path) -> ModelSpec:
    return image_to_text_pipeline(str(tiny_captioner_dir), name="captioner", max_new_tokens=6)


def test_factory_splits_keywords(tiny_captioner_dir: Path) -> None:
    spec = image_to_text_pipeline(
        str(tiny_captioner_dir), tasks={"caption"}, input_cost=0.1, max_new_tokens=5, device="cpu"
    )
    assert (spec.name, spec.modality, spec.tasks) == (
        "tiny-captioner",
        "image_to_text",
        {"caption"},
    )
    model = spec.chat_model
    assert isinstance(model, ChatImageToTextPipeline)
    assert (model.pipeline_kwargs, model.device) == ({"max_new_tokens": 5}, "cpu")


def test_factory_rejects_misspelled_keywords(tiny_captioner_dir: Path) -> None:
    path = str(tiny_captioner_dir)
    with pytest.raises(
        ConfigurationError, match=r"'max_new_token' .*'max_new_tokens'.*pipeline_kwargs"
    ):
        image_to_text_pipeline(path, max_new_token=5)
    with pytest.raises(ConfigurationError, match=r"'num_beam' .*did you mean 'num_beams'"):
        image_to_text_pipeline(path, num_beam=2)
    spec = image_to_text_pipeline(
        path, max_new_tokens=3, num_beams=1, pipeline_kwargs={"anything": 1}
    )
    model = spec.chat_model
    assert isinstance(model, ChatImageToTextPipeline)
    assert model.pipeline_kwargs == {"anything": 1, "max_new_tokens": 3, "num_beams": 1}
    assert loaded_media_models().count(f"image-text-to-text:{path}") <= 1  # nothing loaded here


def test_generation_defaults_go_to_generate(tiny_captioner_dir: Path) -> None:
    spec = image_to_text_pipeline(str(tiny_captioner_dir), max_tokens=3, num_beams=1)
    reply = spec.chat_model.invoke({"image": PNG})
    assert isinstance(reply.content, str) and reply.content


def test_caption_from_image(spec: ModelSpec) -> None:
    reply = spec.chat_model.invoke({"image": PNG})
    assert isinstance(reply.content, str) and reply.content
    assert reply.response_metadata["model_name"] == spec.chat_model.model_id  # type: ignore[attr-defined]
    assert reply.response_metadata["modality"] == "image_to_text"
    assert reply.response_metadata["images"] == 1
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == 0  # no text prompt
    assert 0 < usage["output_tokens"] <= 6


def test_question_is_the_prompt_and_counts_as_input(spec: ModelSpec) -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "a picture of"},
            {"type": "image", "base64": base64.b64encode(PNG).decode(), "mime_type": "image/png"},
        ]
    )
    reply = spec.chat_model.invoke([message])
    assert reply.usage_metadata is not None and reply.usage_metadata["input_tokens"] == 3
    assert not str(reply.content).startswith("a picture of")  # only the new text


def test_max_tokens_per_call(spec: ModelSpec) -> None:
    reply = spec.chat_model.invoke({"image": PNG}, max_tokens=2, temperature=0.3)
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] <= 2


def test_several_images_one_caption_per_line(spec: ModelSpec) -> None:
    reply = spec.chat_model.invoke({"images": [PNG, Image.new("RGB", (20, 50), "green")]})
    assert len(str(reply.content).split("\n")) == 2
    assert reply.response_metadata["images"] == 2


async def test_async_and_batch(spec: ModelSpec) -> None:
    reply = await spec.chat_model.ainvoke({"image": PNG})
    assert isinstance(reply.content, str)
    replies = await spec.chat_model.abatch([{"image": PNG}, {"image": PNG}])
    assert len(replies) == 2


def test_lazy_and_shared(tiny_captioner_dir: Path) -> None:
    path = str(tiny_captioner_dir)
    first = image_to_text_pipeline(path, name="a", max_new_tokens=2)
    second = image_to_text_pipeline(path, name="b", max_new_tokens=3)
    first.chat_model.invoke({"image": PNG})
    count = loaded_media_models().count(f"image-text-to-text:{path}")
    second.chat_model.invoke({"image": PNG})
    assert loaded_media_models().count(f"image-text-to-text:{path}") == count == 1


def test_unloadable_model_fails_on_first_use_not_on_build(tmp_path: Path) -> None:
    spec = image_to_text_pipeline(str(tmp_path / "missing"))
    with pytest.raises(OSError):
        spec.chat_model.invoke({"image": PNG})


def test_no_image_is_a_clear_error(spec: ModelSpec) -> None:
    with pytest.raises(ModalityError, match="needs image input; the message carries text"):
        spec.chat_model.invoke("no picture")


def test_chat_vlm_gets_one_chat_turn() -> None:
    """A processor with a chat template (LLaVA, SmolVLM, Qwen-VL, ...) is called in chat mode.

    BLIP's processor cannot hold a chat template, so this runs on a stand-in pipeline.
    """
    calls: list[dict[str, Any]] = []

    class ChatPipeline:
        task = "image-text-to-text"
        processor = SimpleNamespace(chat_template="{{ messages }}")

        def __call__(self, **kwargs: Any) -> list[dict[str, str]]:
            calls.append(kwargs)
            return [{"generated_text": "two red squares"}]

    images = [Image.new("RGB", (4, 4)), Image.new("RGB", (4, 4))]
    assert _describe(ChatPipeline(), images, "What is here?", {"max_new_tokens": 5}) == [
        "two red squares"
    ]
    (call,) = calls
    assert call["return_full_text"] is False and call["max_new_tokens"] == 5
    (turn,) = call["text"]
    assert turn["role"] == "user"
    assert [c["type"] for c in turn["content"]] == ["image", "image", "text"]
