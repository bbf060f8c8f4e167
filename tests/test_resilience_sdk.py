"""One retry layer: a wrapped model's own SDK retries are off unless asked for."""

from __future__ import annotations

import functools
from typing import Any

from _fixtures.fakes import InOrder, Recorder
from langchain_openai import AzureChatOpenAI, ChatOpenAI

from llmrouter import ModelSpec
from llmrouter.resilience._sdk import without_sdk_retries


class Retrying(Recorder):
    """A model whose client, built on first use, reads ``max_retries`` (like ChatAnthropic)."""

    max_retries: int = 3

    @functools.cached_property
    def client(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries}


def test_a_model_with_max_retries_is_copied_without_them() -> None:
    user = Retrying()
    assert user.client == {"max_retries": 3}  # built (and cached) before wrapping
    spec = ModelSpec(name="m", model=user)
    called = spec.chat_model
    assert isinstance(called, Retrying) and called is not user
    assert (called.max_retries, called.client) == (0, {"max_retries": 0})
    assert (user.max_retries, user.client) == (3, {"max_retries": 3})


def test_chat_openai_clients_are_rebuilt_without_retries() -> None:
    user = ChatOpenAI(model="m", base_url="http://127.0.0.1:9/v1", api_key="sk-x")
    called = without_sdk_retries(user)
    assert called.max_retries == 0 and user.max_retries is None
    assert called.root_client.max_retries == 0 and user.root_client.max_retries == 2
    assert called.root_async_client.max_retries == 0
    assert called.client._client is called.root_client  # calls go through the new client
    assert called.async_client._client is called.root_async_client
    assert called.root_client._client is user.root_client._client  # one connection pool


def test_azure_chat_openai_too() -> None:
    user = AzureChatOpenAI(
        azure_deployment="d",
        azure_endpoint="https://example.invalid",
        api_version="2024-10-21",
        api_key="sk-x",
        max_retries=5,
    )
    called = without_sdk_retries(user)
    assert called.root_client.max_retries == 0 and user.root_client.max_retries == 5


def test_left_alone_models_without_retries_routers_and_opt_outs() -> None:
    plain = Recorder()
    assert without_sdk_retries(plain) is plain  # no max_retries field
    zero = Retrying(max_retries=0)
    assert without_sdk_retries(zero) is zero
    router = InOrder(models=[ModelSpec(name="a", model=Recorder())], max_retries=4)
    assert without_sdk_retries(router) is router  # its max_retries is its retry policy
    kept = Retrying()
    assert ModelSpec(name="k", model=kept, sdk_retries=True).chat_model is kept


def test_a_factory_built_model_is_also_without_retries() -> None:
    spec = ModelSpec(name="f", model=lambda: Retrying(max_retries=7))
    assert spec.chat_model.max_retries == 0  # type: ignore[attr-defined]
