"""Config-file forms of the settings objects that are not plain data in Python.

A `RetryPolicy` holds tenacity strategies and a `CircuitBreaker` a state board;
in a file they are a few numbers, which these models validate and turn into the
real objects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from langchain_core.caches import BaseCache
from langchain_core.rate_limiters import BaseRateLimiter, InMemoryRateLimiter
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tenacity import wait_exponential, wait_random

from llmrouter.resilience._breaker import CircuitBreaker, SQLiteBreakerBoard
from llmrouter.resilience._retry import RetryPolicy
from llmrouter.resilience._token_limits import TokenRateLimiter


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently switch a setting off."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class RetrySettings(Strict):
    """How often and how patiently to retry one model before falling back."""

    attempts: int = Field(default=3, ge=1)
    """Tries in all, the first included (``1``: no retry)."""
    deadline: float | None = Field(default=30.0, gt=0)
    """Seconds after the first try when no further try starts (``null``: none)."""
    backoff: float = Field(default=0.1, ge=0)
    """The first wait in seconds; it doubles after each failure."""
    max_backoff: float = Field(default=2.0, ge=0)
    """The longest wait between tries."""
    jitter: float = Field(default=0.1, ge=0)
    """Up to this many random seconds added to each wait."""
    max_retry_after: float = Field(default=10.0, ge=0)
    """Longest server ``Retry-After`` worth waiting for; longer asks fall back at once."""

    def build(self) -> RetryPolicy:
        wait = wait_exponential(multiplier=self.backoff, max=self.max_backoff)
        return RetryPolicy.attempts(
            self.attempts,
            deadline=self.deadline,
            wait=wait + wait_random(0, self.jitter) if self.jitter else wait,
            max_retry_after=self.max_retry_after,
        )


class BreakerSettings(Strict):
    """Stop sending requests to a model that keeps failing, for a cool-down."""

    failure_threshold: int = Field(default=5, ge=1)
    """Failures within ``window`` that open the breaker."""
    window: float = Field(default=30.0, gt=0)
    """Seconds over which failures are counted."""
    cooldown: float = Field(default=15.0, gt=0)
    """Seconds the breaker stays open before one trial request."""
    min_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    """Share of failed requests in the window needed to open it as well."""
    board: str | None = None
    """A SQLite file whose breaker states every process on this machine shares
    (``null``: this process only); relative to the working directory."""

    def build(self) -> CircuitBreaker:
        kwargs: dict[str, Any] = self.model_dump(exclude={"board"})
        if self.board is not None:
            kwargs["board"] = SQLiteBreakerBoard(self.board)
        return CircuitBreaker(**kwargs)


class RateLimitSettings(Strict):
    """Limits in front of one model: requests (a token bucket: LangChain's
    `InMemoryRateLimiter`) and tokens per minute (`TokenRateLimiter`); with a
    top-level ``state:``, each is shared by every process on that state."""

    requests_per_second: float | None = Field(default=None, gt=0)
    """Sustained requests per second."""
    max_bucket_size: float = Field(default=1.0, ge=1)
    """Largest burst of requests."""
    tokens_per_minute: int | None = Field(default=None, gt=0)
    """Prompt plus output tokens per minute (a call is admitted on its estimate and
    settled to its usage)."""

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimitSettings:
        if self.requests_per_second is None and self.tokens_per_minute is None:
            raise ValueError("give requests_per_second, tokens_per_minute, or both")
        return self

    def build(self, name: str = "", state: str | None = None) -> BaseRateLimiter | None:
        """The request limit (``None`` without ``requests_per_second``)."""
        if self.requests_per_second is None:
            return None
        if state is not None:
            from llmrouter.state import open_state

            return open_state(state).rate_limiter(
                name, self.requests_per_second, self.max_bucket_size
            )
        return InMemoryRateLimiter(
            requests_per_second=self.requests_per_second, max_bucket_size=self.max_bucket_size
        )

    def build_tokens(self, name: str = "", state: str | None = None) -> TokenRateLimiter | None:
        """The token limit (``None`` without ``tokens_per_minute``)."""
        if self.tokens_per_minute is None:
            return None
        if state is not None:
            from llmrouter.state import open_state

            return open_state(state).token_limiter(name, self.tokens_per_minute)
        return TokenRateLimiter(self.tokens_per_minute)


class CacheSettings(Strict):
    """Cache the models' answers in the router's ``state`` (see docs/caching.md)."""

    ttl: float | None = Field(default=86_400.0, gt=0)
    """Seconds an answer stays cached (``null``: until the store is cleared)."""
    semantic: bool = False
    """Match the last user message by meaning (all-MiniLM-L6-v2), kept where the
    state keeps things: its SQLite file, Redis, or this process."""
    threshold: float = Field(default=0.9, gt=0, le=1)
    """Least cosine similarity of two questions that count as the same (``semantic``)."""

    def cache_in(self, state: str | None) -> BaseCache:
        """The cache in ``state`` (a state URL; ``None``: this process)."""
        from llmrouter.state import SemanticResponseCache, open_state
        from llmrouter.state._backends import response_cache_for

        if not self.semantic:
            return response_cache_for(state, self.ttl)
        if state is None:
            return SemanticResponseCache(threshold=self.threshold, ttl=self.ttl)
        return open_state(state).semantic_cache(threshold=self.threshold, ttl=self.ttl)


class RampStep(Strict):
    """Shares that apply from ``after`` seconds past the schedule's start."""

    after: float = Field(ge=0)
    """Seconds after the start."""
    shares: dict[str, float]
    """Variant shares from then on, as for `ABRouter.ramp`."""


