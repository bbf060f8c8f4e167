"""MultiModalRouter: construction, modality detection, errors, fallbacks, records.

In-process fake models only; the real pipelines run in
tests/integration/test_multimodal_real.py.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from _fixtures.fakes import Recorder, spec
from _fixtures.tiny_multimodal import png_bytes, wav_bytes
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import BaseChatModel, FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_tests.unit_tests import ChatModelUnitTests
from PIL import Image

from llmrouter import AllModelsFailedError, ConfigurationError, ModelSpec, models, route_of
from llmrouter.errors import InvalidRequestError, ModalityError
from llmrouter.multimodal._media import embedding_of
from llmrouter.multimodal._router import ROUTES, MultiModalRouter
from llmrouter.record import ROUTE_EVENT

PNG = png_bytes(8, 8)
WAV = wav_bytes(0.05, 8000)
B64 = base64.b64encode(PNG).decode("ascii")


def make_router(**kwargs: Any) -> MultiModalRouter:
    models: dict[str, Any] = {
        "text": spec("chat", reply="text answer"),
        "image_generation": spec("painter", reply="image"),
        "image_to_text": spec("captioner", reply="a caption"),
        "speech_to_text": spec("asr", reply="a transcript"),
    }
    models.update(kwargs)
    return MultiModalRouter(**models)


def answered_by(message: AIMessage) -> str:
    return str(message.response_metadata["model_name"])


# ------------------------------------------------------------------ construction


def test_keywords_build_models_and_routes() -> None:
    router = make_router()
    assert [s.name for s in router.models] == ["chat", "painter", "captioner", "asr"]
    assert router.routes == {
        "text": ["chat"],
        "image_generation": ["painter"],
        "image_to_text": ["captioner"],
        "speech_to_text": ["asr"],
    }


def test_plain_models_and_lists_are_wrapped() -> None:
    a, b = FakeListChatModel(responses=["a"]), FakeListChatModel(responses=["b"])
    router = MultiModalRouter(text=a, image_to_text=[a, b])
    assert router.routes == {
        "text": ["text"],
        "image_to_text": ["image_to_text-1", "image_to_text-2"],
    }
    assert router.spec("image_to_text-2").modality == "image_to_text"


def test_models_join_routes_by_modality_and_tasks() -> None:
    vision_chat = ModelSpec(name="vlm", model=Recorder(), tasks={"image_to_text"})
    painter = ModelSpec(name="painter", model=Recorder(), modality="image_generation")
    router = MultiModalRouter(models=[vision_chat, painter])
    assert router.routes == {
        "text": ["vlm"],
        "image_to_text": ["vlm"],
        "image_generation": ["painter"],
    }


def test_one_model_under_two_routes() -> None:
    vlm = spec("vlm")
    router = MultiModalRouter(text=vlm, image_to_text=vlm)
    assert [s.name for s in router.models] == ["vlm"]
    assert router.routes == {"text": ["vlm"], "image_to_text": ["vlm"]}


def test_keywords_and_models_combine() -> None:
    extra = ModelSpec(name="asr-2", model=Recorder(), modality="speech_to_text")
    router = make_router(models=[extra])
    assert router.routes["speech_to_text"] == ["asr", "asr-2"]


def test_embeddings_keyword_takes_an_embeddings_object() -> None:
    router = MultiModalRouter(embeddings=DeterministicFakeEmbedding(size=6), text=Recorder())
    reply = router.invoke("vector please", task="embeddings")
    assert len(embedding_of(reply)) == 6
    assert answered_by(reply) == "embeddings"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "not a model"}, "text[0] is a str"),
        ({"models": [ModelSpec(name="v", model=Recorder(), modality="video")]}, "modality 'video'"),
        ({"text": Recorder(), "routes": {"video": ["text"]}}, "unknown route 'video'"),
        ({"text": Recorder(), "routes": {"image_to_text": ["ghost"]}}, "unknown models ['ghost']"),
        ({}, "models is empty"),
        (
            {"image_generation": ModelSpec(name="cap", model=Recorder(), modality="image_to_text")},
            "'cap' has modality 'image_to_text' but was given as image_generation=",
        ),
        (
            {"text": Recorder(), "embeddings": ModelSpec(name="chat", model=Recorder())},
            "embeddings[0] is ModelSpec 'chat' of modality 'text', not an embedding model",
        ),
        ({"text": Recorder(), "embeddings": Recorder()}, "embeddings[0] is a Recorder, not an"),
        ({"text": Recorder(), "embedings": Recorder()}, "did you mean 'embeddings'?"),
        ({"text": Recorder(), "temperature": -1}, "temperature: Input should be greater than"),
    ],
)
def test_invalid_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        MultiModalRouter(**kwargs)
    assert message in str(info.value)


# --------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("value", "route", "model"),
    [
        ("plain text", "text", "chat"),
        (PNG, "image_to_text", "captioner"),
        (WAV, "speech_to_text", "asr"),
        ({"audio": WAV}, "speech_to_text", "asr"),
        ({"image": PNG, "text": "What is this?"}, "image_to_text", "captioner"),
        (Image.new("RGB", (4, 4)), "image_to_text", "captioner"),
        (
            [HumanMessage(content=[{"type": "image", "base64": B64, "mime_type": "image/png"}])],
            "image_to_text",
            "captioner",
        ),
        (
            [
                HumanMessage(
                    content=[{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]
                )
            ],
            "image_to_text",
            "captioner",
        ),
    ],
)
def test_detection(value: Any, route: str, model: str) -> None:
    reply = make_router().invoke(value)
    record = route_of(reply)
    assert answered_by(reply) == model
    assert (record.task, record.task_source, record.extra["route"]) == (route, "detected", route)


def test_issue_examples() -> None:
    router = make_router()
    assert answered_by(router.invoke("a watercolor fox", task="image_generation")) == "painter"
    described = router.invoke(
        HumanMessage(
            content=[
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image", "base64": B64, "mime_type": "image/png"},
            ]
        )
    )
    assert route_of(described).reason == "input carries text, 1 image: image_to_text"


def test_other_bytes_are_text_as_for_every_router() -> None:
    assert answered_by(make_router().invoke("héllo".encode())) == "chat"
    with pytest.raises(InvalidRequestError, match="not UTF-8"):
        make_router().invoke(b"\xff\xfe\x00garbage")


def test_path_input(tmp_path: Path) -> None:
    path = tmp_path / "meeting.wav"
    path.write_bytes(WAV)
    router = make_router()
    assert answered_by(router.invoke({"audio": str(path)})) == "asr"
    assert answered_by(router.invoke(path)) == "asr"


def test_only_the_last_human_message_decides() -> None:
    image_turn = HumanMessage(content=[{"type": "image", "base64": B64, "mime_type": "image/png"}])
    reply = make_router().invoke([image_turn, AIMessage("a cat"), HumanMessage("and its name?")])
    assert answered_by(reply) == "chat"


def test_explicit_task_wins_over_content() -> None:
    router = make_router()
    reply = router.invoke({"image": PNG, "text": "edit this"}, task="text")
    assert answered_by(reply) == "chat"
    assert route_of(reply).task_source == "explicit"
    assert answered_by(router.bind(task="image_to_text").invoke("no image here")) == "captioner"
    configured = router.invoke("x", config={"metadata": {"task": "image_generation"}})
    assert route_of(configured).task_source == "config" and answered_by(configured) == "painter"


def test_route_convenience() -> None:
    assert answered_by(make_router().route("image_generation", "a fox")) == "painter"


def test_declared_task_routes_by_content_among_models_serving_it() -> None:
    coder = ModelSpec(name="coder", model=Recorder(reply="def f(): ..."), tasks={"code"})
    router = MultiModalRouter(text=[coder, spec("chat")], image_to_text=spec("captioner"))
    record = route_of(router.invoke("write f", task="code"))
    assert record.candidates == ["coder", "chat"]  # chat has no tasks: serves any
    assert record.reason == "input carries text: text, models serving 'code'"


def test_text_goes_to_the_only_text_route_when_there_is_no_text_model() -> None:
    router = MultiModalRouter(image_generation=spec("painter"), image_to_text=spec("captioner"))
    record = route_of(router.invoke("a fox in the snow"))
    assert record.model == "painter"
    assert "only text-input route" in record.reason


# ------------------------------------------------------------------------ errors


def test_ambiguous_input_names_what_was_found_and_the_routes() -> None:
    with pytest.raises(ModalityError) as info:
        make_router().invoke({"image": PNG, "audio": WAV})
    error = info.value
    assert error.found == "1 image, 1 audio"
    assert error.routes == ["text", "image_generation", "image_to_text", "speech_to_text"]
    assert "task='image_to_text' or task='speech_to_text'" in str(error)


def test_unsupported_content() -> None:
    video = HumanMessage(content=[{"type": "video", "url": "https://x/clip.mp4"}])
    with pytest.raises(ModalityError, match="no route reads video"):
        make_router().invoke([video])


def test_missing_route() -> None:
    router = MultiModalRouter(text=spec("chat"))
    with pytest.raises(ModalityError, match="there is no image_to_text route") as info:
        router.invoke(PNG)
    assert info.value.routes == ["text"]
    with pytest.raises(ModalityError, match="no image_generation route"):
        router.invoke("a fox", task="image_generation")


def test_text_without_a_text_route_and_several_takers() -> None:
    embedder = ModelSpec(name="e", model=Recorder(), modality="embeddings")
    router = MultiModalRouter(image_generation=spec("p"), embeddings=embedder)
    with pytest.raises(ModalityError, match="pass task=<route>"):
        router.invoke("hello")


def test_unknown_task_that_no_model_serves() -> None:
    coder = ModelSpec(name="coder", model=Recorder(), tasks={"code"})
    with pytest.raises(ModalityError, match="no text model serves task 'poetry'"):
        MultiModalRouter(text=coder).invoke("a poem", task="poetry")


# ------------------------------------------------------- executor: fallbacks, record


def test_fallback_within_a_modality_keeps_every_attempt() -> None:
    broken = spec("captioner-a", fail_with=RuntimeError)
    router = make_router(image_to_text=[broken, spec("captioner-b", reply="ok")])
    reply = router.invoke(PNG)
    record = route_of(reply)
    assert answered_by(reply) == "captioner-b"
    assert [(a.model, a.ok) for a in record.attempts] == [
        ("captioner-a", False),
        ("captioner-b", True),
    ]


def test_all_failed() -> None:
    router = make_router(speech_to_text=spec("asr", fail_with=RuntimeError))
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke(WAV)
    assert info.value.record.task == "speech_to_text"


def test_cost_where_priced() -> None:
    priced = spec("painter", usage=(10, 1000), input_cost=5.0, output_cost=40.0)
    record = route_of(make_router(image_generation=priced).invoke("fox", task="image_generation"))
    assert record.cost_usd == pytest.approx((10 * 5.0 + 1000 * 40.0) / 1e6)


def test_the_answering_model_gets_the_normalised_message() -> None:
    router = make_router()
    router.invoke({"image": Image.new("RGB", (2, 2)), "text": "what?"})
    captioner = router.spec("captioner").model
    assert isinstance(captioner, Recorder)
    (message,) = captioner.calls[-1]["messages"]
    assert [b["type"] for b in message.content] == ["text", "image"]
    assert message.content[1]["mime_type"] == "image/png"


def test_router_defaults_do_not_leak_router_keywords() -> None:
    router = make_router(temperature=0.1)
    router.invoke(WAV, task="speech_to_text")
    asr = router.spec("asr").model
    assert isinstance(asr, Recorder)
    assert "task" not in asr.calls[-1] and asr.calls[-1]["temperature"] == 0.1


# ------------------------------------------------------------ runnable interface


async def test_async_batch_and_stream() -> None:
    router = make_router()
    assert answered_by(await router.ainvoke({"audio": WAV})) == "asr"
    replies = router.batch([PNG, "hi", {"audio": WAV}])
    assert [answered_by(r) for r in replies] == ["captioner", "chat", "asr"]
    areplies = await router.abatch([PNG, "hi"])
    assert [answered_by(r) for r in areplies] == ["captioner", "chat"]
    chunks = list(router.stream(PNG))
    assert "".join(str(c.content) for c in chunks) == "a caption"
    assert chunks[-1].response_metadata["model_name"] == "captioner"
    achunks = [c async for c in router.astream({"audio": WAV})]
    assert achunks[-1].response_metadata["route"]["streamed"] is True


async def test_route_event_is_emitted() -> None:
    events = [
        e
        async for e in make_router().astream_events(PNG, version="v2")
        if e["event"] == "on_custom_event" and e["name"] == ROUTE_EVENT
    ]
    assert [e["data"]["task"] for e in events] == ["image_to_text"]


def test_lcel_dict_input_from_a_previous_step() -> None:
    to_input = RunnableLambda(lambda path: {"audio": Path(path).read_bytes()})
    summary = ChatPromptTemplate.from_messages([("human", "Summarize: {text}")])
    router = make_router()
    chain = to_input | router | (lambda m: {"text": m.content}) | summary | router
    assert answered_by(chain.invoke(str(_write(WAV)))) == "chat"


def _write(data: bytes) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "clip.wav"
    path.write_bytes(data)
    return path


def test_routes_constant() -> None:
    assert ROUTES == ("text", "image_generation", "image_to_text", "speech_to_text", "embeddings")


class TestMultiModalRouterStandardUnit(ChatModelUnitTests):
    """LangChain's standard chat-model unit suite (no request is made)."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return MultiModalRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        remote = models.openai_compatible(
            "gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-unit", name="remote"
        )
        return {"text": remote, "image_to_text": spec("captioner")}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # a router holds no credentials (its models do), and rejects unknown keywords
        params = dict(super().standard_chat_model_params)
        params.pop("api_key")
        return params

    @property
    def supports_model_override(self) -> bool:
        return False  # the router picks the model
