"""llmrouter: LangChain routing chains over local and remote models.

Every documented name is importable from here; the feature packages
(`llmrouter.task`, `llmrouter.cost`, `llmrouter.learn`, `llmrouter.ab`, `llmrouter.config`,
`llmrouter.multimodal`, `llmrouter.resilience`, `llmrouter.models`,
`llmrouter.testing`) hold the rest.
Names load lazily, on first use, so ``import llmrouter`` stays light (no torch,
no transformers, no provider SDK).
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy table below resolves to, for type checkers and docs
    from llmrouter import classify, models, resilience
    from llmrouter.ab import ABRouter, CanaryGuard, ExperimentReport, RampSchedule, SQLiteStore
    from llmrouter.config import load_config, load_router
    from llmrouter.core import BaseRouter, LatencyTracker, Ranking, RouteRequest
    from llmrouter.cost import (
        Blend,
        Budget,
        BudgetStatus,
        CostAwareRouter,
        CostTracker,
        track_costs,
    )
    from llmrouter.errors import (
        AllModelsFailedError,
        AttemptTimeoutError,
        BudgetExceededError,
        ConfigFileError,
        ConfigurationError,
        DataError,
        ExperimentError,
        IntegrityError,
        InvalidRequestError,
        LLMRouterError,
        ModalityError,
        NoEligibleModelError,
        StateUnavailableError,
        StoreClosedError,
        StreamInterruptedError,
        TokenLimitError,
        UnknownRequestError,
        UnknownTaskError,
    )
    from llmrouter.learn import QualityPredictor
    from llmrouter.multimodal import MultiModalRouter
    from llmrouter.record import ROUTE_EVENT, Attempt, RouteRecord, Usage, route_of
    from llmrouter.resilience import CircuitBreaker, RetryPolicy, TokenRateLimiter
    from llmrouter.spec import ModelSpec
    from llmrouter.task import KeywordClassifier, LLMClassifier, ModelRouter, SemanticClassifier

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # routers and what they rank
    "BaseRouter": "llmrouter.core",
    "LatencyTracker": "llmrouter.core",
    "Ranking": "llmrouter.core",
    "RouteRequest": "llmrouter.core",
    "ModelRouter": "llmrouter.task",
    "CostAwareRouter": "llmrouter.cost",
    "ABRouter": "llmrouter.ab",
    "MultiModalRouter": "llmrouter.multimodal",
    # models and records
    "ModelSpec": "llmrouter.spec",
    "ROUTE_EVENT": "llmrouter.record",
    "Attempt": "llmrouter.record",
    "RouteRecord": "llmrouter.record",
    "Usage": "llmrouter.record",
    "route_of": "llmrouter.record",
    # task classifiers
    "KeywordClassifier": "llmrouter.task",
    "SemanticClassifier": "llmrouter.task",
    "LLMClassifier": "llmrouter.task",
    # cost
    "Blend": "llmrouter.cost",
    "Budget": "llmrouter.cost",
    "BudgetStatus": "llmrouter.cost",
    "CostTracker": "llmrouter.cost",
    "track_costs": "llmrouter.cost",
    # config files
    "load_config": "llmrouter.config",
    "load_router": "llmrouter.config",
    # learned routing
    "QualityPredictor": "llmrouter.learn",
    # experiments
    "CanaryGuard": "llmrouter.ab",
    "ExperimentReport": "llmrouter.ab",
    "RampSchedule": "llmrouter.ab",
    "SQLiteStore": "llmrouter.ab",
    # resilience
    "CircuitBreaker": "llmrouter.resilience",
    "RetryPolicy": "llmrouter.resilience",
    "TokenRateLimiter": "llmrouter.resilience",
    # errors
    "AllModelsFailedError": "llmrouter.errors",
    "AttemptTimeoutError": "llmrouter.errors",
    "BudgetExceededError": "llmrouter.errors",
    "ConfigFileError": "llmrouter.errors",
    "ConfigurationError": "llmrouter.errors",
    "DataError": "llmrouter.errors",
    "ExperimentError": "llmrouter.errors",
    "IntegrityError": "llmrouter.errors",
    "InvalidRequestError": "llmrouter.errors",
    "LLMRouterError": "llmrouter.errors",
    "ModalityError": "llmrouter.errors",
    "NoEligibleModelError": "llmrouter.errors",
    "StateUnavailableError": "llmrouter.errors",
    "StoreClosedError": "llmrouter.errors",
    "StreamInterruptedError": "llmrouter.errors",
    "TokenLimitError": "llmrouter.errors",
    "UnknownRequestError": "llmrouter.errors",
    "UnknownTaskError": "llmrouter.errors",
}
_SUBMODULES = ("classify", "models", "resilience", "state")

__all__ = [
    "ROUTE_EVENT",
    "ABRouter",
    "AllModelsFailedError",
    "Attempt",
    "AttemptTimeoutError",
    "BaseRouter",
    "Blend",
    "Budget",
    "BudgetExceededError",
    "BudgetStatus",
    "CanaryGuard",
    "CircuitBreaker",
    "ConfigFileError",
    "ConfigurationError",
    "CostAwareRouter",
    "CostTracker",
    "DataError",
    "ExperimentError",
    "ExperimentReport",
    "IntegrityError",
    "InvalidRequestError",
    "KeywordClassifier",
    "LLMClassifier",
    "LLMRouterError",
    "LatencyTracker",
    "ModalityError",
    "ModelRouter",
    "ModelSpec",
    "MultiModalRouter",
    "NoEligibleModelError",
    "QualityPredictor",
    "RampSchedule",
    "Ranking",
    "RetryPolicy",
    "RouteRecord",
    "RouteRequest",
    "SQLiteStore",
    "SemanticClassifier",
    "StateUnavailableError",
    "StoreClosedError",
    "StreamInterruptedError",
    "TokenLimitError",
    "TokenRateLimiter",
    "UnknownRequestError",
    "UnknownTaskError",
    "Usage",
    "__version__",
    "classify",
    "load_config",
    "load_router",
    "models",
    "resilience",
    "route_of",
    "track_costs",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"llmrouter.{name}")
    else:
        close = difflib.get_close_matches(name, __all__, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise AttributeError(f"module 'llmrouter' has no attribute {name!r}{hint}")
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
