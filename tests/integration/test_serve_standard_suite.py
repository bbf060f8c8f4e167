"""LangChain's standard integration suite through ``llmrouter serve``.

A plain ``ChatOpenAI`` talks to the OpenAI-compatible server (in-process
uvicorn, ``routed_server``) and names ``support-router`` as its model; the
router calls llm-katan's echo backend. ``TestKatanDirectIntegration`` runs the
same class with ``ChatOpenAI`` pointed straight at llm-katan: the baseline (the
issue's target: through the server, at least as many passes). Every xfail is
a limit of the echo backend, checked by hand, and each also fails with a bare
``ChatOpenAI`` pointed straight at llm-katan:

- tool calls: llm-katan answers any tool list with dummy arguments, and a
  streamed tool request with a non-streamed body (as in the direct suite);
- structured output: ``ChatOpenAI``'s default method is ``json_schema``, i.e. a
  ``response_format`` that the server passes on and llm-katan ignores (it echoes
  plain text). A router's default method is tool calling, which is why the
  direct suite fails ``test_structured_output`` only in its stream half and
  passes ``test_structured_output_optional_param``; the last test here runs that
  one through the server with tool calling, and it passes.
"""

from __future__ import annotations

from typing import Any

import pytest
from _fixtures.echo_gaps import EchoBackendGaps
from _fixtures.serve import RoutedServer
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from llmrouter.models._http import openai_async_http_client
from llmrouter.testing import KatanServer

ECHO_NO_JSON_SCHEMA = (
    "ChatOpenAI's default structured-output method is json_schema (a response_format, "
    "passed on by the server); llm-katan's echo backend ignores it and answers plain text, "
    "which is not JSON (a bare ChatOpenAI against llm-katan fails the same way)"
)


class TestServedRouterIntegration(EchoBackendGaps, ChatModelIntegrationTests):
    server: Any = None

    @pytest.fixture(autouse=True)
    def _served(self, routed_server: RoutedServer) -> None:
        type(self).server = routed_server

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, Any]:
        server: RoutedServer = type(self).server
        return {
            "model": server.router,
            "base_url": server.base_url,
            "api_key": server.api_key,
            # What `openai_compatible` gives the models of the direct suite: langchain-openai
            # shares one async client per base URL, whose pooled connections belong to the
            # event loop that opened them, so the next test's loop would fail with "Event
            # loop is closed"; this client keeps one pool per loop.
            "http_async_client": openai_async_http_client(),
        }

    # -- what the echo backend cannot do besides EchoBackendGaps (each checked by hand)

    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    @pytest.mark.xfail(reason=ECHO_NO_JSON_SCHEMA, strict=True)
    def test_structured_output(self, model: BaseChatModel, schema_type: str) -> None:
        super().test_structured_output(model, schema_type)

    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    @pytest.mark.xfail(reason=ECHO_NO_JSON_SCHEMA, strict=True)
    async def test_structured_output_async(self, model: BaseChatModel, schema_type: str) -> None:
        await super().test_structured_output_async(model, schema_type)

    # passes in the direct suite, whose router uses tool calling: see the test below
    @pytest.mark.xfail(reason=ECHO_NO_JSON_SCHEMA, strict=True)
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)


class _ByToolCalling(TestServedRouterIntegration):  # not collected: only its test below
    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "function_calling"}  # what a router's with_structured_output does


def test_structured_output_optional_param_by_tool_calling(routed_server: RoutedServer) -> None:
    """The direct suite's way (tool calling) passes through the server too."""
    suite = _ByToolCalling()
    type(suite).server = routed_server
    model = suite.chat_model_class(
        **{**suite.standard_chat_model_params, **suite.chat_model_params}
    )
    suite.test_structured_output_optional_param(model)


class TestKatanDirectIntegration(TestServedRouterIntegration):
    """The same suite, same xfails, with ``ChatOpenAI`` pointed straight at llm-katan:
    the baseline the served counts are compared with (a strict xfail that passed here
    but not through the server would fail this class)."""

    katan: Any = None

    @pytest.fixture(autouse=True)
    def _direct(self, katan_server: KatanServer) -> None:
        type(self).katan = katan_server

    @property
    def chat_model_params(self) -> dict[str, Any]:
        katan: KatanServer = type(self).katan
        return {
            "model": katan.model,
            "base_url": katan.base_url,
            "api_key": katan.api_key,
            "http_async_client": openai_async_http_client(),
        }
