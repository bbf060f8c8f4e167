"""llmrouter.models._diffusion over a tiny random Stable Diffusion through real diffusers."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from PIL import Image

from llmrouter import ConfigurationError, ModelSpec
from llmrouter.errors import ModalityError
from llmrouter.models._diffusion import ChatTextToImagePipeline, text_to_image_pipeline
from llmrouter.multimodal._media import images_of


@pytest.fixture(scope="module")
def spec(tiny_text_to_image_dir: Path) -> ModelSpec:
    return text_to_image_pipeline(
        str(tiny_text_to_image_dir), name="painter", num_inference_steps=2, seed=0
    )


def pngs(message: object) -> list[Image.Image]:
    return [Image.open(io.BytesIO(data)) for data in images_of(message)]  # type: ignore[arg-type]


def test_factory_splits_keywords(tiny_text_to_image_dir: Path) -> None:
    spec = text_to_image_pipeline(
        str(tiny_text_to_image_dir), tags={"local"}, guidance_scale=1.0, seed=3, device="cpu"
    )
    assert (spec.name, spec.modality, spec.tags) == ("tiny-sd", "image_generation", {"local"})
    model = spec.chat_model
    assert isinstance(model, ChatTextToImagePipeline)
    assert (model.pipeline_kwargs, model.seed, model.device) == ({"guidance_scale": 1.0}, 3, "cpu")


def test_factory_rejects_misspelled_keywords(tiny_text_to_image_dir: Path) -> None:
    path = str(tiny_text_to_image_dir)
    with pytest.raises(ConfigurationError, match=r"'num_inference_step' .*'num_inference_steps'"):
        text_to_image_pipeline(path, num_inference_step=2)
    with pytest.raises(ConfigurationError, match=r"'sede' .*did you mean 'seed'.*pipeline_kwargs"):
        text_to_image_pipeline(path, sede=1)
    spec = text_to_image_pipeline(
        path, n=2, size="32x32", negative_prompt="blur", max_sequence_length=77, seed=1
    )
    model = spec.chat_model
    assert isinstance(model, ChatTextToImagePipeline) and model.seed == 1
    assert model.pipeline_kwargs == {
        "n": 2,
        "size": "32x32",
        "negative_prompt": "blur",
        "max_sequence_length": 77,
    }


def test_generates_a_png_block(spec: ModelSpec) -> None:
    reply = spec.chat_model.invoke("a watercolor fox")
    (block,) = reply.content
    assert isinstance(block, dict)
    assert (block["type"], block["mime_type"]) == ("image", "image/png")
    (image,) = pngs(reply)
    assert (image.format, image.size, image.mode) == ("PNG", (32, 32), "RGB")
    metadata = reply.response_metadata
    assert metadata["modality"] == "image_generation"
    assert (metadata["images"], metadata["size"], metadata["seed"]) == (1, [32, 32], 0)
    usage = reply.usage_metadata
    assert usage is not None and usage["input_tokens"] > 0 and usage["output_tokens"] == 0
    # the answer is a standard block: LangChain reads it back as one
    assert [b["type"] for b in reply.content_blocks] == ["image"]


def test_seed_makes_images_reproducible(spec: ModelSpec) -> None:
    first = images_of(spec.chat_model.invoke("a fox"))
    assert images_of(spec.chat_model.invoke("a fox")) == first
    assert images_of(spec.chat_model.invoke("a fox", seed=1)) != first


def test_per_call_count_and_size(spec: ModelSpec) -> None:
    reply = spec.chat_model.invoke("two foxes", n=2, size="64x32", temperature=0.5)
    assert [image.size for image in pngs(reply)] == [(64, 32), (64, 32)]


async def test_async(spec: ModelSpec) -> None:
    reply = await spec.chat_model.ainvoke("an async fox")
    assert len(images_of(reply)) == 1


def test_empty_prompt_is_a_clear_error(spec: ModelSpec) -> None:
    with pytest.raises(ModalityError, match="image generation needs a text prompt"):
        spec.chat_model.invoke({"image": Image.new("RGB", (4, 4))})


def test_missing_diffusers_says_which_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers -> ImportError
    spec = text_to_image_pipeline(str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"pip install 'llmrouter\[image\]'"):
        spec.chat_model.invoke("a fox")
