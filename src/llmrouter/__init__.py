"""llmrouter: LangChain routing chains over local and remote models.

Public names only; everything heavy (torch, transformers, provider SDKs) is
imported lazily, on first use of the model that needs it.
"""

from llmrouter import models
from llmrouter.errors import (
    AllModelsFailedError,
    ConfigurationError,
    LLMRouterError,
    NoEligibleModelError,
    StreamInterruptedError,
    UnknownTaskError,
)
from llmrouter.record import ROUTE_EVENT, Attempt, RouteRecord, route_of
from llmrouter.routers import BaseRouter, ModelRouter, Ranking, RouteRequest
from llmrouter.spec import ModelSpec

__version__ = "0.1.0"

__all__ = [
    "ROUTE_EVENT",
    "AllModelsFailedError",
    "Attempt",
    "BaseRouter",
    "ConfigurationError",
    "LLMRouterError",
    "ModelRouter",
    "ModelSpec",
    "NoEligibleModelError",
    "Ranking",
    "RouteRecord",
    "RouteRequest",
    "StreamInterruptedError",
    "UnknownTaskError",
    "__version__",
    "models",
    "route_of",
]
