"""Shadow runs of an A/B experiment: copies of control requests, run off the request path.

`ShadowRunner.start` (sync calls: a thread pool) and `ShadowRunner.astart`
(async calls: tasks on the running loop) only enqueue; they never run a copy
inline, never wait and never raise, so a shadow cannot slow or fail the
user's call. Each run is booked as an `ExperimentRecord` with ``shadow=True``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage

from llmrouter.ab._store import ExperimentRecord
from llmrouter.core._types import ToolBinding, runnable_for
from llmrouter.errors import ExperimentError
from llmrouter.resilience._timeouts import acall_with_timeout, call_with_timeout
from llmrouter.spec import ModelSpec

__all__ = ["ShadowJob", "ShadowRunner", "ShadowTarget"]

logger = logging.getLogger("llmrouter.ab._router")  # one logger for the A/B router

Book = Callable[[ExperimentRecord], None]


@dataclass(frozen=True)
class ShadowTarget:
    """A candidate a request is copied to."""

    variant: str
    spec: ModelSpec
    timeout: float | None
    """Seconds the candidate's call may take (``None``: no limit)."""


@dataclass
class ShadowJob:
    """A copy of one control request, to run on candidates in the background."""

    experiment: str
    targets: list[ShadowTarget]
    messages: list[BaseMessage]
    kwargs: dict[str, Any]
    """The model keywords the control got."""
    stop: list[str] | None
    tools: ToolBinding | None
    parent_id: str
    """Request id of the control request."""
    key: str | None
    outputs: int | None
    """Characters of prompt and answers to store (``None``: store none)."""
    prompt: str | None = None
    reference: str | None = None
    """The control's answer (``None`` when it failed)."""


class ShadowRunner:
    """Runs `ShadowJob` copies in the background and books each run with ``book``.

    At most ``max_pending`` runs of each kind (threads, tasks) are queued or
    running; beyond that a run is dropped and counted in `dropped`.
    """

    def __init__(
        self,
        book: Book,
        *,
        workers: int,
        max_pending: int,
    ) -> None:
        # Weak: an idle runner must not keep its router alive (the router's finalizer
        # stops the threads); a run in flight holds the booking function strongly.
        self._book = weakref.WeakMethod(book) if inspect.ismethod(book) else lambda: book
        self._workers = workers
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._futures: set[concurrent.futures.Future[None]] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        """Runs of async calls not finished yet (references held until they are)."""
        self.dropped = 0
        """Runs skipped because ``max_pending`` were already in flight."""

    # --------------------------------------------------------------- enqueue

    def start(self, job: ShadowJob | None) -> None:
        """Queue ``job`` on the thread pool; never raises, never waits."""
        book = self._book()
        if job is None or book is None:
            return
        try:
            for target in job.targets:
                with self._lock:
                    if not self._admit(job, target, self._futures):
                        continue
                    if self._executor is None:
                        self._executor = concurrent.futures.ThreadPoolExecutor(
                            self._workers, thread_name_prefix="llmrouter-shadow"
                        )
                    future = self._executor.submit(self._run, job, target, book)
                    self._futures.add(future)
                future.add_done_callback(self._future_done)
        except Exception:  # e.g. interpreter shutting down: the user's call must go on
            logger.exception("ABRouter %r could not start a shadow run", job.experiment)

    def astart(self, job: ShadowJob | None) -> None:
        """Start ``job`` as tasks on the running loop; never raises, never waits."""
        book = self._book()
        if job is None or book is None:
            return
        try:
            loop = asyncio.get_running_loop()
            for target in job.targets:
                with self._lock:
                    if not self._admit(job, target, self.tasks):
                        continue
                    task = loop.create_task(self._arun(job, target, book))
                    self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except Exception:
            logger.exception("ABRouter %r could not start a shadow run", job.experiment)

    def _admit(self, job: ShadowJob, target: ShadowTarget, pending: Collection[Any]) -> bool:
        """True if a run may start (call with the lock held); else count it dropped."""
        if len(pending) < self._max_pending:
            return True
        self.dropped += 1
        logger.warning(
            "ABRouter %r dropped a shadow run of %r: %d already pending (max_pending_shadows); "
            "%d dropped so far",
            job.experiment,
            target.variant,
            self._max_pending,
            self.dropped,
        )
        return False

    def _future_done(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    # ------------------------------------------------------------------- run

    def _run(self, job: ShadowJob, target: ShadowTarget, book: Book) -> None:
        started = time.perf_counter()
        message: BaseMessage | None = None
        error: BaseException | None = None
        try:
            runnable = _runnable(job, target.spec)
            message = call_with_timeout(
                lambda: runnable.invoke(job.messages, stop=job.stop, **job.kwargs),
                target.timeout,
                target.spec.name,
            )
        except Exception as exc:
            error = exc
        book(_record(job, target, started, message, error))

    async def _arun(self, job: ShadowJob, target: ShadowTarget, book: Book) -> None:
        started = time.perf_counter()
        message: BaseMessage | None = None
        error: BaseException | None = None
        try:
            call = _runnable(job, target.spec).ainvoke(job.messages, stop=job.stop, **job.kwargs)
            message = await acall_with_timeout(call, target.timeout, target.spec.name)
        except asyncio.CancelledError as exc:  # e.g. the event loop is closing
            book(_record(job, target, started, None, exc))
            raise
        except Exception as exc:
            error = exc
        await asyncio.to_thread(book, _record(job, target, started, message, error))

    # ------------------------------------------------------------------ wait

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the runs of sync calls; True if none is left running."""
        with self._lock:
            futures = list(self._futures)
        if not futures:
            return True
        _, pending = concurrent.futures.wait(futures, timeout=timeout)
        return not pending

    async def await_all(self, timeout: float | None = None) -> bool:
        """Wait for the runs of async calls on this loop, and of sync calls."""
        loop = asyncio.get_running_loop()
        tasks = [t for t in list(self.tasks) if t.get_loop() is loop]
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
        threads_done = await asyncio.to_thread(self.wait, timeout)
        return not pending and threads_done

    def close(self, timeout: float | None = None) -> bool:
        """Wait for the runs of sync calls (up to ``timeout``) and stop the threads.

        Returns True if every run finished; later `start` calls get new threads.
        """
        done = self.wait(timeout)
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=done, cancel_futures=True)
        return done

    def shutdown(self) -> None:
        """Stop the threads without waiting (the owning router is gone)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)


def _runnable(job: ShadowJob, spec: ModelSpec) -> Any:
    if job.tools is not None and not spec.supports_tools:
        raise ExperimentError(f"{spec.name!r} cannot call the tools bound to the request")
    return runnable_for(spec, job.tools)


def _record(
    job: ShadowJob,
    target: ShadowTarget,
    started: float,
    message: BaseMessage | None,
    error: BaseException | None,
) -> ExperimentRecord:
    """The experiment record of one shadow run."""
    spec = target.spec
    usage = getattr(message, "usage_metadata", None) if message is not None else None
    entry = ExperimentRecord(
        request_id=uuid.uuid4().hex,
        experiment=job.experiment,
        variant=target.variant,
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
    if job.outputs is not None:
        limit = job.outputs
        entry.prompt = job.prompt[:limit] if job.prompt is not None else None
        entry.output = message.text[:limit] if message is not None else None
        entry.reference_output = job.reference[:limit] if job.reference is not None else None
    return entry
