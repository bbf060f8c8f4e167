"""`ABRouter`: weighted, sticky A/B experiments -- split, canary and shadow.

Assignment is a pure function of ``(experiment, key)`` and the current shares,
so every process and every restart puts a user in the same variant without
stored state. Each request is persisted in an `ExperimentStore` when it
finishes; `ABRouter.report` turns the records into statistics
(`llmrouter.experiments`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import logging
import math
import random
import threading
import time
import uuid
import warnings
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr, field_validator, model_validator

from llmrouter._callbacks import PARENT_KEY
from llmrouter.errors import AllModelsFailedError, ConfigurationError, StreamInterruptedError
from llmrouter.experiments import ExperimentReport, report_from_store
from llmrouter.record import RouteRecord
from llmrouter.resilience.timeouts import acall_with_timeout, call_with_timeout
from llmrouter.routers.base import TOOLS_KEY, BaseRouter, Ranking, RouteRequest, ToolBinding
from llmrouter.spec import ModelSpec
from llmrouter.store import (
    ExperimentError,
    ExperimentEvent,
    ExperimentRecord,
    ExperimentStore,
    ExperimentStoreWarning,
    Feedback,
    UnknownRequestError,
    open_store,
)

logger = logging.getLogger(__name__)

Mode = Literal["split", "canary", "shadow"]

#: Stores that a router opened from ``store="sqlite:///..."`` (closed by `ABRouter.close`).
_OWNED_STORES: weakref.WeakSet[ExperimentStore] = weakref.WeakSet()


def assignment_point(experiment: str, key: str, salt: str = "") -> float:
    """Where ``key`` falls in [0, 1) for ``experiment``: SHA-256, the same in every process."""
    digest = hashlib.sha256(f"{experiment}\x1f{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def layout(
    candidates: Sequence[str], shares: Mapping[str, float]
) -> list[tuple[str, float, float]]:
    """The interval ``[low, high)`` of [0, 1) each candidate owns; the control owns the rest.

    Candidates are paired into ``ceil(n / 2)`` equal lanes in their fixed order:
    the first of a pair grows from the lane's left edge, the second from its
    right edge, and the control fills the middle. So changing a candidate's share
    moves only the users between its old and new edge, and only between that
    candidate and the control; users never move between two candidates. With one
    or two candidates any shares are possible; with more, the shares of a pair
    must fit in its lane.

    Raises:
        ValueError: if a pair's shares do not fit in their lane.
    """
    lanes = max(1, math.ceil(len(candidates) / 2))
    width = 1.0 / lanes
    out = []
    for lane in range(lanes):
        start, end = lane * width, (lane + 1) * width
        pair = list(candidates[2 * lane : 2 * lane + 2])
        used = sum(shares.get(name, 0.0) for name in pair)
        if used > width + 1e-9:
            raise ValueError(
                f"candidates {pair} share a lane of {width:.1%} of the traffic (with "
                f"{len(candidates)} candidates, pairs of candidates share lanes so that ramps "
                f"never move users between candidates) but their shares add up to {used:.1%}; "
                "lower them or run fewer candidates at once"
            )
        out.append((pair[0], start, start + shares.get(pair[0], 0.0)))
        if len(pair) == 2:
            out.append((pair[1], end - shares.get(pair[1], 0.0), end))
    return out


@dataclass(frozen=True)
class CanaryGuard:
    """Rolls a candidate back (share 0) when its recent requests look bad.

    Over the last ``window`` requests assigned to the candidate, once there are
    at least ``min_requests``: an error rate above ``max_error_rate``, or a p95
    latency above ``max_p95_latency_s``, trips the guard.

    Example:
        >>> from llmrouter.routers.ab import CanaryGuard
        >>> guard = CanaryGuard(max_error_rate=0.2, min_requests=5, window=10)
        >>> guard.check([(True, 0.1)] * 3 + [(False, 0.1)] * 2)["reason"]
        'error rate 40% > 20% over the last 5 requests'
    """

    max_error_rate: float | None = 0.1
    """Highest tolerated error rate in the window (``None``: not checked)."""
    max_p95_latency_s: float | None = None
    """Highest tolerated p95 latency in seconds (``None``: not checked)."""
    window: int = 50
    """How many recent candidate requests the guard looks at."""
    min_requests: int = 20
    """Requests needed in the window before the guard may trip."""

    def __post_init__(self) -> None:
        if self.max_error_rate is None and self.max_p95_latency_s is None:
            raise ConfigurationError(
                "CanaryGuard checks nothing: give max_error_rate and/or max_p95_latency_s"
            )
        if self.max_error_rate is not None and not 0 <= self.max_error_rate < 1:
            raise ConfigurationError(
                f"CanaryGuard.max_error_rate must lie in [0, 1), got {self.max_error_rate}"
            )
        if self.max_p95_latency_s is not None and not self.max_p95_latency_s > 0:
            raise ConfigurationError(
                f"CanaryGuard.max_p95_latency_s must be > 0, got {self.max_p95_latency_s}"
            )
        if not 1 <= self.min_requests <= self.window:
            raise ConfigurationError(
                f"CanaryGuard needs 1 <= min_requests <= window, got min_requests="
                f"{self.min_requests}, window={self.window}"
            )

    def check(self, outcomes: Sequence[tuple[bool, float]]) -> dict[str, Any] | None:
        """``None`` if ``(ok, latency_s)`` outcomes pass; else why not, with measurements."""
        n = len(outcomes)
        if n < self.min_requests:
            return None
        error_rate = sum(1 for ok, _ in outcomes if not ok) / n
        latencies = sorted(latency for _, latency in outcomes)
        p95 = latencies[math.ceil(0.95 * n) - 1]  # nearest rank
        measured = {"requests": n, "error_rate": error_rate, "p95_latency_s": p95}
        if self.max_error_rate is not None and error_rate > self.max_error_rate:
            why = f"error rate {error_rate:.0%} > {self.max_error_rate:.0%}"
            return {"reason": f"{why} over the last {n} requests", **measured}
        if self.max_p95_latency_s is not None and p95 > self.max_p95_latency_s:
            why = f"p95 latency {p95:.3f}s > {self.max_p95_latency_s:.3f}s"
            return {"reason": f"{why} over the last {n} requests", **measured}
        return None


class RampSchedule:
    """Shares to apply at fixed times after ``start``, e.g. a canary that widens daily.

    ``steps`` are ``(after, shares)`` pairs: ``after`` a `datetime.timedelta` or
    seconds, ``shares`` as for `ABRouter.ramp`. ``start`` (a `datetime.datetime`
    or Unix time) defaults to when the router is created; give it explicitly so
    every process and every restart follows the same clock. A rollback stops
    the schedule.

    Example:
        >>> from datetime import timedelta
        >>> from llmrouter.routers.ab import RampSchedule
        >>> schedule = RampSchedule([(timedelta(days=1), {"candidate": 0.25}),
        ...                          (timedelta(days=2), {"candidate": 0.5})])
        >>> [after for after, _ in schedule.steps]
        [86400.0, 172800.0]
    """

    def __init__(
        self,
        steps: Sequence[tuple[dt.timedelta | float, Mapping[str, float]]],
        *,
        start: dt.datetime | float | None = None,
    ) -> None:
        parsed = []
        for after, shares in steps:
            seconds = after.total_seconds() if isinstance(after, dt.timedelta) else float(after)
            if not seconds >= 0:
                raise ConfigurationError(f"RampSchedule step times must be >= 0, got {after!r}")
            parsed.append((seconds, dict(shares)))
        if not parsed:
            raise ConfigurationError("RampSchedule needs at least one (after, shares) step")
        self.steps: list[tuple[float, dict[str, float]]] = sorted(parsed, key=lambda s: s[0])
        """``(seconds after start, shares)``, in time order."""
        self.start: float | None = start.timestamp() if isinstance(start, dt.datetime) else start
        """Unix time of the start, or ``None`` for the router's creation time."""

    def __repr__(self) -> str:
        return f"RampSchedule({self.steps!r}, start={self.start!r})"


