"""`ModelRouter`: route each request by its task."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from llmrouter._tokens import TokenCounter
from llmrouter.core import BaseRouter, Ranking, RouteRequest
from llmrouter.errors import UnknownTaskError
from llmrouter.record import RouteRecord
from llmrouter.spec import ModelSpec
from llmrouter.state._threads import LocalThreads, ThreadMemory
from llmrouter.task._classifiers import BaseClassifier, Classification


class ModelRouter(BaseRouter):
    """Route each request to a model by its task.

    The task comes from, in order: the ``task`` keyword of the call (or
    ``.bind(task=...)``), ``config["metadata"]["task"]``, the ``classifier``;
    with no task the ``default`` model answers, and the general models (see
    `is_general`) are its fallbacks. A task with an entry in ``routes`` goes to
    that model; otherwise to the first model that lists the task in its
    ``tasks``; otherwise to ``default``. Fallbacks, in order: the other models
    that serve the task (including general models with no ``tasks``), then
    ``default``. Without ``default=``, a router with one model, or with exactly
    one general model, uses that model as its default.

    Models whose ``context_window`` is smaller than the prompt (estimated as
    `CostAwareRouter` does, plus the call's ``max_tokens``) are tried after the
    models it fits; the record's ``extra["context_window"]`` says which.

    A conversation stays on the model it started with while its task stays the
    same: pass ``thread_id`` as a keyword or in ``config["configurable"]``.

    A classifier that raises does not fail the request: it is treated as "no
    task" and the error is kept in the record (``extra["classifier_error"]``).

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter import ModelRouter, ModelSpec
        >>> coder = ModelSpec(name="coder", model=FakeListChatModel(responses=["def f(): ..."]),
        ...                   tasks={"code_generation"})
        >>> chat = ModelSpec(name="chat", model=FakeListChatModel(responses=["Hello!"]))
        >>> router = ModelRouter(models=[coder, chat], default="chat")
        >>> msg = router.invoke("Write quicksort", task="code_generation")
        >>> msg.response_metadata["model_name"]
        'coder'
        >>> router.invoke("Hi there").response_metadata["route"]["reason"]
        'no task given: default model'
    """

    routes: dict[str, str] = Field(default_factory=dict)
    """Task name -> model name."""
    default: str | None = None
    """Model that answers requests with no task, or a task nothing else serves."""
    classifier: BaseClassifier | None = None
    """Decides the task when the call gives none (see `llmrouter.task._classifiers`)."""
    sticky_threads: bool = True
    """Keep a conversation (``thread_id``) on one model while its task is unchanged."""
    max_threads: int = Field(default=10_000, gt=0)
    """How many threads to remember in this process (least recently used are
    forgotten). With ``state=``, conversations are remembered there, shared by every
    process, and forgotten a day after their last answer."""
    general_tasks: frozenset[str] = frozenset({"chat", "general"})
    """A model whose ``tasks`` is empty or includes one of these is a general model:
    a fallback for requests with no task (and the implicit default when it is the only one)."""
    predictor: Any = None
    """A `llmrouter.learn.QualityPredictor` (or the directory ``llmrouter fit`` wrote):
    the models that can take a request are tried best predicted quality first (a
    conversation still stays on its model). Every model must be one it predicts for."""

    _threads: ThreadMemory = PrivateAttr(default_factory=LocalThreads)
    _table_cache: dict[str | None, tuple[list[ModelSpec], str]] = PrivateAttr(default_factory=dict)
    _counter: TokenCounter = PrivateAttr(default_factory=TokenCounter)
    _windows: bool = PrivateAttr(default=False)  # does any model declare a context window?

    @model_validator(mode="after")
    def _thread_memory(self) -> ModelRouter:
        if self.state is None:
            self._threads = LocalThreads(self.max_threads)
        else:
            from llmrouter.state import open_state

            shared = open_state(self.state)
            self._threads = shared.thread_memory(self.router_name, self.max_threads)
        return self

    @model_validator(mode="after")
    def _routes_point_at_models(self) -> ModelRouter:
        names = {s.name for s in self.models}
        for task, target in self.routes.items():
            if target not in names:
                raise ValueError(
                    f"routes[{task!r}] names unknown model {target!r}; models are {sorted(names)}"
                )
            spec = next(s for s in self.models if s.name == target)
            if not spec.serves(task):
                raise ValueError(
                    f"routes[{task!r}] -> {target!r}, but that model declares tasks "
                    f"{sorted(spec.tasks)}; add {task!r} to its tasks or route elsewhere"
                )
        if self.default is not None and self.default not in names:
            raise ValueError(
                f"default names unknown model {self.default!r}; models are {sorted(names)}"
            )
        self._windows = any(s.context_window is not None for s in self.models)
        if self.predictor is not None:
            from llmrouter.learn import QualityPredictor

            self.predictor = QualityPredictor.coerce(self.predictor)
            self.predictor.check_covers([s.name for s in self.models])
        return self

    def is_general(self, spec: ModelSpec) -> bool:
        """True for a general model: no ``tasks``, or one of `general_tasks` among them."""
        return not spec.tasks or not spec.tasks.isdisjoint(self.general_tasks)

    @property
    def general_models(self) -> list[ModelSpec]:
        """The general models, in the order given: fallbacks of requests with no task."""
        return [s for s in self.models if self.is_general(s)]

    def _default(self) -> tuple[ModelSpec, str] | None:
        """The default model and how it was chosen (``None``: no default)."""
        if self.default is not None:
            return self.spec(self.default), "default model"
        if len(self.models) == 1:
            return self.models[0], "the only model"
        general = self.general_models
        if len(general) == 1:
            return general[0], "the only general model"
        return None

    @property
    def known_tasks(self) -> list[str]:
        """Every task this router can route by name."""
        tasks = set(self.routes)
        for spec in self.models:
            tasks |= spec.tasks
        return sorted(tasks)

    # ---------------------------------------------------------------- ranking

    def rank(self, request: RouteRequest) -> Ranking:
        found: Classification | BaseException | None = None
        details: dict[str, Any] = {}
        if request.task is None and self.classifier is not None:
            try:
                found, details = self.classifier.explain(request.text)
            except Exception as exc:  # a broken classifier must not fail the request
                found = exc
        return self._rank(request, found, details)

    async def arank(self, request: RouteRequest) -> Ranking:
        found: Classification | BaseException | None = None
        details: dict[str, Any] = {}
        if request.task is None and self.classifier is not None:
            try:
                found, details = await self.classifier.aexplain(request.text)
            except Exception as exc:
                found = exc
        if self.predictor is not None:  # embedding the prompt: milliseconds of CPU, off the loop
            return await asyncio.to_thread(self._rank, request, found, details)
        return self._rank(request, found, details)

    def _rank(
        self,
        request: RouteRequest,
        found: Classification | BaseException | None,
        details: dict[str, Any],
    ) -> Ranking:
        task, source = request.task, request.task_source
        extra: dict[str, Any] = {"classifier": details} if details else {}
        if isinstance(found, Classification):
            task, source = found.task, f"classifier:{found.method}"
            extra["confidence"] = found.confidence
        elif isinstance(found, BaseException):
            source = "classifier:error"
            extra["classifier_error"] = f"{type(found).__name__}: {found}"
        elif request.task is None:
            source = "none" if self.classifier is None else "classifier:none"
        candidates, reason = self._table(task)
        if self.predictor is not None:
            candidates, reason = self._by_prediction(request, candidates, reason, extra)
        sticky = self._sticky(request.thread_id, task)
        if sticky is not None and sticky is not candidates[0]:
            reason = f"thread {request.thread_id!r} stays on {sticky.name!r}"
            candidates = [sticky, *(s for s in candidates if s is not sticky)]
        if request.thread_id is not None:
            extra["thread_id"] = request.thread_id
        if self._windows:
            candidates, reason = self._fit_windows(request, candidates, reason, extra)
        return Ranking(candidates, reason, task=task, task_source=source, extra=extra)

    def _by_prediction(
        self,
        request: RouteRequest,
        candidates: list[ModelSpec],
        reason: str,
        extra: dict[str, Any],
    ) -> tuple[list[ModelSpec], str]:
        """``candidates`` best predicted quality first (stable: ties keep their order)."""
        predicted = self.predictor.predict_one(request.text, remember=False)
        ordered = sorted(candidates, key=lambda s: -predicted[s.name])
        extra["learned"] = {
            "predicted_quality": {s.name: round(predicted[s.name], 4) for s in ordered},
            "estimator": self.predictor.estimator.describe(),
        }
        best = ordered[0]
        if best is not candidates[0]:
            reason = (
                f"highest predicted quality {predicted[best.name]:.2f} "
                f"(table: {reason}, {candidates[0].name!r} {predicted[candidates[0].name]:.2f})"
            )
        return ordered, reason

    def _fit_windows(
        self,
        request: RouteRequest,
        candidates: list[ModelSpec],
        reason: str,
        extra: dict[str, Any],
    ) -> tuple[list[ModelSpec], str]:
        """Move the models whose context window the prompt exceeds after the others.

        They stay candidates: the count is an estimate for most models, and a
        model that refuses a long prompt just fails over to the next.
        """
        output = request.model_kwargs.get("max_tokens")
        if isinstance(output, bool) or not isinstance(output, int) or output < 0:
            output = 0
        tools = request.tools.schemas if request.tools is not None else ()
        prompt: dict[str, int] = {}
        too_long: list[ModelSpec] = []
        for spec in candidates:
            if spec.context_window is None:
                continue
            prompt[spec.name] = tokens = self._counter.count(spec, request.messages, tools).tokens
            if tokens + output > spec.context_window:
                too_long.append(spec)
        if not too_long:
            return candidates, reason
        extra["context_window"] = {
            "too_long_for": [s.name for s in too_long],
            "prompt_tokens": prompt,
            "output_tokens": output,
        }
        ordered = [s for s in candidates if s not in too_long] + too_long
        if ordered[0] is not candidates[0]:
            windows = ", ".join(f"{s.name!r} ({s.context_window})" for s in too_long)
            what = f"prompt ~{prompt[too_long[0].name]} tokens" + (
                f" + max_tokens {output}" if output else ""
            )
            reason += f"; tried last: {what} exceeds the context window of {windows}"
        return ordered, reason

    def _table(self, task: str | None) -> tuple[list[ModelSpec], str]:
        """Candidates and reason for ``task``; they depend on the task alone, so cached."""
        cache = self._table_cache
        entry = cache.get(task)
        if entry is None:
            primary, reason = self._primary(task)
            candidates = [primary]
            if task is not None:
                candidates += [s for s in self.models if s is not primary and s.serves(task)]
            else:  # no task: any general model can answer
                candidates += [s for s in self.general_models if s is not primary]
            default = self._default()
            if default is not None and default[0] not in candidates:
                candidates.append(default[0])
            entry = cache[task] = (candidates, reason)
        return list(entry[0]), entry[1]

    def _primary(self, task: str | None) -> tuple[ModelSpec, str]:
        if task is not None:
            if task in self.routes:
                return self.spec(self.routes[task]), f"route for task {task!r}"
            declared = [s for s in self.models if task in s.tasks]
            if declared:
                return declared[0], f"first model declaring task {task!r}"
        default = self._default()
        if default is None:
            raise UnknownTaskError(task, self.known_tasks)
        spec, how = default
        if task is None:
            return spec, f"no task given: {how}"
        return spec, f"no model for task {task!r}: {how}"

    # ----------------------------------------------------------- stickiness

    def _sticky(self, thread_id: str | None, task: str | None) -> ModelSpec | None:
        if not self.sticky_threads or thread_id is None:
            return None
        remembered = self._threads.get(thread_id)
        if remembered is None or remembered[0] != task:
            return None
        return self._by_name.get(remembered[1])

    def on_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        if not self.sticky_threads or request.thread_id is None or record.model is None:
            return
        self._threads.put(request.thread_id, record.task, record.model)
