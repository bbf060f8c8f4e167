"""Resilience: error classification, retries, timeouts, circuit breaking, limits.

The executor (`llmrouter.core`) applies these to every router; this package
holds the policies. The documentation's Resilience page describes the failure model.
"""

from llmrouter.resilience._breaker import (
    DEFAULT_BOARD,
    BreakerBoard,
    BreakerState,
    CircuitBreaker,
    MemoryBreakerBoard,
    SQLiteBreakerBoard,
)
from llmrouter.resilience._classify import ErrorInfo, ErrorKind, classify_error, retry_after
from llmrouter.resilience._limits import ConcurrencyLimit
from llmrouter.resilience._retry import RetryPolicy, stop_if_retry_after_exceeds, wait_retry_after
from llmrouter.resilience._token_limits import DEFAULT_OUTPUT_TOKENS, TokenRateLimiter

__all__ = [
    "DEFAULT_BOARD",
    "DEFAULT_OUTPUT_TOKENS",
    "BreakerBoard",
    "BreakerState",
    "CircuitBreaker",
    "ConcurrencyLimit",
    "ErrorInfo",
    "ErrorKind",
    "MemoryBreakerBoard",
    "RetryPolicy",
    "SQLiteBreakerBoard",
    "TokenRateLimiter",
    "classify_error",
    "retry_after",
    "stop_if_retry_after_exceeds",
    "wait_retry_after",
]