@dataclass
class _ShadowJob:
    """A copy of one control request, to run on a candidate in the background."""

    messages: list[BaseMessage]
    kwargs: dict[str, Any]
    stop: list[str] | None
    tools: ToolBinding | None
    parent_id: str
    key: str | None
    reference: str | None
    variants: list[str] = field(default_factory=list)


class ABRouter(BaseRouter):
    """An A/B experiment between model variants, as a chat model.

    Each request is assigned to a variant: sticky by key (``user=`` keyword,
    ``config["metadata"]["user"]``, ``thread_id``, or ``key_fn(request)``), the
    same in every process and after restarts (SHA-256 of experiment and key),
    or at random when there is no key. Weights are relative; after validation
    ``weights`` holds the normalised shares, which `ramp`, a `RampSchedule` or
    a canary rollback change. A ramp moves only the users it must: raising a
    candidate's share moves the users whose hash lies between its old and new
    edge from the control into it (see `layout`); nobody else moves.

    Modes:

    - ``"split"``: the assigned variant answers; if a candidate fails, the
      control answers instead (``fallback``) but the error counts against the
      candidate.
    - ``"canary"``: a split with a `CanaryGuard` (default ``CanaryGuard()``): when
      a candidate's recent error rate or p95 latency passes the guard, its share
      drops to 0 and a ``rollback`` event is stored (and honoured by routers
      created later on the same store until a `ramp` re-enables the candidate).
    - ``"shadow"``: the control answers every request; a ``shadow_rate`` share of
      requests also runs, on a copy, on every candidate in the background (a
      thread pool, or a task on async paths). The shadow never delays or fails
      the user's call; its latency, tokens, cost, errors and (``record_outputs``)
      output next to the control's are stored with ``shadow=True``.

    Every request is stored (`ExperimentRecord`) when it finishes; a store that
    cannot be written does not fail the call: the error is logged, warned
    (`ExperimentStoreWarning`), counted in `store_errors` and put in the route
    record's ``extra["experiment_store_error"]``. The route record's ``extra``
    holds ``experiment``, ``variant``, ``assignment`` and ``key``.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter import route_of
        >>> from llmrouter.routers.ab import ABRouter
        >>> ab = ABRouter(variants={"control": FakeListChatModel(responses=["A"]),
        ...                         "candidate": FakeListChatModel(responses=["B"])},
        ...               weights={"control": 0.9, "candidate": 0.1},
        ...               experiment="migrate-to-local", store=":memory:")
        >>> msg = ab.invoke("Hello", user="user-42")
        >>> route_of(msg).extra["variant"] == ab.variant_for("user-42")
        True
        >>> ab.record_feedback(msg, score=1)
        >>> ab.ramp(candidate=0.5)
        {'control': 0.5, 'candidate': 0.5}
        >>> sum(v.requests for v in ab.report().variants)
        1
        >>> ab.close()
    """

    variants: dict[str, ModelSpec]
    """Variant name -> model (a `ModelSpec`, or any LangChain model, wrapped under the
    variant's name). ``models`` is derived from it."""
    experiment: str
    """The experiment's name: keys records, and salts the assignment hash."""
    weights: dict[str, float] = Field(default_factory=dict)
    """Relative weight per variant (missing variants get 0; default: equal). After
    validation: the current shares, summing to 1."""
    control: str | None = None
    """The variant the others are compared against and fall back to (default: the first)."""
    mode: Mode = "split"
    """``"split"``, ``"canary"`` or ``"shadow"`` (see the class docstring)."""
    sticky: bool = True
    """Assign by key when there is one; False assigns every request at random."""
    key_fn: Callable[[RouteRequest], str | None] | None = None
    """Computes the assignment key from the request (``None``: fall back to user/thread)."""
    store: ExperimentStore = Field(default=None, validate_default=True)
    """Where records go: ``"sqlite:///experiments.db"``, ``":memory:"`` (the default), a
    path, or an `ExperimentStore`."""
    guard: CanaryGuard | None = None
    """Automatic rollback of candidates (default ``CanaryGuard()`` in canary mode)."""
    fallback: bool = True
    """Split/canary: when the assigned candidate fails, the control answers."""
    shadow_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """Shadow mode: share of requests (by key) mirrored to the candidates."""
    shadow_workers: int = Field(default=2, gt=0)
    """Threads running shadow calls of sync requests."""
    max_pending_shadows: int = Field(default=64, gt=0)
    """Shadow runs queued or running at most; beyond that they are dropped and counted."""
    record_outputs: bool = True
    """Shadow mode: store the prompt and both answers (truncated) for comparison."""
    max_output_chars: int = Field(default=4000, gt=0)
    """Truncation of stored prompts and outputs."""
    schedule: RampSchedule | None = None
    """Shares to apply at fixed times (see `RampSchedule`)."""

    route_keywords: ClassVar[frozenset[str]] = BaseRouter.route_keywords | {"user"}

    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)
    _layout: list[tuple[str, float, float]] = PrivateAttr(default_factory=list)
    _windows: dict[str, deque[tuple[bool, float]]] = PrivateAttr(default_factory=dict)
    _rolled_back: set[str] = PrivateAttr(default_factory=set)
    _store_errors: int = PrivateAttr(default=0)
    _shadows_dropped: int = PrivateAttr(default=0)
    _executor: concurrent.futures.ThreadPoolExecutor | None = PrivateAttr(default=None)
    _futures: set[concurrent.futures.Future[None]] = PrivateAttr(default_factory=set)
    _tasks: set[asyncio.Task[None]] = PrivateAttr(default_factory=set)
    _schedule_t0: float = PrivateAttr(default=0.0)
    _schedule_next: int = PrivateAttr(default=0)

    # ------------------------------------------------------------ validation

    @model_validator(mode="before")
    @classmethod
    def _variants_to_models(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        unknown = sorted(set(data) - set(cls.model_fields) - {"models"})
        if unknown:
            raise ValueError(
                f"unknown argument(s) {unknown}; ABRouter takes "
                f"{sorted(set(cls.model_fields) - set(BaseRouter.model_fields))} "
                "(and the chat-model settings temperature, max_tokens, stop, name, ...)"
            )
        if "models" in data:
            raise ValueError("ABRouter derives models from variants=; do not pass models=")
        variants = data.get("variants")
        if not isinstance(variants, Mapping) or not variants:
            raise ValueError(
                "variants must be a non-empty dict: variant name -> ModelSpec or chat model, "
                'e.g. variants={"control": gpt, "candidate": local}'
            )
        specs: dict[str, ModelSpec] = {}
        for name, value in variants.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"variant names must be non-empty strings, got {name!r}")
            if isinstance(value, ModelSpec):
                specs[name] = value
            elif isinstance(value, BaseLanguageModel):
                specs[name] = ModelSpec(name=name, model=value)
            else:
                raise ValueError(
                    f"variants[{name!r}] is a {type(value).__name__}; give a ModelSpec or a "
                    "LangChain chat model / LLM"
                )
        return {**data, "variants": specs, "models": list(specs.values())}

    @field_validator("store", mode="before")
    @classmethod
    def _open_store(cls, value: Any) -> ExperimentStore:
        if isinstance(value, ExperimentStore):
            return value
        store = open_store(value)
        _OWNED_STORES.add(store)
        return store

    @field_validator("experiment")
    @classmethod
    def _experiment_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("experiment must be a non-empty name, e.g. 'migrate-to-local'")
        return value

    @model_validator(mode="after")
    def _check_experiment(self) -> ABRouter:
        names = list(self.variants)
        if len(names) < 2:
            raise ValueError(
                f"an experiment needs at least two variants (a control and a candidate), "
                f"got {names}"
            )
        if self.control is None:
            self.control = names[0]
        elif self.control not in self.variants:
            raise ValueError(f"control {self.control!r} is not a variant; variants are {names}")
        self.weights = _normalised(self.weights, names)
        if self.mode == "canary" and self.guard is None:
            self.guard = CanaryGuard()
        if self.mode == "shadow" and self.guard is not None:
            raise ValueError(
                "a guard has no effect in shadow mode (candidates never answer users); "
                "use mode='canary' to guard live traffic"
            )
        self._layout = layout(self.candidates, self.weights)
        if self.schedule is not None:
            shares = dict(self.weights)
            for i, (_, step) in enumerate(self.schedule.steps):
                try:
                    shares = _ramped(shares, step, self.control, self.candidates)
                except ConfigurationError as exc:
                    raise ValueError(f"schedule step {i}: {exc}") from None
            start = self.schedule.start
            self._schedule_t0 = time.time() if start is None else start
            self._advance_schedule(persist=False)  # steps already due at start: silently
        self._restore_rollbacks()
        return self

    # ------------------------------------------------------------- state

    @property
    def candidates(self) -> list[str]:
        """The variants other than the control, in their fixed order."""
        return [name for name in self.variants if name != self.control]

    @property
    def store_errors(self) -> int:
        """How many store reads or writes failed (each was logged and warned)."""
        return self._store_errors

    @property
    def shadows_dropped(self) -> int:
        """Shadow runs skipped because ``max_pending_shadows`` were already in flight."""
        return self._shadows_dropped

    @property
    def rolled_back(self) -> set[str]:
        """Candidates the guard rolled back (cleared by a `ramp` that re-enables them)."""
        return set(self._rolled_back)

    def variant_for(self, key: str) -> str:
        """The variant ``key`` gets under the current shares (what a request with it gets)."""
        return self._variant_at(assignment_point(self.experiment, str(key)))

    def _variant_at(self, point: float) -> str:
        for name, low, high in self._layout:
            if low <= point < high:
                return name
        assert self.control is not None
        return self.control

    def ramp(
        self, shares: Mapping[str, float] | None = None, /, **named: float
    ) -> dict[str, float]:
        """Set candidates' shares of traffic; the control takes the rest. Returns all shares.

        ``ab.ramp(candidate=0.5)`` or ``ab.ramp({"candidate-v2": 0.5})``. Unnamed
        candidates keep their share. Naming the control too means the named
        shares plus the unnamed ones must sum to 1. Ramping a rolled-back
        candidate above 0 re-enables it. The change is stored as a ``ramp`` event.

        Raises:
            ConfigurationError: unknown variant, share outside [0, 1], shares that do
                not add up, or shares that do not fit (see `layout`).
            ExperimentError: in shadow mode (use ``shadow_rate``).
        """
        changes = {**(shares or {}), **named}
        if self.mode == "shadow":
            raise ExperimentError(
                "ramp() has no effect in shadow mode: the control answers everyone. Change "
                "shadow_rate, or start a split/canary router on the same experiment"
            )
        assert self.control is not None
        with self._lock:
            new = _ramped(self.weights, changes, self.control, self.candidates)
            self._apply_shares(new)
            self._rolled_back -= {name for name, share in new.items() if share > 0}
        self._save_event(ExperimentEvent(self.experiment, "ramp", detail={"shares": new}))
        return dict(new)

    def _apply_shares(self, shares: dict[str, float]) -> None:
        """Install new shares (call with the lock held)."""
        self._layout = layout(self.candidates, shares)
        self.weights = shares

    def _restore_rollbacks(self) -> None:
        """Honour rollbacks stored by earlier routers of this experiment."""
        if self.mode == "shadow":
            return
        try:
            events = self.store.events(self.experiment)
        except Exception as exc:
            self._store_failed(exc, "read the experiment's events")
            return
        rolled: dict[str, ExperimentEvent] = {}
        for event in events:
            if event.kind == "rollback" and event.variant in self.candidates:
                rolled[event.variant] = event
            elif event.kind == "ramp":
                for name, share in (event.detail.get("shares") or {}).items():
                    if share > 0:
                        rolled.pop(name, None)
        for name, event in rolled.items():
            if self.weights.get(name, 0.0) > 0:
                self._rollback_locally(name)
                message = (
                    f"ABRouter {self.experiment!r}: candidate {name!r} was rolled back "
                    f"({event.detail.get('reason', 'no reason stored')}); it stays at share 0 "
                    f"until ab.ramp({name}=...) re-enables it"
                )
                logger.warning(message)
                warnings.warn(message, ExperimentStoreWarning, stacklevel=3)

    def _rollback_locally(self, name: str) -> dict[str, float]:
        assert self.control is not None
        with self._lock:
            new = _ramped(self.weights, {name: 0.0}, self.control, self.candidates)
            self._apply_shares(new)
            self._rolled_back.add(name)
            self._windows.pop(name, None)
            if self.schedule is not None:
                self._schedule_next = len(self.schedule.steps)  # a rollback stops the schedule
        return new

    def _schedule_due(self) -> bool:
        schedule = self.schedule
        return (
            schedule is not None
            and self._schedule_next < len(schedule.steps)
            and time.time() >= self._schedule_t0 + schedule.steps[self._schedule_next][0]
        )

    def _advance_schedule(self, persist: bool = True) -> None:
        schedule = self.schedule
        assert schedule is not None and self.control is not None
        events = []
        with self._lock:
            while self._schedule_due():
                index = self._schedule_next
                new = _ramped(self.weights, schedule.steps[index][1], self.control, self.candidates)
                self._apply_shares(new)
                self._schedule_next += 1
                detail = {"shares": new, "reason": f"schedule step {index}"}
                events.append(ExperimentEvent(self.experiment, "ramp", detail=detail))
        if persist:
            for event in events:
                self._save_event(event)

    # ------------------------------------------------------------ ranking

    def rank(self, request: RouteRequest) -> Ranking:
        if self._schedule_due():
            self._advance_schedule()
        return self._rank(request)

    async def arank(self, request: RouteRequest) -> Ranking:
        if self._schedule_due():
            await asyncio.to_thread(self._advance_schedule)
        return self._rank(request)

    def _rank(self, request: RouteRequest) -> Ranking:
        assert self.control is not None
        key, source = self._key(request)
        by_key = key is not None and self.sticky
        point = assignment_point(self.experiment, key) if key and by_key else random.random()
        extra: dict[str, Any] = {
            "experiment": self.experiment,
            "assignment": source if by_key else "random",
            "key": key,
        }
        if self.mode == "shadow":
            variant = self.control
            mirror = (
                assignment_point(self.experiment, key, "shadow")
                if key and by_key
                else random.random()
            )
            extra["shadow"] = self.candidates if mirror < self.shadow_rate else []
        else:
            variant = self._variant_at(point)
        extra["variant"] = variant
        candidates = [self.variants[variant]]
        if self.mode != "shadow" and self.fallback and variant != self.control:
            candidates.append(self.variants[self.control])
        how = f"{source} {key!r}" if by_key else "random assignment"
        reason = f"experiment {self.experiment!r}: {how} -> variant {variant!r}"
        return Ranking(
            candidates, reason, task=request.task, task_source=request.task_source, extra=extra
        )

    def _key(self, request: RouteRequest) -> tuple[str | None, str]:
        if self.key_fn is not None:
            value = self.key_fn(request)
            if value is not None:
                return str(value), "key_fn"
        user = request.options.get("user")
        if user is None:
            user = request.metadata.get("user", request.metadata.get("user_id"))
        if user is not None:
            return str(user), "user"
        if request.thread_id is not None:
            return request.thread_id, "thread_id"
        return None, "random"

    # ------------------------------------------------------ recording

    def _finished(self, request: RouteRequest, record: RouteRecord) -> None:
        entry = self._entry(record)
        if entry is None:
            return
        self._persist(entry, record)
        event = self._observe(entry)
        if event is not None:
            self._save_event(event)

    async def _afinished(self, request: RouteRequest, record: RouteRecord) -> None:
        entry = self._entry(record)
        if entry is None:
            return
        await asyncio.to_thread(self._persist, entry, record)
        event = self._observe(entry)
        if event is not None:
            await asyncio.to_thread(self._save_event, event)

    def _entry(self, record: RouteRecord) -> ExperimentRecord | None:
        variant = record.extra.get("variant")
        if variant not in self.variants:
            return None
        spec_name = self.variants[variant].name
        # the variant failed if none of its tries (retries included) answered
        tries = [a for a in record.attempts if a.model == spec_name]
        error_type = error = None
        if not tries and not record.extra.get("abandoned"):
            error_type = "NotAttempted"
            error = "the variant could not take this request (e.g. tools bound that it cannot call)"
        elif tries and not any(a.ok for a in tries):
            error_type, error = tries[-1].error_type or "Error", tries[-1].error
        usage = record.usage
        return ExperimentRecord(
            request_id=record.request_id,
            experiment=self.experiment,
            variant=variant,
            model=record.model,
            key=record.extra.get("key"),
            latency_s=(
                record.latency_s
                if record.model is not None
                else sum(a.latency_s for a in record.attempts)
            ),
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            total_tokens=usage.total_tokens if usage else None,
            cost_usd=record.cost_usd,
            error_type=error_type,
            error=error,
        )

    def _persist(self, entry: ExperimentRecord, record: RouteRecord | None) -> None:
        """Write ``entry``; a failure is reported loudly but never raised."""
        try:
            self.store.add_record(entry)
        except Exception as exc:
            message = self._store_failed(exc, f"write request {entry.request_id}")
            if record is not None:
                record.extra["experiment_store_error"] = message

    def _save_event(self, event: ExperimentEvent) -> None:
        try:
            self.store.add_event(event)
        except Exception as exc:
            self._store_failed(exc, f"write a {event.kind} event")

    def _store_failed(self, exc: BaseException, what: str) -> str:
        with self._lock:
            self._store_errors += 1
            count = self._store_errors
        message = (
            f"ABRouter {self.experiment!r} could not {what} to {self.store!r} "
            f"({type(exc).__name__}: {exc}); the call went on. {count} store error(s) so far: "
            "check the store's path, permissions and disk space"
        )
        logger.error(message, exc_info=exc)
        warnings.warn(message, ExperimentStoreWarning, stacklevel=2)
        return message

    def _observe(self, entry: ExperimentRecord) -> ExperimentEvent | None:
        """Feed the canary guard; on a trip, roll back and return the event to store."""
        guard = self.guard
        if guard is None or entry.shadow or entry.variant == self.control:
            return None
        with self._lock:
            if entry.variant in self._rolled_back:
                return None
            window = self._windows.setdefault(entry.variant, deque(maxlen=guard.window))
            window.append((entry.ok, entry.latency_s or 0.0))
            verdict = guard.check(window)
            if verdict is None:
                return None
            shares = self._rollback_locally(entry.variant)
        logger.warning(
            "ABRouter %r rolled back %r: %s", self.experiment, entry.variant, verdict["reason"]
        )
        return ExperimentEvent(
            self.experiment, "rollback", entry.variant, detail={**verdict, "shares": shares}
        )

    # ------------------------------------------------------------ feedback

    def record_feedback(self, target: BaseMessage | RouteRecord | str, score: float) -> None:
        """Store a feedback score for a request of this experiment.

        ``target`` is the message the router returned (or a message of a router
        that nests this one), its `RouteRecord`, or the request id (also of a
        shadow run, from its record). ``score`` is any finite number, e.g. 1 / 0
        for thumbs up / down, or a rating.

        Raises:
            UnknownRequestError: the store has no such request in this experiment.
            ValueError: the score is not a finite number.
        """
        request_id = self._request_id(target)
        try:
            value = float(score)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"feedback score must be a finite number, got {score!r}")
        self.store.add_feedback(Feedback(request_id, self.experiment, value))

    async def arecord_feedback(self, target: BaseMessage | RouteRecord | str, score: float) -> None:
        """Async `record_feedback` (the store write runs in a worker thread)."""
        await asyncio.to_thread(self.record_feedback, target, score)

    def _request_id(self, target: BaseMessage | RouteRecord | str) -> str:
        if isinstance(target, str):
            return target
        if isinstance(target, BaseMessage):
            raw = target.response_metadata.get("route")
            if not isinstance(raw, dict):
                raise UnknownRequestError(
                    "(none)",
                    self.experiment,
                    hint="the message carries no route record: pass a message this router "
                    "(or a router nesting it) returned, or a request id",
                )
            top: dict[str, Any] = raw
        elif isinstance(target, RouteRecord):
            top = target.model_dump()
        else:
            raise TypeError(
                f"record_feedback takes a message, a RouteRecord or a request id, got "
                f"{type(target).__name__}"
            )
        request_id = str(top["request_id"])
        route: dict[str, Any] | None = top
        while route is not None:  # this router may be nested inside another
            if (route.get("extra") or {}).get("experiment") == self.experiment:
                return str(route["request_id"])
            route = route.get("inner")
        return request_id  # not this experiment's: the store will say whose it is

    # ------------------------------------------------------------- report

    def report(self, **options: Any) -> ExperimentReport:
        """Per-variant metrics and significance tests of this experiment (needs scipy).

        Keywords go to `llmrouter.experiments.build_report`: ``alpha``, ``power``,
        ``feedback_effect`` (Cohen's d to detect), ``error_effect`` (absolute
        error-rate increase to detect).
        """
        assert self.control is not None
        shares = dict(self.weights) if self.mode != "shadow" else {self.control: 1.0}
        return report_from_store(
            self.store,
            self.experiment,
            control=self.control,
            variants=list(self.variants),
            shares=shares,
            shadow_rate=self.shadow_rate if self.mode == "shadow" else None,
            mode=self.mode,
            **options,
        )

    # ------------------------------------------------------------- shadow

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.mode != "shadow" or self.streaming:  # streaming: _stream starts the shadow
            return super()._generate(messages, stop, run_manager, **kwargs)
        try:
            result = super()._generate(messages, stop, run_manager, **kwargs)
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            self._start_shadows(self._job(messages, stop, kwargs, exc.record.model_dump(), None))
            raise
        message = result.generations[0].message
        route = message.response_metadata.get("route") or {}
        self._start_shadows(self._job(messages, stop, kwargs, route, message.text))
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.mode != "shadow" or self.streaming:
            return await super()._agenerate(messages, stop, run_manager, **kwargs)
        try:
            result = await super()._agenerate(messages, stop, run_manager, **kwargs)
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            self._astart_shadows(self._job(messages, stop, kwargs, exc.record.model_dump(), None))
            raise
        message = result.generations[0].message
        route = message.response_metadata.get("route") or {}
        self._astart_shadows(self._job(messages, stop, kwargs, route, message.text))
        return result

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self.mode != "shadow":
            yield from super()._stream(messages, stop, run_manager, **kwargs)
            return
        parts: list[str] = []
        route: dict[str, Any] = {}
        try:
            for chunk in super()._stream(messages, stop, run_manager, **kwargs):
                parts.append(chunk.message.text)
                route = chunk.message.response_metadata.get("route") or route
                yield chunk
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            self._start_shadows(self._job(messages, stop, kwargs, exc.record.model_dump(), None))
            raise
        self._start_shadows(self._job(messages, stop, kwargs, route, "".join(parts)))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.mode != "shadow":
            async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                yield chunk
            return
        parts: list[str] = []
        route: dict[str, Any] = {}
        try:
            async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                parts.append(chunk.message.text)
                route = chunk.message.response_metadata.get("route") or route
                yield chunk
        except (AllModelsFailedError, StreamInterruptedError) as exc:
            self._astart_shadows(self._job(messages, stop, kwargs, exc.record.model_dump(), None))
            raise
        self._astart_shadows(self._job(messages, stop, kwargs, route, "".join(parts)))

    def _job(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        route: dict[str, Any],
        reference: str | None,
    ) -> _ShadowJob | None:
        """The copy of this request for the shadow candidates (``None``: not mirrored)."""
        extra = route.get("extra") or {}
        names = [name for name in extra.get("shadow") or [] if name in self.variants]
        if not names or "request_id" not in route:
            return None
        call = {
            k: v
            for k, v in kwargs.items()
            if k not in self.route_keywords and k not in (PARENT_KEY, TOOLS_KEY)
        }
        for key, default in (("temperature", self.temperature), ("max_tokens", self.max_tokens)):
            if default is not None:
                call.setdefault(key, default)
        tools = kwargs.get(TOOLS_KEY)
        return _ShadowJob(
            messages=list(messages),
            kwargs=call,
            stop=stop if stop is not None else self.stop,
            tools=tools if isinstance(tools, ToolBinding) else None,
            parent_id=str(route["request_id"]),
            key=extra.get("key"),
            reference=reference,
            variants=names,
        )

    def _start_shadows(self, job: _ShadowJob | None) -> None:
        """Queue the job on the shadow thread pool; never raises, never waits."""
        if job is None:
            return
        try:
            for name in job.variants:
                with self._lock:
                    if len(self._futures) >= self.max_pending_shadows:
                        self._drop_shadow(name)
                        continue
                    if self._executor is None:
                        self._executor = concurrent.futures.ThreadPoolExecutor(
                            self.shadow_workers, thread_name_prefix="llmrouter-shadow"
                        )
                    future = self._executor.submit(self._run_shadow, name, job)
                    self._futures.add(future)
                future.add_done_callback(self._shadow_done)
        except Exception:  # e.g. interpreter shutting down: the user's call must go on
            logger.exception("ABRouter %r could not start a shadow run", self.experiment)

    def _shadow_done(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def _astart_shadows(self, job: _ShadowJob | None) -> None:
        """Start the job as tasks on the running loop (references held until done)."""
        if job is None:
            return
        try:
            loop = asyncio.get_running_loop()
            for name in job.variants:
                with self._lock:
                    if len(self._tasks) >= self.max_pending_shadows:
                        self._drop_shadow(name)
                        continue
                    task = loop.create_task(self._arun_shadow(name, job))
                    self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except Exception:
            logger.exception("ABRouter %r could not start a shadow run", self.experiment)

    def _drop_shadow(self, name: str) -> None:
        self._shadows_dropped += 1
        logger.warning(
            "ABRouter %r dropped a shadow run of %r: %d already pending (max_pending_shadows); "
            "%d dropped so far",
            self.experiment,
            name,
            self.max_pending_shadows,
            self._shadows_dropped,
        )

    def _run_shadow(self, name: str, job: _ShadowJob) -> None:
        spec, started = self.variants[name], time.perf_counter()
        message: BaseMessage | None = None
        error: BaseException | None = None
        try:
            runnable = self._shadow_runnable(spec, job)
            message = call_with_timeout(
                lambda: runnable.invoke(job.messages, stop=job.stop, **job.kwargs),
                spec.attempt_timeout or self.timeout,
                spec.name,
            )
        except Exception as exc:
            error = exc
        self._persist(self._shadow_entry(name, job, started, message, error), None)

    async def _arun_shadow(self, name: str, job: _ShadowJob) -> None:
        spec, started = self.variants[name], time.perf_counter()
        message: BaseMessage | None = None
        error: BaseException | None = None
        try:
            call = self._shadow_runnable(spec, job).ainvoke(
                job.messages, stop=job.stop, **job.kwargs
            )
            message = await acall_with_timeout(
                call, spec.attempt_timeout or self.timeout, spec.name
            )
        except asyncio.CancelledError as exc:  # e.g. the event loop is closing
            self._persist(self._shadow_entry(name, job, started, None, exc), None)
            raise
        except Exception as exc:
            error = exc
        await asyncio.to_thread(
            self._persist, self._shadow_entry(name, job, started, message, error), None
        )

    def _shadow_runnable(self, spec: ModelSpec, job: _ShadowJob) -> Any:
        if job.tools is not None and not spec.supports_tools:
            raise ExperimentError(f"{spec.name!r} cannot call the tools bound to the request")
        return self._runnable(spec, job.tools)

    def _shadow_entry(
        self,
        name: str,
        job: _ShadowJob,
        started: float,
        message: BaseMessage | None,
        error: BaseException | None,
    ) -> ExperimentRecord:
        spec, limit = self.variants[name], self.max_output_chars
        usage = getattr(message, "usage_metadata", None) if message is not None else None
        entry = ExperimentRecord(
            request_id=uuid.uuid4().hex,
            experiment=self.experiment,
            variant=name,
            model=spec.name if message is not None else None,
            key=job.key,
            shadow=True,
            parent_id=job.parent_id,
            latency_s=time.perf_counter() - started,
            error_type=type(error).__name__ if error is not None else None,
            error=str(error)[:500] if error is not None else None,
        )
        if usage:
            entry.input_tokens = usage.get("input_tokens", 0)
            entry.output_tokens = usage.get("output_tokens", 0)
            entry.total_tokens = usage.get("total_tokens", 0)
            entry.cost_usd = spec.cost(entry.input_tokens, entry.output_tokens)
        if self.record_outputs:
            prompt = RouteRequest(messages=job.messages).text
            entry.prompt = prompt[:limit]
            entry.output = message.text[:limit] if message is not None else None
            entry.reference_output = job.reference[:limit] if job.reference is not None else None
        return entry

    def wait_shadows(self, timeout: float | None = None) -> bool:
        """Wait for the shadow runs of sync calls; True if none is left running."""
        with self._lock:
            futures = list(self._futures)
        if not futures:
            return True
        _, pending = concurrent.futures.wait(futures, timeout=timeout)
        return not pending

    async def await_shadows(self, timeout: float | None = None) -> bool:
        """Wait for the shadow runs of async calls on this loop (and of sync calls)."""
        loop = asyncio.get_running_loop()
        tasks = [t for t in list(self._tasks) if t.get_loop() is loop]
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
        threads_done = await asyncio.to_thread(self.wait_shadows, timeout)
        return not pending and threads_done

    def close(self, timeout: float | None = None) -> None:
        """Wait for shadow runs (up to ``timeout``), stop their threads, close an owned store.

        A store the router opened from ``store="sqlite:///..."`` or ``":memory:"``
        is closed; a store instance passed in is left to its owner.
        """
        done = self.wait_shadows(timeout)
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=done, cancel_futures=True)
        if not done:
            logger.warning(
                "ABRouter %r closed with shadow runs still running; their records may be lost",
                self.experiment,
            )
        if self.store in _OWNED_STORES:
            self.store.close()

    async def aclose(self, timeout: float | None = None) -> None:
        """Async `close`: waits for async shadow runs too."""
        await self.await_shadows(timeout)
        await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> ABRouter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> ABRouter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {**super()._identifying_params, "experiment": self.experiment, "mode": self.mode}


