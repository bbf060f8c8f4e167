"""Tokens per minute for one model: `TokenRateLimiter`, and the GCRA it counts with.

Providers limit the tokens a key may use per minute as well as its requests
(OpenAI's TPM, Azure's tokens-per-minute quota). A call's tokens are known only
after it, so the limiter admits a call on an estimate (the prompt's tokens plus
the most it may write: ``max_tokens``, else `DEFAULT_OUTPUT_TOKENS`) and is told
the actual count afterwards (`TokenRateLimiter.adjust`): the difference is
charged, or given back.

The count is a GCRA (generic cell rate algorithm): one timestamp ``tat`` per
model, moved on by ``tokens x (60 / tokens_per_minute)`` seconds per call; a call
fits while ``tat`` stays within a minute ahead of now. So a full minute's tokens
may go at once (the bucket starts full), and room comes back continuously.

This one counts in its process; ``state.token_limiter(name, tokens_per_minute)``
of `llmrouter.state` gives one shared by every process on a SQLite file or Redis.
"""

from __future__ import annotations

import threading
import time

__all__ = ["DEFAULT_OUTPUT_TOKENS", "TokenRateLimiter", "gcra"]

DEFAULT_OUTPUT_TOKENS = 256
"""The output tokens a call is assumed to write when it sets no ``max_tokens``
(corrected to the actual count when it answers)."""


def gcra(
    tat: float | None, now: float, interval: float, burst: float, cost: float = 1.0
) -> tuple[float, float]:
    """(the new ``tat``, 0.0) if ``cost`` units may go at ``now``, else (``tat``,
    seconds to wait). ``interval`` is the time one unit takes to come back, ``burst``
    how many units may go at once.

    Examples:
        >>> gcra(None, 100.0, 0.5, 2)     # a full bucket: allowed
        (100.5, 0.0)
        >>> gcra(100.5, 100.0, 0.5, 2)    # the second of the burst
        (101.0, 0.0)
        >>> gcra(101.0, 100.0, 0.5, 2)    # the bucket is empty: wait 0.5 s
        (101.0, 0.5)
        >>> gcra(None, 0.0, 0.1, 600, cost=500)   # 500 of a minute's 600 tokens
        (50.0, 0.0)
    """
    start = now if tat is None or tat < now else tat
    new = start + cost * interval
    wait = new - now - burst * interval
    if wait > 1e-9:
        return start, wait
    return new, 0.0


class TokenRateLimiter:
    """At most ``tokens_per_minute`` tokens a minute through one model, in this process.

    Give it to a model (``ModelSpec(..., token_limiter=TokenRateLimiter(90_000))``,
    or ``rate_limit: {tokens_per_minute: 90000}`` in a config file): the router
    takes a call's estimate before calling the model and settles it to the
    answer's usage. A call that does not fit waits for room when the wait fits its
    deadline, goes to another replica of the model, or falls back to the next
    model; it never counts against the model's circuit breaker.

    Examples:
        >>> limiter = TokenRateLimiter(tokens_per_minute=600)
        >>> limiter.try_take(500), limiter.try_take(100)   # 0.0: taken
        (0.0, 0.0)
        >>> round(limiter.try_take(50), 1)                  # no room: seconds to wait
        5.0
        >>> limiter.adjust(-200)          # the call used 200 fewer than estimated
        >>> limiter.try_take(50)
        0.0
    """

    def __init__(self, tokens_per_minute: int) -> None:
        if not isinstance(tokens_per_minute, int) or tokens_per_minute < 1:
            raise ValueError(f"tokens_per_minute must be a positive int, not {tokens_per_minute!r}")
        self.tokens_per_minute = tokens_per_minute
        self.interval = 60.0 / tokens_per_minute
        """Seconds one token takes to come back."""
        self._lock = threading.Lock()
        self._tat: float | None = None

    def try_take(self, tokens: int) -> float:
        """Take ``tokens`` if they fit now: ``0.0``; else the seconds until they would
        (nothing taken; ``inf`` when they exceed a whole minute's)."""
        if tokens > self.tokens_per_minute:
            return float("inf")
        with self._lock:
            new, wait = gcra(
                self._tat, time.monotonic(), self.interval, self.tokens_per_minute, tokens
            )
            if wait == 0.0:
                self._tat = new
            return wait

    async def atry_take(self, tokens: int) -> float:
        """`try_take` from a coroutine."""
        return self.try_take(tokens)

    def adjust(self, tokens: int) -> None:
        """Charge ``tokens`` more (a call used more than its estimate), or give
        ``-tokens`` back (it used fewer, or failed before using any)."""
        with self._lock:
            now = time.monotonic()
            start = now if self._tat is None or self._tat < now else self._tat
            self._tat = max(start + tokens * self.interval, now)

    def __reduce__(self) -> tuple[type[TokenRateLimiter], tuple[int]]:
        return TokenRateLimiter, (self.tokens_per_minute,)  # a copy starts with a full minute

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tokens_per_minute={self.tokens_per_minute})"
