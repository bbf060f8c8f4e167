"""The routing core: the router base, what it ranks, and the one executor.

A router subclasses `BaseRouter` and implements `BaseRouter.rank`; the executor
(`llmrouter.core._execution`) does everything else for every router.
"""

from llmrouter.core._latency import LatencyTracker
from llmrouter.core._router import BaseRouter
from llmrouter.core._types import Ranking, RouteRequest, ToolBinding

__all__ = ["BaseRouter", "LatencyTracker", "Ranking", "RouteRequest", "ToolBinding"]
