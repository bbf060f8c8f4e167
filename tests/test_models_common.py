"""What every factory shares: specs that pickle as the call that built them."""

from __future__ import annotations

import pickle

import pytest

from llmrouter import ModelRouter, ModelSpec
from llmrouter.models import huggingface_endpoint, huggingface_pipeline, openai_compatible


def test_a_factory_spec_pickles_as_its_call() -> None:
    spec = openai_compatible(
        "m", "http://127.0.0.1:9/v1", api_key="EMPTY", tasks={"chat"}, max_tokens=5
    )
    with pytest.raises((TypeError, pickle.PicklingError)):
        pickle.dumps(spec.model)  # ChatOpenAI holds HTTP clients: not picklable itself
    copy = pickle.loads(pickle.dumps(spec))
    assert copy.name == "m" and copy.tasks == {"chat"}
    assert copy.chat_model.max_tokens == 5
    assert copy.chat_model.openai_api_base == "http://127.0.0.1:9/v1"
    assert copy.chat_model is not spec.chat_model


def test_fields_changed_after_the_call_survive() -> None:
    spec = huggingface_endpoint("http://127.0.0.1:9", api_key="EMPTY", name="tgi")
    renamed = spec.model_copy(update={"name": "tgi-2", "input_cost": 1.5})
    copy = pickle.loads(pickle.dumps(renamed))
    assert (copy.name, copy.input_cost) == ("tgi-2", 1.5)


def test_a_router_of_factory_specs_pickles() -> None:
    router = ModelRouter(
        models=[
            openai_compatible("remote", "http://127.0.0.1:9/v1", api_key="EMPTY"),
            huggingface_pipeline("/nonexistent/model", name="local", max_new_tokens=8),
        ],
        default="remote",
    )
    copy = pickle.loads(pickle.dumps(router))
    assert [s.name for s in copy.models] == ["remote", "local"]
    assert copy.spec("local").chat_model.pipeline_kwargs == {"max_new_tokens": 8}


def test_a_hand_made_spec_pickles_its_model() -> None:
    from langchain_core.language_models import FakeListChatModel

    spec = ModelSpec(name="fake", model=FakeListChatModel(responses=["hi"]))
    assert pickle.loads(pickle.dumps(spec)).chat_model.invoke("x").content == "hi"
