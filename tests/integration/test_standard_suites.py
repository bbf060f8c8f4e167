"""LangChain's own standard test suites, run against ModelRouter.

Unit suite: a router over an OpenAI-compatible spec (no request is made).
Integration suite: a router over a real llm-katan server (echo backend) on
127.0.0.1. Tests needing capabilities the echo backend lacks are xfailed with
the reason; everything else must pass.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from llmrouter import ModelRouter, models

ECHO_NO_TOOLS = "llm-katan's echo backend answers any tool list with a dummy call (args a=1, b=1)"
ECHO_NO_SCHEMA = "llm-katan's echo backend cannot follow a JSON schema or JSON mode"


class TestModelRouterUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ModelRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        spec = models.openai_compatible(
            "gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-unit", name="remote"
        )
        return {"models": [spec], "default": "remote"}

    @property
    def supports_model_override(self) -> bool:
        # the router picks the model; a per-call `model=` goes to the backend as is
        return False


class TestModelRouterIntegration(ChatModelIntegrationTests):
    server: Any = None

    @pytest.fixture(autouse=True)
    def _katan(self, katan_server: Any) -> None:
        type(self).server = katan_server

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ModelRouter

    @property
    def chat_model_params(self) -> dict[str, Any]:
        server = type(self).server
        spec = models.openai_compatible(
            server.model, base_url=server.base_url, api_key=server.api_key, name="katan"
        )
        return {"models": [spec], "default": "katan"}

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return False
