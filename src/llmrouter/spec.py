"""`ModelSpec`: one routable model and what the routers know about it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel, BaseLanguageModel, BaseLLM
from langchain_core.rate_limiters import BaseRateLimiter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SkipValidation,
    ValidationError,
    field_validator,
)

from llmrouter.errors import ConfigurationError, closest
from llmrouter.resilience._balance import Balance, Balancer
from llmrouter.resilience._limits import ConcurrencyLimit
from llmrouter.resilience._retry import RetryPolicy
from llmrouter.resilience._sdk import without_sdk_retries
from llmrouter.resilience._token_limits import TokenRateLimiter

ModelFactory = Callable[[], BaseLanguageModel[Any]]
T = TypeVar("T")


class ModelSpec(BaseModel):
    """One routable model: the LangChain model plus what a router needs to pick it.

    ``model`` is any LangChain chat model or LLM, or a zero-argument factory that
    builds one on first use (so a router can list models it may never load).

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter import ModelSpec
        >>> spec = ModelSpec(name="fake", model=FakeListChatModel(responses=["hi"]),
        ...                  tasks={"chat"}, input_cost=0.15, output_cost=0.6)
        >>> spec.serves("chat"), spec.serves("code_generation")
        (True, False)
        >>> round(spec.cost(input_tokens=1000, output_tokens=500), 6)
        0.00045

        One model served by two endpoints (see docs/replicas.md):

        >>> east = ModelSpec(name="east", model=FakeListChatModel(responses=["E"]))
        >>> west = ModelSpec(name="west", model=FakeListChatModel(responses=["W"]))
        >>> group = ModelSpec(name="gpt", replicas=[east, west], balance="latency")
        >>> [r.name for r in group.replicas], group.balance
        (['east', 'west'], 'latency')
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True, frozen=True, extra="forbid", use_attribute_docstrings=True
    )

    name: str
    """Unique name within a router; used in routes, records and metrics."""
    model: SkipValidation[BaseLanguageModel[Any] | ModelFactory] = Field(repr=False)
    """The LangChain model, or a zero-argument factory that builds it lazily."""
    tasks: frozenset[str] = frozenset()
    """Task names this model serves. Empty means a general model that serves any task."""
    modality: str = "text"
    """What the model produces or consumes, e.g. ``text``, ``image_generation``."""
    input_cost: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """USD per million input tokens."""
    output_cost: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """USD per million output tokens."""
    cached_input_cost: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """USD per million cached input tokens (``None``: same as ``input_cost``)."""
    context_window: int | None = Field(default=None, gt=0)
    """Maximum prompt plus output tokens; ``None`` when unknown."""
    quality: dict[str, float] = Field(default_factory=dict)
    """Optional per-task quality scores in [0, 1]."""
    tags: frozenset[str] = frozenset()
    retry: RetryPolicy | None = None
    """Retry policy for this model; ``None``: the router's policy."""
    attempt_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds one attempt may take; ``None``: the router's ``timeout``."""
    first_token_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds a stream may take to send its first chunk with content; ``None``: the router's."""
    idle_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds a stream may go without a chunk once its answer began; ``None``: the router's."""
    stream_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds a whole streamed attempt may take; ``None``: the router's."""
    max_concurrency: int | None = Field(default=None, gt=0)
    """Most calls in flight on this model at once, across every router sharing the spec."""
    rate_limiter: BaseRateLimiter | None = None
    """A LangChain rate limiter (e.g. ``InMemoryRateLimiter``) applied before each call."""
    token_limiter: TokenRateLimiter | None = None
    """Tokens per minute through this model (`TokenRateLimiter`, or
    ``state.token_limiter(...)`` to share it): a call takes its estimate first and
    is settled to its usage; one that does not fit goes to another replica, waits
    within its deadline, or falls back (see docs/resilience.md)."""
    sdk_retries: bool = False
    """Keep the model's own client retries (``max_retries`` of ``ChatOpenAI`` and the
    like). By default calls go through a copy with ``max_retries=0``, so the router's
    retry policy is the only retry layer and attempts are not multiplied."""
    replicas: tuple[ModelSpec, ...] = ()
    """Endpoints that serve this same model (as LiteLLM's model groups): each try goes
    to one of them, chosen by ``balance``, skipping those whose circuit breaker is
    open, and a failed one fails over to the next at once. Each replica keeps its own
    ``rate_limiter``, ``token_limiter``, ``max_concurrency`` and breaker; prices, tasks
    and the rest are this spec's. ``model`` defaults to the first replica's (see
    docs/replicas.md)."""
    balance: Balance = "least_busy"
    """How tries spread over ``replicas``: ``least_busy``, ``latency`` or ``weighted``."""
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """This replica's share of its group's calls under ``balance="weighted"``."""

    _resolved: BaseChatModel | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _limit: ConcurrencyLimit | None = PrivateAttr(default=None)
    _recipe: Recipe | None = PrivateAttr(default=None)
    """``(factory, args, kwargs)`` of a `llmrouter.models` factory that built this spec."""
    _balancer: Balancer | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        replicas = data.get("replicas")
        if replicas and "model" not in data and isinstance(replicas[0], ModelSpec):
            data["model"] = replicas[0].model  # what a router asks of the model itself
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigurationError(
                explain_validation_error(exc, "ModelSpec", type(self).model_fields)
            ) from exc

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must be a non-empty string, e.g. name='local-gpt2'")
        return value

    @field_validator("model")
    @classmethod
    def _model_ok(cls, value: Any) -> Any:
        if isinstance(value, BaseLanguageModel) or callable(value):
            return value
        raise ValueError(
            f"model must be a LangChain chat model/LLM or a zero-argument factory, "
            f"got {type(value).__name__}; build one with llmrouter.models.*"
        )

    @field_validator("replicas")
    @classmethod
    def _replicas_ok(cls, value: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        names = [r.name for r in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"replica names must be unique, got {dupes} more than once")
        if any(r.replicas for r in value):
            raise ValueError("a replica cannot have replicas of its own")
        return value

    @field_validator("quality")
    @classmethod
    def _quality_ok(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {task: q for task, q in value.items() if not 0.0 <= q <= 1.0}
        if bad:
            raise ValueError(f"quality scores must lie in [0, 1]; got {bad}")
        return value

    @field_validator("tasks", "tags", mode="before")
    @classmethod
    def _as_set(cls, value: Any) -> Any:
        if isinstance(value, str):  # a lone string would otherwise become a set of letters
            return frozenset({value})
        return value

    def __reduce_ex__(self, protocol: Any) -> Any:
        recipe = self._recipe
        if recipe is None:
            return super().__reduce_ex__(protocol)
        # A factory-built spec pickles as its factory call (a ChatOpenAI, with its HTTP
        # clients, cannot be pickled), plus any field changed since.
        fields = {k: getattr(self, k) for k in type(self).model_fields if k != "model"}
        return (_from_recipe, (*recipe, fields))

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["__pydantic_private__"] = None  # the built model, lock and limit: per process
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self.__pydantic_private__ = None
        self.model_post_init(None)  # fresh private attributes

    def serves(self, task: str | None) -> bool:
        """True if this model serves ``task`` (a model with no tasks serves any)."""
        return task is None or not self.tasks or task in self.tasks

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        """USD for the given token counts at this model's prices."""
        cached_price = self.input_cost if self.cached_input_cost is None else self.cached_input_cost
        fresh = max(input_tokens - cached_input_tokens, 0)
        return (
            fresh * self.input_cost
            + cached_input_tokens * cached_price
            + output_tokens * self.output_cost
        ) / 1_000_000

    @property
    def chat_model(self) -> BaseChatModel:
        """The model as a chat model, built on first use (thread-safe, once); without
        its SDK retries unless ``sdk_retries`` (a copy: the given model is not changed)."""
        resolved = self._resolved
        if resolved is not None:
            return resolved
        return self._once(
            "_resolved", lambda: _as_chat_model(self.name, self.model, self.sdk_retries)
        )

    def _once(self, attr: str, make: Callable[[], T]) -> T:
        """The private ``attr``, made by ``make`` on its first use (thread-safe, once)."""
        with self._lock:
            value: T | None = getattr(self, attr)
            if value is None:
                value = make()
                object.__setattr__(self, attr, value)
        return value

    def warm_up(self) -> ModelSpec:
        """Build the model now and load what it loads lazily (local weights), so a bad
        path or id fails here with a `ConfigurationError` instead of on the first call.

        Examples:
            >>> from langchain_core.language_models import FakeListChatModel
            >>> spec = ModelSpec(name="fake", model=lambda: FakeListChatModel(responses=["hi"]))
            >>> spec.warm_up().chat_model.invoke("x").content
            'hi'
        """
        warm = getattr(self.chat_model, "warm_up", None)
        if callable(warm):
            warm()
        return self

    @property
    def limit(self) -> ConcurrencyLimit | None:
        """The shared in-flight limit, when ``max_concurrency`` is set."""
        most = self.max_concurrency
        if most is None:
            return None
        limit = self._limit
        return limit if limit is not None else self._once("_limit", lambda: ConcurrencyLimit(most))

    @property
    def balancer(self) -> Balancer:
        """How this spec's ``replicas`` share its calls in this process."""
        balancer = self._balancer
        if balancer is not None:
            return balancer
        return self._once("_balancer", lambda: Balancer(self.balance))

    @property
    def supports_tools(self) -> bool:
        """True if the underlying chat model implements ``bind_tools``."""
        return type(self.chat_model).bind_tools is not BaseChatModel.bind_tools


Recipe = tuple[Callable[..., "ModelSpec"], tuple[Any, ...], dict[str, Any]]


def _from_recipe(
    factory: Callable[..., ModelSpec],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    fields: dict[str, Any],
) -> ModelSpec:
    built = factory(*args, **kwargs)
    changed = {k: v for k, v in fields.items() if getattr(built, k) != v}
    return built.model_copy(update=changed) if changed else built


def _as_chat_model(
    name: str, model: BaseLanguageModel[Any] | ModelFactory, sdk_retries: bool = False
) -> BaseChatModel:
    built = model if isinstance(model, BaseLanguageModel) else model()
    if not sdk_retries and isinstance(built, BaseLanguageModel):
        built = without_sdk_retries(built)
    if isinstance(built, BaseChatModel):
        return built
    if isinstance(built, BaseLLM):
        from llmrouter._llm_chat import LLMChatAdapter

        return LLMChatAdapter(llm=built)
    raise ConfigurationError(
        f"ModelSpec {name!r}: the model factory returned {type(built).__name__}, "
        "expected a LangChain BaseChatModel or BaseLLM"
    )


def explain_validation_error(exc: ValidationError, what: str, allowed: Collection[str] = ()) -> str:
    """Turn a pydantic error into one readable message naming each field.

    An unknown keyword (pydantic's ``extra_forbidden``) is named with the closest
    of ``allowed``, so a typo such as ``budegt=`` says what was meant.
    """
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            close = closest(field, allowed)
            message = (
                f"unknown keyword; did you mean {close!r}?"
                if close
                else (
                    f"unknown keyword; {what} takes {sorted(allowed)}"
                    if allowed
                    else "unknown keyword"
                )
            )
        lines.append(f"  - {field}: {message}")
    return f"invalid {what}:\n" + "\n".join(lines)
