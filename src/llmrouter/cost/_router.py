"""`CostAwareRouter`: the cheapest (or fastest) eligible model, within budgets."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from llmrouter._tokens import TokenCounter, TokenizerLike
from llmrouter.core import BaseRouter, LatencyTracker, Ranking, RouteRequest
from llmrouter.cost._budget import Budget, BudgetGuard, BudgetStatus
from llmrouter.cost._learned import LearnedRule
from llmrouter.cost._options import call_number, configured_max_tokens
from llmrouter.cost._spending import Spending
from llmrouter.errors import NoEligibleModelError
from llmrouter.record import RouteRecord
from llmrouter.spec import ModelSpec
from llmrouter.state._ledger_api import BaseLedger
from llmrouter.state._sqlite_ledger import SpendLedger

__all__ = ["Blend", "CostAwareRouter"]


class Blend(BaseModel):
    """A weighted objective: the lowest score answers first.

    Each term is scaled to [0, 1] over the eligible models: estimated cost
    (divided by the dearest), observed latency (divided by the slowest; not yet
    observed counts as 0, so new models get measured) and missing quality
    (``1 - quality``; no score counts as 1).

    Examples:
        >>> from llmrouter.cost._router import Blend
        >>> Blend(cost=0.7, latency=0.3)
        Blend(cost=0.7, latency=0.3, quality=0.0)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cost: float = Field(default=1.0, ge=0)
    """Weight of the estimated cost."""
    latency: float = Field(default=0.0, ge=0)
    """Weight of the observed latency (exponentially weighted mean)."""
    quality: float = Field(default=0.0, ge=0)
    """Weight of the missing quality for the task."""


@dataclass
class _State:
    """A router's mutable state (one private attribute: pydantic's are slow to reach)."""

    counter: TokenCounter
    spending: Spending | None = None
    """Budget accounting (``None`` without a budget)."""
    latency: LatencyTracker = field(default_factory=LatencyTracker)
    model_limits: dict[str, int | None] = field(default_factory=dict)
    learned: LearnedRule | None = None
    """Learned routing (``None`` without a predictor)."""


@dataclass
class _Option:
    """One eligible model and what the ranking knows about it."""

    spec: ModelSpec
    index: int
    estimate: float
    quality: float | None
    latency: float | None


