"""Shared state of routers: in memory, in SQLite (one machine) or in Redis (many).

Budgets (spend ledger and reservations), circuit breakers, rate limits, A/B
experiments, conversations and cached answers read and write their state
through one `SharedState`, chosen once with ``state=`` on a router
or ``state:`` in a config file. See docs/scaling.md.

Examples:
    >>> from llmrouter.state import open_state
    >>> open_state("sqlite:///state.db")
    SQLiteState('sqlite:///state.db')
"""

from llmrouter.state._backends import (
    MemoryState,
    RedisState,
    SharedState,
    SQLiteState,
    open_state,
)
from llmrouter.state._ledger_api import BaseLedger, SpendTotals, WindowCheck
from llmrouter.state._outage import state_errors
from llmrouter.state._responses import (
    MemoryResponseCache,
    RedisResponseCache,
    SQLiteResponseCache,
)
from llmrouter.state._semantic import SemanticResponseCache

__all__ = [
    "BaseLedger",
    "MemoryResponseCache",
    "MemoryState",
    "RedisResponseCache",
    "RedisState",
    "SQLiteResponseCache",
    "SQLiteState",
    "SemanticResponseCache",
    "SharedState",
    "SpendTotals",
    "WindowCheck",
    "open_state",
    "state_errors",
]