def _normalised(weights: Mapping[str, float], names: list[str]) -> dict[str, float]:
    """Relative weights -> shares summing to 1, in variant order (missing: 0)."""
    if not weights:
        return {name: 1.0 / len(names) for name in names}
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"weights name unknown variant(s) {unknown}; variants are {names}")
    for name, weight in weights.items():
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weights[{name!r}] must be a finite number >= 0, got {weight!r}")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError(
            f"weights must sum to a positive number, got {dict(weights)}; "
            'e.g. weights={"control": 0.9, "candidate": 0.1}'
        )
    return {name: weights.get(name, 0.0) / total for name in names}


def _ramped(
    current: Mapping[str, float],
    changes: Mapping[str, float],
    control: str,
    candidates: list[str],
) -> dict[str, float]:
    """Shares after setting ``changes`` (absolute shares); the control takes the rest."""
    names = [control, *candidates]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise ConfigurationError(f"unknown variant(s) {unknown}; variants are {names}")
    for name, share in changes.items():
        if not (isinstance(share, (int, float)) and 0 <= share <= 1):
            raise ConfigurationError(f"share of {name!r} must lie in [0, 1], got {share!r}")
    new = {name: float(changes.get(name, current.get(name, 0.0))) for name in candidates}
    rest = 1.0 - sum(new.values())
    if control in changes:
        if abs(rest - changes[control]) > 1e-9:
            raise ConfigurationError(
                f"shares must sum to 1: control {changes[control]} + candidates "
                f"{sum(new.values())}; name only the candidates to let the control take the rest"
            )
    elif rest < -1e-9:
        raise ConfigurationError(
            f"candidate shares add up to {1 - rest:.3f} > 1; lower them (the control takes "
            "what is left)"
        )
    own = float(changes[control]) if control in changes else max(0.0, rest)
    shares = {control: round(own, 12), **{name: round(v, 12) for name, v in new.items()}}
    try:
        layout(candidates, shares)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    return {name: shares[name] for name in names}
