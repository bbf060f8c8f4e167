"""Resilience: error classification, retries, timeouts, circuit breaking, limits.

The executor (`llmrouter.routers.base`) applies these to every router; this
package holds the policies. See docs/resilience.md for the failure model.
"""

from llmrouter.resilience.breaker import (
    DEFAULT_BOARD,
    BreakerBoard,
    BreakerState,
    CircuitBreaker,
    MemoryBreakerBoard,
    SQLiteBreakerBoard,
)
from llmrouter.resilience.errors import ErrorInfo, ErrorKind, classify_error, retry_after
from llmrouter.resilience.limits import ConcurrencyLimit
from llmrouter.resilience.retry import RetryPolicy, stop_if_retry_after_exceeds, wait_retry_after

__all__ = [
    "DEFAULT_BOARD",
    "BreakerBoard",
    "BreakerState",
    "CircuitBreaker",
    "ConcurrencyLimit",
    "ErrorInfo",
    "ErrorKind",
    "MemoryBreakerBoard",
    "RetryPolicy",
    "SQLiteBreakerBoard",
    "classify_error",
    "retry_after",
    "stop_if_retry_after_exceeds",
    "wait_retry_after",
]
