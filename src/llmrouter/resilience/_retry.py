"""Retry policies on tenacity: composable stop and wait strategies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    AsyncRetrying,
    DoSleep,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from llmrouter.resilience._classify import ErrorKind, classify_error, retry_after


class wait_retry_after(wait_base):
    """Wait what the server asked (``Retry-After``), or ``fallback`` when it did not."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        asked = _asked(retry_state)
        return asked if asked is not None else self.fallback(retry_state)


class stop_if_retry_after_exceeds(stop_base):
    """Stop retrying when the server asks for a longer wait than ``limit`` seconds:
    better to fall back to another model than to sit out a long cool-down."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        asked = _asked(retry_state)
        return asked is not None and asked > self.limit


def _asked(retry_state: RetryCallState) -> float | None:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None and outcome.failed else None
    return retry_after(exc) if exc is not None else None


def _retryable(exc: BaseException) -> bool:
    return classify_error(exc).kind is ErrorKind.RETRYABLE


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry one model before falling back.

    Only retryable errors are retried (connection errors, timeouts, 408, 409,
    429, 5xx); a server's ``Retry-After`` is honoured up to ``max_retry_after``
    seconds (a longer ask falls back at once). ``stop`` and ``wait`` accept any
    tenacity strategy, so policies compose like tenacity's own:

    Examples:
        >>> from tenacity import stop_after_attempt, stop_after_delay, wait_fixed
        >>> policy = RetryPolicy(stop=stop_after_attempt(3) | stop_after_delay(10),
        ...                      wait=wait_fixed(0.1))
        >>> RetryPolicy.attempts(3).max_attempts
        3
        >>> RetryPolicy.none().max_attempts
        1
    """

    stop: stop_base = field(default_factory=lambda: stop_after_attempt(3) | stop_after_delay(30))
    """When to give up on this model (attempts and/or a total deadline)."""
    wait: wait_base = field(
        default_factory=lambda: wait_exponential(multiplier=0.1, max=2.0) + wait_random(0, 0.1)
    )
    """How long to wait between tries (exponential backoff with jitter by default)."""
    max_retry_after: float = 10.0
    """Longest ``Retry-After`` worth waiting for; longer asks fall back at once."""
    max_attempts: int | None = 3
    """Informational: the attempt cap, when known (shown in ``router.health()``)."""

    @classmethod
    def attempts(cls, n: int, *, deadline: float | None = 30.0, **kwargs: Any) -> RetryPolicy:
        """``n`` tries in all (``n=1``: no retry), within ``deadline`` seconds."""
        if n < 1:
            raise ValueError(f"attempts must be >= 1, got {n}")
        stop: stop_base = stop_after_attempt(n)
        if deadline is not None:
            stop = stop | stop_after_delay(deadline)
        return cls(stop=stop, max_attempts=n, **kwargs)

    @classmethod
    def none(cls) -> RetryPolicy:
        """One try only: fall back immediately."""
        return cls.attempts(1, deadline=None)

    def _kwargs(self) -> dict[str, Any]:
        return {
            "stop": self.stop | stop_if_retry_after_exceeds(self.max_retry_after),
            "wait": wait_retry_after(self.wait),
            "retry": retry_if_exception(_retryable),
            "reraise": True,
        }

    def retrying(self) -> Retrying:
        """A fresh tenacity `Retrying` for one model's tries."""
        return Retrying(**self._kwargs())

    def aretrying(self) -> AsyncRetrying:
        """A fresh tenacity `AsyncRetrying` for one model's tries."""
        return AsyncRetrying(**self._kwargs())

    def after_failure(
        self, tries: RetryState | None, exc: BaseException, began: float
    ) -> RetryState:
        """Decide after a failed try: the returned state says whether and when to retry.

        ``tries`` is ``None`` after a model's first failure (the first try never
        touches tenacity: most calls succeed, and they should be cheap);
        ``began`` is the `time.monotonic` start of that first try, from which
        ``stop_after_delay`` counts.

        Examples:
            >>> import time
            >>> from tenacity import wait_fixed
            >>> policy = RetryPolicy.attempts(2, wait=wait_fixed(0.5))
            >>> tries = policy.after_failure(None, TimeoutError("slow"), time.monotonic())
            >>> tries.sleep
            0.5
            >>> policy.after_failure(tries, TimeoutError("again"), time.monotonic()).sleep is None
            True
        """
        if tries is None:
            tries = RetryState(self.retrying(), began)
        tries.failed(exc)
        return tries


class RetryState:
    """tenacity's decision loop for one model's tries, driven step by step.

    The same object serves sync and async drivers: it only decides (retry after
    ``sleep`` seconds, or give up); the driver sleeps and calls.
    """

    def __init__(self, retrying: Retrying, began: float) -> None:
        self._retrying = retrying
        retrying.begin()
        self._state = RetryCallState(retrying, fn=None, args=(), kwargs={})
        self._state.start_time = began
        retrying.iter(self._state)  # the first try, already made: DoAttempt
        self.sleep: float | None = None
        """Seconds to wait before the next try; ``None`` once the policy gives up."""

    def failed(self, exc: BaseException) -> None:
        """Feed one failed try to the policy and update `sleep`."""
        state = self._state
        state.set_exception((type(exc), exc, exc.__traceback__))
        try:
            do = self._retrying.iter(state)
        except BaseException:  # reraise=True: tenacity gives up by raising the last error
            self.sleep = None
            return
        if isinstance(do, DoSleep):
            state.prepare_for_next_attempt()
            self._retrying.iter(state)  # DoAttempt for the next try
            self.sleep = float(do)
        else:  # pragma: no cover -- a failed outcome never yields a result
            self.sleep = None
