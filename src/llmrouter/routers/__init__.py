"""Routers: each a LangChain chat model built on the executor in `base`."""

from llmrouter.routers.base import BaseRouter, Ranking, RouteRequest
from llmrouter.routers.task import ModelRouter

__all__ = ["BaseRouter", "ModelRouter", "Ranking", "RouteRequest"]