class RampSettings(Strict):
    """A canary that widens on a clock."""

    steps: list[RampStep] = Field(min_length=1)
    """The steps, in any order."""
    start: float | None = None
    """Unix time of the start (``null``: when the router is created)."""


class KeywordClassifierSettings(Strict):
    """Tasks from keywords or regular expressions found in the prompt."""

    type: Literal["keyword"]
    rules: dict[str, list[str]]
    """Task name to the words or patterns that signal it."""


class SemanticClassifierSettings(Strict):
    """Tasks from the nearest example prompts (local MiniLM embeddings)."""

    type: Literal["semantic"]
    examples: dict[str, list[str]]
    """Task name to example prompts of that task."""
    threshold: float | dict[str, float] | None = None
    """Least cosine similarity to accept a task (``null``: the classifier's default)."""


class LLMClassifierSettings(Strict):
    """Tasks named by a (small) language model of this config."""

    type: Literal["llm"]
    model: str
    """Name of a model in ``models:`` that classifies."""
    labels: list[str] | dict[str, str]
    """Task names, or task names with a description each."""
    instructions: str | None = None
    """Replaces the default classification instructions."""


ClassifierSettings = Annotated[
    KeywordClassifierSettings | SemanticClassifierSettings | LLMClassifierSettings,
    Field(discriminator="type"),
]


class GuardSettings(Strict):
    """Roll a canary back when its recent requests look bad (`CanaryGuard`)."""

    max_error_rate: float | None = Field(default=0.1, ge=0, lt=1)
    """Highest tolerated error rate over the window (``null``: not checked)."""
    max_p95_latency_s: float | None = Field(default=None, gt=0)
    """Highest tolerated p95 latency in seconds (``null``: not checked)."""
    window: int = Field(default=50, gt=0)
    """How many recent candidate requests are looked at."""
    min_requests: int = Field(default=20, gt=0)
    """Requests needed in the window before the guard may trip."""


class LocalModelSettings(Strict):
    """The process-wide budget of loaded local models (`set_memory_budget`)."""

    memory: int | str | None = None
    """Most memory the loaded local models may take: bytes, or ``"6GiB"``, ``"500MB"``
    (``null``: no limit). Least recently used idle models unload to stay within it."""
    max_models: int | None = Field(default=None, ge=1)
    """Most local models loaded at once (``null``: no limit)."""

    def apply(self) -> None:
        """Set the budget, if this section sets one (else ``LLMROUTER_MODEL_MEMORY`` /
        ``LLMROUTER_MAX_MODELS`` stay in force).

        Raises:
            ConfigurationError: ``memory`` is not a size.
        """
        if self.memory is None and self.max_models is None:
            return
        from llmrouter.models._registry import set_memory_budget

        set_memory_budget(self.memory, self.max_models)
