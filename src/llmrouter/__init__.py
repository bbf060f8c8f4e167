"""llmrouter: LangChain routing chains over local and remote models.

Public names only; everything heavy (torch, transformers, provider SDKs) is
imported lazily, on first use of the model that needs it.
"""

from llmrouter import models
from llmrouter.budget import Budget, BudgetExceededError
from llmrouter.content import ModalityError
from llmrouter.errors import (
    AllModelsFailedError,
    ConfigurationError,
    LLMRouterError,
    NoEligibleModelError,
    StreamInterruptedError,
    UnknownTaskError,
)
from llmrouter.record import ROUTE_EVENT, Attempt, RouteRecord, route_of
from llmrouter.routers import (
    ABRouter,
    BaseRouter,
    CostAwareRouter,
    ModelRouter,
    MultiModalRouter,
    Ranking,
    RouteRequest,
)
from llmrouter.spec import ModelSpec
from llmrouter.store import ExperimentError, UnknownRequestError
from llmrouter.usage import CostTracker, track_costs

__version__ = "0.1.0"

__all__ = [
    "ROUTE_EVENT",
    "ABRouter",
    "AllModelsFailedError",
    "Attempt",
    "BaseRouter",
    "Budget",
    "BudgetExceededError",
    "ConfigurationError",
    "CostAwareRouter",
    "CostTracker",
    "ExperimentError",
    "LLMRouterError",
    "ModalityError",
    "ModelRouter",
    "ModelSpec",
    "MultiModalRouter",
    "NoEligibleModelError",
    "Ranking",
    "RouteRecord",
    "RouteRequest",
    "StreamInterruptedError",
    "UnknownRequestError",
    "UnknownTaskError",
    "__version__",
    "models",
    "route_of",
    "track_costs",
]
