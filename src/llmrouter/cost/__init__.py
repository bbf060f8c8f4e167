"""Routing by cost: `CostAwareRouter`, token counting, prices, budgets, spend tracking."""

from llmrouter.cost._budget import Budget, BudgetStatus, SpendLedger, default_spend_db
from llmrouter.cost._router import Blend, CostAwareRouter
from llmrouter.cost._usage import (
    CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD_TOKENS,
    CallCost,
    CostTracker,
    TokenCount,
    TokenCounter,
    UsageTotals,
    compute_prices,
    estimate_tokens,
    track_costs,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD_TOKENS",
    "Blend",
    "Budget",
    "BudgetStatus",
    "CallCost",
    "CostAwareRouter",
    "CostTracker",
    "SpendLedger",
    "TokenCount",
    "TokenCounter",
    "UsageTotals",
    "compute_prices",
    "default_spend_db",
    "estimate_tokens",
    "track_costs",
]
