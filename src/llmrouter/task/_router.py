"""`ModelRouter`: route each request by its task."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from llmrouter.core import BaseRouter, Ranking, RouteRequest
from llmrouter.errors import UnknownTaskError
from llmrouter.record import RouteRecord
from llmrouter.spec import ModelSpec
from llmrouter.task._classifiers import BaseClassifier, Classification


class ModelRouter(BaseRouter):
    """Route each request to a model by its task.

    The task comes from, in order: the ``task`` keyword of the call (or
    ``.bind(task=...)``), ``config["metadata"]["task"]``, the ``classifier``;
    with no task the ``default`` model answers. A task with an entry in
    ``routes`` goes to that model; otherwise to the first model that lists the
    task in its ``tasks``; otherwise to ``default``. Fallbacks, in order: the
    other models that serve the task (including general models with no
    ``tasks``), then ``default``.

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
    """How many threads to remember (least recently used are forgotten)."""

    _threads: OrderedDict[str, tuple[str | None, str]] = PrivateAttr(default_factory=OrderedDict)
    _threads_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _table_cache: dict[str | None, tuple[list[ModelSpec], str]] = PrivateAttr(default_factory=dict)

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
        return self

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
        if request.task is None and self.classifier is not None:
            try:
                found = self.classifier.classify(request.text)
            except Exception as exc:  # a broken classifier must not fail the request
                found = exc
        return self._rank(request, found)

    async def arank(self, request: RouteRequest) -> Ranking:
        found: Classification | BaseException | None = None
        if request.task is None and self.classifier is not None:
            try:
                found = await self.classifier.aclassify(request.text)
            except Exception as exc:
                found = exc
        return self._rank(request, found)

    def _rank(self, request: RouteRequest, found: Classification | BaseException | None) -> Ranking:
        task, source = request.task, request.task_source
        extra: dict[str, Any] = {}
        if isinstance(found, Classification):
            task, source = found.task, f"classifier:{found.method}"
            extra["confidence"] = found.confidence
        elif isinstance(found, BaseException):
            source = "classifier:error"
            extra["classifier_error"] = f"{type(found).__name__}: {found}"
        elif request.task is None:
            source = "none" if self.classifier is None else "classifier:none"
        candidates, reason = self._table(task)
        sticky = self._sticky(request.thread_id, task)
        if sticky is not None and sticky is not candidates[0]:
            reason = f"thread {request.thread_id!r} stays on {sticky.name!r}"
            candidates = [sticky, *(s for s in candidates if s is not sticky)]
        if request.thread_id is not None:
            extra["thread_id"] = request.thread_id
        return Ranking(candidates, reason, task=task, task_source=source, extra=extra)

    def _table(self, task: str | None) -> tuple[list[ModelSpec], str]:
        """Candidates and reason for ``task``; they depend on the task alone, so cached."""
        cache = self._table_cache
        entry = cache.get(task)
        if entry is None:
            primary, reason = self._primary(task)
            candidates = [primary]
            if task is not None:
                candidates += [s for s in self.models if s is not primary and s.serves(task)]
            if self.default is not None and self.spec(self.default) not in candidates:
                candidates.append(self.spec(self.default))
            entry = cache[task] = (candidates, reason)
        return list(entry[0]), entry[1]

    def _primary(self, task: str | None) -> tuple[ModelSpec, str]:
        if task is not None:
            if task in self.routes:
                return self.spec(self.routes[task]), f"route for task {task!r}"
            declared = [s for s in self.models if task in s.tasks]
            if declared:
                return declared[0], f"first model declaring task {task!r}"
        if self.default is None:
            raise UnknownTaskError(task, self.known_tasks)
        if task is None:
            return self.spec(self.default), "no task given: default model"
        return self.spec(self.default), f"no model for task {task!r}: default model"

    # ----------------------------------------------------------- stickiness

    def _sticky(self, thread_id: str | None, task: str | None) -> ModelSpec | None:
        if not self.sticky_threads or thread_id is None:
            return None
        with self._threads_lock:
            remembered = self._threads.get(thread_id)
            if remembered is None or remembered[0] != task:
                return None
            self._threads.move_to_end(thread_id)
        return self._by_name.get(remembered[1])

    def on_finish(self, request: RouteRequest, record: RouteRecord) -> None:
        if not self.sticky_threads or request.thread_id is None or record.model is None:
            return
        with self._threads_lock:
            self._threads[request.thread_id] = (record.task, record.model)
            self._threads.move_to_end(request.thread_id)
            while len(self._threads) > self.max_threads:
                self._threads.popitem(last=False)
