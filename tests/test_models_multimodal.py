"""llmrouter.models._multimodal: embeddings, Hugging Face inference, shared loading."""

from __future__ import annotations

import math
import socket
from typing import Any

import huggingface_hub.constants
import pytest
from _fixtures.tiny_multimodal import MediaServer, png_bytes, wav_bytes
from huggingface_hub.errors import OfflineModeIsEnabled
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import AIMessage, SystemMessage

from llmrouter.errors import ConfigurationError, ModalityError
from llmrouter.models._multimodal import (
    ChatEmbeddings,
    ChatHuggingFaceInference,
    clear_media_models,
    embeddings_model,
    huggingface_inference,
    loaded_media_models,
    shared_model,
)
from llmrouter.multimodal._media import embedding_of, images_of

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        raise AssertionError(f"test guard: network beyond loopback ({address!r})")
    return _real_connect(self, address)


@pytest.fixture
def hub_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let huggingface_hub make HTTP requests (HF_HUB_OFFLINE=1 refuses all), to 127.0.0.1 only."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


# -------------------------------------------------------------------- embeddings


def test_minilm_embeddings() -> None:
    spec = embeddings_model(input_cost=0.02)  # all-MiniLM-L6-v2, loaded on first use
    assert (spec.name, spec.modality) == ("all-MiniLM-L6-v2", "embeddings")
    reply = spec.chat_model.invoke("route me to the embeddings model")
    vector = embedding_of(reply)
    assert len(vector) == 384 == reply.response_metadata["dimensions"]
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-4)  # normalised
    usage = reply.usage_metadata
    # WordPiece: route me to the em ##bed ##ding ##s model
    assert usage is not None and usage["input_tokens"] == 9 and usage["output_tokens"] == 0
    assert "MiniLM" in reply.response_metadata["model_name"]


async def test_embeddings_async_and_last_human_message() -> None:
    chat = ChatEmbeddings(embeddings=DeterministicFakeEmbedding(size=5), model_name="fake")
    reply = await chat.ainvoke([SystemMessage("ignored"), ("human", "embed me")])
    assert embedding_of(reply) == embedding_of(chat.invoke("embed me"))
    assert reply.response_metadata["model_name"] == "fake"
    assert reply.usage_metadata is None  # no tokenizer to count with


def test_embeddings_factory_with_a_factory() -> None:
    built: list[int] = []

    def build() -> DeterministicFakeEmbedding:
        built.append(1)
        return DeterministicFakeEmbedding(size=3)

    spec = embeddings_model(build, name="lazy")
    assert built == []
    assert len(embedding_of(spec.chat_model.invoke("x"))) == 3
    assert built == [1]


def test_embeddings_model_rejects_misspelled_keywords() -> None:
    with pytest.raises(ConfigurationError, match=r"'input_cots' .*did you mean 'input_cost'"):
        embeddings_model(DeterministicFakeEmbedding(size=4), input_cots=0.1)
    with pytest.raises(ConfigurationError, match=r"'modelname' .*did you mean 'model_name'"):
        embeddings_model(DeterministicFakeEmbedding(size=4), modelname="fake")
    spec = embeddings_model(DeterministicFakeEmbedding(size=4), model_name="fake", input_cost=0.1)
    assert (spec.name, spec.input_cost) == ("fake", 0.1)


def test_embeddings_spec_model_is_a_langchain_embeddings() -> None:
    spec = embeddings_model(DeterministicFakeEmbedding(size=4), name="fake")
    embedder = spec.model
    assert isinstance(embedder, Embeddings) and embedder is spec.chat_model
    vectors = embedder.embed_documents(["one", "two"])
    assert len(vectors) == 2 and all(len(v) == 4 for v in vectors)
    assert embedder.embed_query("one") == vectors[0]
    assert embedding_of(spec.chat_model.invoke("one")) == vectors[0]


async def test_embeddings_spec_model_async_and_lazy() -> None:
    built: list[int] = []

    def build() -> DeterministicFakeEmbedding:
        built.append(1)
        return DeterministicFakeEmbedding(size=3)

    spec = embeddings_model(build, name="lazy")
    assert isinstance(spec.model, Embeddings) and built == []  # nothing built yet
    assert len(await spec.model.aembed_query("x")) == 3
    assert len((await spec.model.aembed_documents(["x", "y"]))[1]) == 3
    assert built == [1]


def test_chat_embeddings_of_chat_embeddings_is_not_nested() -> None:
    inner = ChatEmbeddings(embeddings=DeterministicFakeEmbedding(size=2), model_name="fake")
    outer = ChatEmbeddings(embeddings=inner)
    assert outer.embeddings is inner.embeddings and outer.model_label == "fake"


