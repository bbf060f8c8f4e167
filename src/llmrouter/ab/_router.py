"""`ABRouter`: weighted, sticky A/B experiments -- split, canary and shadow.

Assignment is a pure function of ``(experiment, key)`` and the current shares
(`llmrouter.ab._assignment`), so every process and every restart puts a
user in the same variant without stored state. Each request is persisted in an
`ExperimentStore` when it finishes; `ABRouter.report` turns the records into
statistics (`llmrouter.ab._report`). Canary rollbacks live in
`llmrouter.ab._guard`, shadow runs in `llmrouter.ab._shadow`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage
from pydantic import Field, PrivateAttr, field_validator, model_validator

from llmrouter.ab._assignment import (
    Lanes,
    RampSchedule,
    ScheduleCursor,
    assignment_point,
    layout,
    normalised_weights,
    ramped_shares,
    variant_at,
)
from llmrouter.ab._guard import CanaryGuard, CanaryWindows, standing_rollbacks
from llmrouter.ab._records import experiment_record, request_id_of
from llmrouter.ab._report import ExperimentReport, report_from_store
from llmrouter.ab._shadow import ShadowJob, ShadowRunner, ShadowTarget
from llmrouter.ab._store import (
    ExperimentEvent,
    ExperimentRecord,
    ExperimentStore,
    ExperimentStoreWarning,
    Feedback,
    SQLiteStore,
    open_store,
)
from llmrouter.core import BaseRouter, Ranking, RouteRequest
from llmrouter.errors import ConfigurationError, ExperimentError, reject_unknown_keywords
from llmrouter.record import RouteRecord
from llmrouter.spec import ModelSpec

__all__ = ["ABRouter", "CanaryGuard", "Mode", "RampSchedule", "assignment_point", "layout"]

logger = logging.getLogger(__name__)

Mode = Literal["split", "canary", "shadow"]

#: Stores that a router opened from ``store="sqlite:///..."`` (closed by `ABRouter.close`).
_OWNED_STORES: weakref.WeakSet[ExperimentStore] = weakref.WeakSet()


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

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter import route_of
        >>> from llmrouter.ab._router import ABRouter
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
    sync_every: float | None = Field(default=5.0, gt=0)
    """Seconds between reads of the store's events, so that ramps and rollbacks stored
    by other routers of the experiment (other processes or machines sharing the store)
    apply here too; ``None``: read them once, at start."""

    route_keywords: ClassVar[frozenset[str]] = BaseRouter.route_keywords | {"user"}

    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)
    _lanes: Lanes = PrivateAttr(default_factory=list)
    _windows: CanaryWindows = PrivateAttr(default_factory=CanaryWindows)
    _rolled_back: set[str] = PrivateAttr(default_factory=set)
    _store_errors: int = PrivateAttr(default=0)
    _shadows: ShadowRunner = PrivateAttr()
    _cursor: ScheduleCursor | None = PrivateAttr(default=None)
    _events_seen: int = PrivateAttr(default=0)
    _next_sync: float = PrivateAttr(default=0.0)

    # ------------------------------------------------------------ validation

    @model_validator(mode="before")
    @classmethod
    def _variants_to_models(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        reject_unknown_keywords("ABRouter", sorted(data), set(cls.model_fields))
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
        if self.state is not None and "store" not in self.model_fields_set:
            from llmrouter.state import open_state

            default, shared = self.store, open_state(self.state).experiment_store()
            self.__dict__["store"] = shared  # not a setting: pickling keeps the state URL
            if default in _OWNED_STORES:
                _OWNED_STORES.discard(default)
                default.close()
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
        self.weights = normalised_weights(self.weights, names)
        if self.mode == "canary" and self.guard is None:
            self.guard = CanaryGuard()
        if self.mode == "shadow" and self.guard is not None:
            raise ValueError(
                "a guard has no effect in shadow mode (candidates never answer users); "
                "use mode='canary' to guard live traffic"
            )
        self._lanes = layout(self.candidates, self.weights)
        self._shadows = ShadowRunner(
            self._persist, workers=self.shadow_workers, max_pending=self.max_pending_shadows
        )
        # A router dropped without close() still stops its threads and closes its store.
        owned = self.store if self.store in _OWNED_STORES else None
        weakref.finalize(self, _release, self._shadows, owned)
        if self.schedule is not None:
            shares = dict(self.weights)
            for i, (_, step) in enumerate(self.schedule.steps):
                try:
                    shares = ramped_shares(shares, step, self.control, self.candidates)
                except ConfigurationError as exc:
                    raise ValueError(f"schedule step {i}: {exc}") from None
            self._cursor = ScheduleCursor(self.schedule)
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
        return self._shadows.dropped

    @property
    def rolled_back(self) -> set[str]:
        """Candidates the guard rolled back (cleared by a `ramp` that re-enables them)."""
        return set(self._rolled_back)

    def variant_for(self, key: str) -> str:
        """The variant ``key`` gets under the current shares (what a request with it gets)."""
        return self._variant_at(assignment_point(self.experiment, str(key)))

    def _variant_at(self, point: float) -> str:
        assert self.control is not None
        return variant_at(self._lanes, point, self.control)

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
        with self._lock:
            new = self._set_shares(changes)
            self._rolled_back -= {name for name, share in new.items() if share > 0}
        self._save_event(ExperimentEvent(self.experiment, "ramp", detail={"shares": new}))
        return dict(new)

    def _set_shares(self, changes: Mapping[str, float]) -> dict[str, float]:
        """Apply share ``changes`` (see `ramped_shares`); returns the new shares."""
        assert self.control is not None
        with self._lock:
            new = ramped_shares(self.weights, changes, self.control, self.candidates)
            self._lanes = layout(self.candidates, new)
            self.weights = new
        return new

    def _restore_rollbacks(self) -> None:
        """Honour rollbacks stored by earlier routers of this experiment."""
        if self.mode == "shadow":
            return
        try:
            events = self.store.events(self.experiment)
        except Exception as exc:
            self._store_failed(exc, "read the experiment's events")
            return
        self._events_seen = len(events)
        self._next_sync = time.monotonic() + (self.sync_every or 0.0)
        for name, event in standing_rollbacks(events, self.candidates).items():
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
        with self._lock:
            new = self._set_shares({name: 0.0})
            self._rolled_back.add(name)
            self._windows.forget(name)
            if self._cursor is not None:
                self._cursor.stop()  # a rollback stops the schedule
        return new

    def _schedule_due(self) -> bool:
        return self._cursor is not None and self._cursor.due()

    def _advance_schedule(self, persist: bool = True) -> None:
        cursor = self._cursor
        assert cursor is not None
        events = []
        with self._lock:
            while cursor.due():
                index, step = cursor.advance()
                new = self._set_shares(step)
                detail = {"shares": new, "reason": f"schedule step {index}"}
                events.append(ExperimentEvent(self.experiment, "ramp", detail=detail))
        if persist:
            for event in events:
                self._save_event(event)

    # ------------------------------------------------------------ ranking

    def rank(self, request: RouteRequest) -> Ranking:
        if self._sync_due():
            self._sync_events()
        if self._schedule_due():
            self._advance_schedule()
        return self._rank(request)

    async def arank(self, request: RouteRequest) -> Ranking:
        if self._sync_due():
            await asyncio.to_thread(self._sync_events)
        if self._schedule_due():
            await asyncio.to_thread(self._advance_schedule)
        return self._rank(request)

    def _sync_due(self) -> bool:
        return (
            self.sync_every is not None
            and self.mode != "shadow"
            and time.monotonic() >= self._next_sync
        )

    def _sync_events(self) -> None:
        """Apply the ramps and rollbacks stored since the last read (ours included:
        applying them again changes nothing), in the order they were stored."""
        with self._lock:
            if not self._sync_due():
                return  # another thread just did
            self._next_sync = time.monotonic() + (self.sync_every or 0.0)
        try:
            events = self.store.events(self.experiment)
        except Exception as exc:
            self._store_failed(exc, "read the experiment's events")
            return
        with self._lock:
            new, self._events_seen = events[self._events_seen :], len(events)
            for event in new:
                shares = event.detail.get("shares") or {}
                if event.kind == "ramp" and shares:
                    candidates = {k: v for k, v in shares.items() if k in self.candidates}
                    self._set_shares(candidates)
                    self._rolled_back -= {k for k, v in candidates.items() if v > 0}
                elif event.kind == "rollback" and self.weights.get(event.variant or "", 0) > 0:
                    self._rollback_locally(str(event.variant))
                    logger.warning(
                        "ABRouter %r: candidate %r was rolled back elsewhere (%s)",
                        self.experiment,
                        event.variant,
                        event.detail.get("reason", "no reason stored"),
                    )

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

    def on_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        self._book(record)
        self._shadows.start(self._shadow_job(request, record))

    async def aon_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        await asyncio.to_thread(self._book, record)
        self._shadows.astart(self._shadow_job(request, record))

    def _book(self, record: RouteRecord) -> None:
        """Store the request's record and feed the canary guard."""
        entry = experiment_record(record, self.experiment, self.variants)
        if entry is None:
            return
        self._persist(entry, record)
        event = self._observe(entry)
        if event is not None:
            self._save_event(event)

    def _persist(self, entry: ExperimentRecord, record: RouteRecord | None = None) -> None:
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
            verdict = self._windows.observe(guard, entry.variant, entry.ok, entry.latency_s or 0.0)
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
        request_id = request_id_of(target, self.experiment)
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

    # ------------------------------------------------------------- report

    def report(self, **options: Any) -> ExperimentReport:
        """Per-variant metrics and significance tests of this experiment (needs scipy).

        Keywords go to `llmrouter.ab._report.build_report`: ``alpha``, ``power``,
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

    def _shadow_job(self, request: RouteRequest, record: RouteRecord) -> ShadowJob | None:
        """The copy of this request for the shadow candidates (``None``: not mirrored)."""
        names = [name for name in record.extra.get("shadow") or [] if name in self.variants]
        if not names or record.extra.get("abandoned"):
            return None  # a stream the caller stopped reading has no answer to compare
        outputs = self.max_output_chars if self.record_outputs else None
        return ShadowJob(
            experiment=self.experiment,
            targets=[self._shadow_target(name) for name in names],
            messages=list(request.messages),
            kwargs=dict(request.model_kwargs),
            stop=request.stop,
            tools=request.tools,
            parent_id=record.request_id,
            key=record.extra.get("key"),
            outputs=outputs,
            prompt=request.text if outputs is not None else None,
            reference=request.answer,
        )

    def _shadow_target(self, name: str) -> ShadowTarget:
        spec = self.variants[name]
        return ShadowTarget(name, spec, spec.attempt_timeout or self.timeout)

    def wait_shadows(self, timeout: float | None = None) -> bool:
        """Wait for the shadow runs of sync calls; True if none is left running."""
        return self._shadows.wait(timeout)

    async def await_shadows(self, timeout: float | None = None) -> bool:
        """Wait for the shadow runs of async calls on this loop (and of sync calls)."""
        return await self._shadows.await_all(timeout)

    def _init_kwargs(self) -> dict[str, Any]:
        kwargs = super()._init_kwargs()
        kwargs.pop("models", None)  # derived from variants
        if self.store in _OWNED_STORES and isinstance(self.store, SQLiteStore):
            kwargs["store"] = self.store.path  # the copy opens (and owns) its own
        return kwargs

    def close(self, timeout: float | None = None) -> None:
        """Wait for shadow runs (up to ``timeout``), stop their threads, close an owned store.

        A store the router opened from ``store="sqlite:///..."`` or ``":memory:"``
        is closed; a store instance passed in is left to its owner.
        """
        if not self._shadows.close(timeout):
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


def _release(shadows: ShadowRunner, store: ExperimentStore | None) -> None:
    """What a garbage-collected router held: shadow threads, and a store it opened."""
    shadows.shutdown()
    if store is not None:
        store.close()
