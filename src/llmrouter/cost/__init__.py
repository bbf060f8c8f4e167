"""Routing by cost: `CostAwareRouter`, token counting, prices, budgets, spend tracking."""

from llmrouter._tokens import (
    CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD_TOKENS,
    TokenCount,
    TokenCounter,
    estimate_tokens,
)
from llmrouter.cost._budget import Budget, BudgetStatus
from llmrouter.cost._prices import compute_prices
from llmrouter.cost._router import Blend, CostAwareRouter
from llmrouter.cost._tracker import CallCost, CostTracker, UsageTotals, track_costs
from llmrouter.state._sqlite_ledger import SpendLedger, default_spend_db

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