class CostAwareRouter(BaseRouter):
    """Send each request to the cheapest eligible model; fall back to the next cheapest.

    A model is eligible when it serves the task, the prompt plus the expected
    output fits its ``context_window``, its estimated cost is at most
    ``max_cost`` and its quality for the task is at least ``min_quality`` (models
    without a score for the task are kept). Candidates are ordered by
    ``objective``: ``"cheapest"`` (estimated cost; ties: higher quality, then
    lower observed latency), ``"fastest"`` (observed latency, exponentially
    weighted) or a `Blend`. The executor tries them in that order.

    The estimate is ``spec.cost(prompt tokens, expected output tokens)``: prompt
    tokens from the model's own tokenizer (local pipelines), a tokenizer named
    in ``tokenizers``, or the documented ``ceil(chars / 4)`` estimate (the record's
    ``extra["token_count"]`` says which); expected output is the call's
    ``max_tokens`` (still passed to the model), else the model's configured
    limit, else ``default_output_tokens``.

    Per call: ``max_cost=``, ``min_quality=``, ``user=`` (per-user budgets) as
    keywords or in ``config["metadata"]``. With a ``budget`` the estimate is
    reserved before the call and settled to the actual cost after it (see
    `llmrouter.cost._budget.Budget`); ``response_metadata["route"]`` says which model
    answered, its estimate and, in ``extra["excluded"]``, why others were skipped.

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter import ModelSpec
        >>> from llmrouter.cost._router import CostAwareRouter
        >>> def fake(name):
        ...     return FakeListChatModel(responses=[f"from {name}"])
        >>> local = ModelSpec(name="local", model=fake("local"), context_window=256)
        >>> small = ModelSpec(name="small", model=fake("small"), input_cost=0.15, output_cost=0.6)
        >>> big = ModelSpec(name="big", model=fake("big"), input_cost=2.5, output_cost=10.0)
        >>> router = CostAwareRouter(models=[local, small, big], max_cost=0.002)
        >>> msg = router.invoke("Summarize: " + "routers pick models. " * 30, max_tokens=300)
        >>> route = msg.response_metadata["route"]
        >>> route["model"], route["estimated_cost_usd"], route["extra"]["token_count"]
        ('small', 0.00020475, 'estimate')
        >>> for name, why in route["extra"]["excluded"].items():
        ...     print(f"{name}: {why}")
        local: prompt 165 + output 300 tokens exceed the context window of 256
        big: estimated $0.003413 > max_cost $0.002000
    """

    max_cost: float | None = Field(default=None, ge=0)
    """Most a request may cost, estimated, in USD (per call: ``max_cost=``)."""
    min_quality: float | None = Field(default=None, ge=0, le=1)
    """Least quality score for the task (per call: ``min_quality=``)."""
    objective: Literal["cheapest", "fastest"] | Blend = "cheapest"
    """How eligible models are ordered."""
    default_output_tokens: int = Field(default=256, gt=0)
    """Expected output tokens when neither the call nor the model sets ``max_tokens``."""
    tokenizers: dict[str, TokenizerLike] = Field(default_factory=dict)
    """Model name -> tokenizer for exact prompt counts (a local tokenizer directory or a
    ``str -> int`` callable). Local pipelines use their own."""
    budget: Budget | list[Budget] | None = None
    """Spend limits; windowed ones are persisted in ``spend_db``."""
    spend_db: str | Path | BaseLedger | None = None
    """Where windowed budgets keep spend: a SQLite path, ``":memory:"``, a shared
    ledger (`SpendLedger`), or ``None``: the ``state=`` ledger if a state is given,
    else ``~/.cache/llmrouter/spend.db``. Spend is kept per router name: routers
    with the same name and ledger share it."""
    latency_alpha: float = Field(default=0.3, gt=0, le=1)
    """Weight of the newest observation in the latency average."""
    reservation_timeout: float = Field(default=900.0, gt=0)
    """Seconds after which a reservation never settled (its process died mid-call)
    stops counting as in flight and counts as spent at its estimate."""
    predictor: Any = None
    """A `llmrouter.learn.QualityPredictor` (or the directory ``llmrouter fit`` wrote):
    models are then ordered by predicted quality with exactly one of ``cost_weight``,
    ``target_quality`` or ``strong_share`` (see `llmrouter.cost._learned`)."""
    cost_weight: float | None = Field(default=None, ge=0)
    """Learned routing: maximise predicted quality - ``cost_weight`` x estimated USD."""
    target_quality: float | None = Field(default=None, ge=0, le=1)
    """Learned routing: the cheapest model predicted to reach this quality."""
    strong_share: float | None = Field(default=None, ge=0, le=1)
    """Learned routing, two models: send about this share of requests to the stronger
    (threshold calibrated on the predictor's validation prompts)."""

    route_keywords = BaseRouter.route_keywords | {"max_cost", "min_quality", "user"}
    # max_tokens sizes the estimate but must still reach the model: read, not consumed
    peek_keywords = frozenset({"max_tokens"})

    _state: _State = PrivateAttr()

    @model_validator(mode="after")
    def _setup(self) -> CostAwareRouter:
        unknown = sorted(set(self.tokenizers) - {s.name for s in self.models})
        if unknown:
            raise ValueError(
                f"tokenizers names unknown models {unknown}; models are "
                f"{sorted(s.name for s in self.models)}"
            )
        self._state = state = _State(
            TokenCounter(self.tokenizers), latency=LatencyTracker(self.latency_alpha)
        )
        state.learned = LearnedRule.build(
            self.predictor,
            list(self.models),
            {
                "cost_weight": self.cost_weight,
                "target_quality": self.target_quality,
                "strong_share": self.strong_share,
            },
        )
        if state.learned is not None:
            self.predictor = state.learned.predictor  # a directory given: the loaded one
        budgets = [self.budget] if isinstance(self.budget, Budget) else list(self.budget or [])
        if budgets:
            ledger = None
            if any(b.windowed for b in budgets):
                ledger = self._ledger()
            state.spending = Spending(
                BudgetGuard(
                    budgets,
                    ledger,
                    scope=self.router_name,
                    reservation_timeout=self.reservation_timeout,
                )
            )
        return self

    def _ledger(self) -> BaseLedger:
        if isinstance(self.spend_db, BaseLedger):
            return self.spend_db
        if self.state is not None:
            if self.spend_db is not None:
                raise ValueError(
                    "give either state= (its ledger keeps spend) or spend_db=, not both"
                )
            from llmrouter.state import open_state

            return open_state(self.state).ledger()
        return SpendLedger(self.spend_db)

    @property
    def _fast(self) -> _State:
        # The state without pydantic's __getattr__ (private attributes are reached
        # through it, which costs microseconds on every request).
        return cast(_State, self.__pydantic_private__["_state"])  # type: ignore[index]

    # ------------------------------------------------------------ public extras

    def budget_status(self, user: str | None = None) -> list[BudgetStatus]:
        """Each budget's window: settled spend, and reservations of calls in flight
        (for ``user`` where a budget is per user)."""
        spending = self._fast.spending
        return [] if spending is None else spending.guard.status(user)

    @property
    def observed_latency(self) -> dict[str, float]:
        """Exponentially weighted latency (seconds) per model that has answered."""
        return self._fast.latency.snapshot()

    def observe_latency(self, model: str, seconds: float) -> None:
        """Add a latency observation (the router adds one per successful attempt).

        Use it to seed the average, e.g. from measurements of an earlier run.
        """
        self._fast.latency.observe(model, seconds)

    # ----------------------------------------------------------------- ranking

    def rank(self, request: RouteRequest) -> Ranking:
        state = self._fast
        learned = state.learned
        predicted = learned.predict(request.text) if learned is not None else None
        objective = "learned" if learned is not None else _objective_name(self.objective)
        extra: dict[str, Any] = {"objective": objective}
        if learned is not None and predicted is not None:
            extra["learned"] = learned.details(predicted)
        options, excluded = self._eligible_options(request, extra, state, predicted)
        if not options:
            task = f" for task {request.task!r}" if request.task is not None else ""
            raise NoEligibleModelError(
                f"{self.router_name}: no model can take this request{task}. Raise max_cost, "
                "lower min_quality, shorten the prompt or max_tokens, or add a model that "
                "serves the task:",
                excluded,
            )
        ordered, reason = self._order(options, predicted)
        preferred = ordered[0].spec.name
        spending = state.spending
        if spending is not None:  # last: it reserves spend, nothing may raise after it
            ranked = [(o.spec, o.estimate) for o in ordered]
            admission = spending.admit(self, request, ranked, extra)
            excluded.update(admission.excluded)
            ordered = [o for o in ordered if o.spec.name in admission.allowed]
            if ordered[0].spec.name != preferred:
                _, reason = self._order(ordered, predicted)
                reason += f" (downgraded by budget from {preferred!r})"
        if excluded:
            reason += "; skipped: " + ", ".join(excluded)
        extra["excluded"] = excluded
        extra["token_count"] = extra["token_counting"][ordered[0].spec.name]
        return Ranking(
            candidates=[o.spec for o in ordered],
            reason=reason,
            task=request.task,
            task_source=request.task_source,
            extra=extra,
            estimated_cost={o.spec.name: o.estimate for o in ordered},
        )

    async def arank(self, request: RouteRequest) -> Ranking:
        state = self._fast
        spending = state.spending
        if spending is not None and (spending.guard.windowed or state.learned is not None):
            # in a thread (SQLite I/O, or embedding the prompt); frees a cancelled reservation
            return await spending.rank_off_loop(self.rank, request)
        if state.learned is not None:  # embedding the prompt: milliseconds of CPU
            return await asyncio.to_thread(self.rank, request)
        return self.rank(request)

    def _eligible_options(
        self,
        request: RouteRequest,
        extra: dict[str, Any],
        state: _State,
        predicted: dict[str, float] | None = None,
    ) -> tuple[list[_Option], dict[str, str]]:
        task = request.task
        max_cost = call_number(request, "max_cost", self.max_cost)
        min_quality = call_number(request, "min_quality", self.min_quality)
        tools = request.tools.schemas if request.tools is not None else ()
        excluded: dict[str, str] = {}
        options: list[_Option] = []
        prompt_tokens: dict[str, int] = {}
        counting: dict[str, str] = {}
        output_tokens: dict[str, int] = {}
        unscored: list[str] = []
        latency = state.latency.snapshot()
        for index, spec in enumerate(self.models):
            name = spec.name
            if not spec.serves(task):
                excluded[name] = f"does not serve task {task!r} (serves {sorted(spec.tasks)})"
                continue
            if request.tools is not None and not spec.supports_tools:
                excluded[name] = "cannot call tools (its chat model has no bind_tools)"
                continue
            if predicted is not None:
                quality: float | None = predicted[name]
            else:
                quality = spec.quality.get(task) if task is not None else None
            if min_quality is not None and quality is None:
                unscored.append(name)
            if min_quality is not None and quality is not None and quality < min_quality:
                excluded[name] = f"quality {quality:.2f} < min_quality {min_quality:.2f}"
                continue
            count = state.counter.count(spec, request.messages, tools)
            out = self._output_tokens(spec, request, state)
            prompt_tokens[name], counting[name], output_tokens[name] = *count, out
            if spec.context_window is not None and count.tokens + out > spec.context_window:
                excluded[name] = (
                    f"prompt {count.tokens} + output {out} tokens exceed the context window "
                    f"of {spec.context_window}"
                )
                continue
            estimate = spec.cost(count.tokens, out)
            if max_cost is not None and estimate > max_cost:
                excluded[name] = f"estimated ${estimate:.6f} > max_cost ${max_cost:.6f}"
                continue
            options.append(_Option(spec, index, estimate, quality, latency.get(name)))
        extra.update(
            prompt_tokens=prompt_tokens, token_counting=counting, output_tokens=output_tokens
        )
        if max_cost is not None:
            extra["max_cost"] = max_cost
        if min_quality is not None:
            extra["min_quality"] = min_quality
            extra["unscored"] = unscored
        return options, excluded

    def _output_tokens(self, spec: ModelSpec, request: RouteRequest, state: _State) -> int:
        value = request.options.get("max_tokens")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if spec.name not in state.model_limits:  # models are configured once: look up once
            state.model_limits[spec.name] = configured_max_tokens(spec.chat_model)
        return state.model_limits[spec.name] or self.default_output_tokens

    def _order(
        self, options: list[_Option], predicted: dict[str, float] | None = None
    ) -> tuple[list[_Option], str]:
        learned = self._fast.learned
        if learned is not None and predicted is not None:
            return learned.order(options, predicted)
        objective = self.objective
        if objective == "cheapest":
            ordered = sorted(
                options,
                key=lambda o: (o.estimate, -_quality(o), _latency(o, math.inf), o.index),
            )
            return ordered, f"cheapest eligible model (est. ${ordered[0].estimate:.6f})"
        if objective == "fastest":
            ordered = sorted(
                options, key=lambda o: (_latency(o, 0.0), o.estimate, -_quality(o), o.index)
            )
            seen = ordered[0].latency
            how = f"{seen:.3f} s observed" if seen is not None else "latency not yet observed"
            return ordered, f"fastest eligible model ({how})"
        assert isinstance(objective, Blend)
        scores = _blend_scores(options, objective)
        ordered = sorted(options, key=lambda o: (scores[o.spec.name], o.estimate, o.index))
        best = scores[ordered[0].spec.name]
        weights = f"cost {objective.cost}, latency {objective.latency}, quality {objective.quality}"
        return ordered, f"best blend of {weights} (score {best:.3f})"

    # ------------------------------------------------------------- after a call

    def on_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        state = self._fast
        state.latency.observe_record(record)
        counting = record.extra.get("token_counting")
        if isinstance(counting, dict) and record.model in counting:
            record.extra["token_count"] = counting[record.model]
        if state.spending is not None:
            state.spending.finish(self, request, record)

    async def aon_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        spending = self._fast.spending
        if spending is not None and spending.guard.windowed:
            await asyncio.to_thread(self.on_finish, request, record)
        else:
            self.on_finish(request, record)

    # ----------------------------------------------- call wrappers (settle promptly)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        spending = self._fast.spending
        if spending is None:
            return super()._generate(messages, stop, run_manager, **kwargs)
        with spending.call(self):
            return super()._generate(messages, stop, run_manager, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        spending = self._fast.spending
        if spending is None:
            return await super()._agenerate(messages, stop, run_manager, **kwargs)
        async with spending.acall(self):
            return await super()._agenerate(messages, stop, run_manager, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        spending = self._fast.spending
        chunks = super()._stream(messages, stop, run_manager, **kwargs)
        yield from (chunks if spending is None else spending.stream(self, chunks))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        spending = self._fast.spending
        chunks = super()._astream(messages, stop, run_manager, **kwargs)
        if spending is None:
            async for chunk in chunks:
                yield chunk
            return
        async with contextlib.aclosing(spending.astream(self, chunks)) as guarded:
            async for chunk in guarded:
                yield chunk


def _objective_name(objective: str | Blend) -> str:
    return objective if isinstance(objective, str) else "blend"


def _quality(option: _Option) -> float:
    return option.quality if option.quality is not None else -1.0


def _latency(option: _Option, unknown: float) -> float:
    return option.latency if option.latency is not None else unknown


def _blend_scores(options: list[_Option], weights: Blend) -> dict[str, float]:
    top_cost = max(o.estimate for o in options) or 1.0
    top_latency = max((o.latency for o in options if o.latency is not None), default=0.0) or 1.0
    return {
        o.spec.name: weights.cost * o.estimate / top_cost
        + weights.latency * _latency(o, 0.0) / top_latency
        + weights.quality * (1.0 - o.quality if o.quality is not None else 1.0)
        for o in options
    }