def test_minilm_embeddings_in_a_rag_vector_store() -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    embedder = embeddings_model().model  # all-MiniLM-L6-v2, offline
    assert isinstance(embedder, Embeddings)
    store = InMemoryVectorStore.from_texts(
        ["The cat sleeps on the sofa.", "Interest rates rose by a quarter point."],
        embedding=embedder,
    )
    (hit,) = store.similarity_search("Where is the kitten napping?", k=1)
    assert hit.page_content == "The cat sleeps on the sofa."
    assert len(embedder.embed_query("x")) == 384


def test_media_models_need_a_human_message() -> None:
    chat = ChatEmbeddings(embeddings=DeterministicFakeEmbedding(size=2))
    with pytest.raises(ModalityError, match="answers a human message"):
        chat.invoke([SystemMessage("only a system prompt")])
    with pytest.raises(ModalityError, match="needs a text prompt"):
        chat.invoke({"image": png_bytes(4, 4)})


# ------------------------------------------------------------ Hugging Face inference


def test_hf_text_to_image(media_server: MediaServer, hub_http: None) -> None:
    spec = huggingface_inference(
        media_server.hf("text-to-image"),
        "image_generation",
        api_key="hf_test",
        num_inference_steps=4,
        parameters={"style": "ink"},  # not a text_to_image argument: sent in the body
    )
    reply = spec.chat_model.invoke("a fox")
    assert images_of(reply)[0].startswith(b"\x89PNG")
    assert reply.response_metadata["model_name"] == media_server.hf("text-to-image")
    body = media_server.requests[-1]["json"]
    assert body == {"inputs": "a fox", "parameters": {"num_inference_steps": 4, "style": "ink"}}


def test_hf_inference_rejects_misspelled_keywords() -> None:
    with pytest.raises(ConfigurationError, match=r"'num_inference_step' .*'num_inference_steps'"):
        huggingface_inference(
            "http://127.0.0.1:1/sdxl", "image_generation", api_key="x", num_inference_step=4
        )
    with pytest.raises(ConfigurationError, match=r"'style'.*parameters="):
        huggingface_inference("http://127.0.0.1:1/sdxl", "image_generation", style="ink")
    spec = huggingface_inference(
        "http://127.0.0.1:1/sdxl",
        "image_generation",
        api_key="x",
        width=512,
        provider=None,
        verbose=False,
        parameters={"style": "ink"},
        input_cost=1.0,
    )
    assert spec.chat_model.parameters == {"style": "ink", "width": 512}
    assert spec.input_cost == 1.0


def test_hf_image_to_text_and_speech(media_server: MediaServer, hub_http: None) -> None:
    captioner = huggingface_inference(
        media_server.hf("image-to-text"), "image_to_text", api_key="x"
    )
    png = png_bytes()
    assert captioner.chat_model.invoke({"image": png}).content == "a small gradient"
    assert media_server.requests[-1]["body"] == png
    asr = huggingface_inference(media_server.hf("asr"), "speech_to_text", api_key="x", name="asr")
    reply = asr.chat_model.invoke({"audio": wav_bytes(0.1)})
    assert (asr.name, asr.modality, reply.content) == (
        "asr",
        "speech_to_text",
        "hello from the server",
    )


def test_hf_offline_is_refused_before_any_request(media_server: MediaServer) -> None:
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # the test session runs offline
    spec = huggingface_inference(media_server.hf("asr"), "speech_to_text", api_key="x")
    with pytest.raises(OfflineModeIsEnabled):
        spec.chat_model.invoke({"audio": wav_bytes(0.1)})


def test_hf_token_is_a_secret() -> None:
    chat = ChatHuggingFaceInference(
        target="http://127.0.0.1:1",
        task="image_to_text",
        api_key="hf_secret_1234",  # type: ignore[arg-type]
    )
    assert "hf_secret_1234" not in repr(chat)


# ------------------------------------------------------------------ shared loading


def test_shared_model_loads_once_per_settings() -> None:
    loads: list[str] = []

    def load() -> str:
        loads.append("x")
        return f"model-{len(loads)}"

    a = shared_model("kind", "m", {"device": "cpu"}, load)
    b = shared_model("kind", "m", {"device": "cpu"}, load)
    c = shared_model("kind", "m", {"device": "cuda"}, load)
    assert a is b and a is not c and loads == ["x", "x"]
    assert "kind:m" in loaded_media_models()
    clear_media_models()
    assert loaded_media_models() == []
    assert shared_model("kind", "m", {"device": "cpu"}, load).model == "model-3"


def test_answers_are_ai_messages() -> None:
    reply = ChatEmbeddings(embeddings=DeterministicFakeEmbedding(size=2)).invoke("x")
    assert isinstance(reply, AIMessage)
