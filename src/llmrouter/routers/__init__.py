"""Routers: each a LangChain chat model built on the executor in `base`."""

from llmrouter.routers.ab import ABRouter, CanaryGuard, RampSchedule
from llmrouter.routers.base import BaseRouter, Ranking, RouteRequest
from llmrouter.routers.cost import Blend, CostAwareRouter
from llmrouter.routers.multimodal import MultiModalRouter
from llmrouter.routers.task import ModelRouter

__all__ = [
    "ABRouter",
    "BaseRouter",
    "Blend",
    "CanaryGuard",
    "CostAwareRouter",
    "ModelRouter",
    "MultiModalRouter",
    "RampSchedule",
    "Ranking",
    "RouteRequest",
]
