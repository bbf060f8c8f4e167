"""A batch job fanned out to Celery workers: `run_batch_on_celery`.

The client keeps at most ``concurrency`` tasks queued or running, writes each
result to the output file as it is ready (the same file and resume rules as
`llmrouter.batch.run_batch`), and notes the id of every task it sends in a file
beside the output (``results.jsonl.tasks``). A job stopped and run again waits
for the tasks it already sent instead of sending them twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url

from llmrouter.batch._jobs import BatchItem, BatchOutput, BatchReport, check_concurrency
from llmrouter.errors import ConfigurationError, StateUnavailableError
from llmrouter.integrations.celery._app import create_app, register

__all__ = ["check_workers", "run_batch_on_celery"]

T = TypeVar("T")


def run_batch_on_celery(
    items: Iterable[BatchItem],
    out: str | Path,
    *,
    config: str | Path,
    router: str | None = None,
    app: Celery | None = None,
    concurrency: int = 64,
    retry_failed: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    worker_timeout: float = 5.0,
    outage_timeout: float = 120.0,
) -> BatchReport:
    """Route each of ``items`` without a result in ``out`` on Celery workers.

    Each request is one ``llmrouter.route`` task for ``router`` of ``config`` (a
    path every worker can read: it is made absolute here). At most
    ``concurrency`` tasks are out at once; results are appended to ``out`` as
    they come, in the format of `llmrouter.batch.run_batch`, and ``on_result`` is
    called with each. ``app`` defaults to `create_app` (``CELERY_BROKER_URL``).
    While the broker or result backend does not answer (Redis restarting), the job
    waits for it up to ``outage_timeout`` seconds, then stops (run it again to go on).

    Raises:
        ConfigurationError: ``config`` is not a file, the broker cannot be
            reached, or (when a request still needs an answer) no worker answers
            within ``worker_timeout`` seconds; the message says how to start one.
        StateUnavailableError: the broker or result backend stopped answering for
            longer than ``outage_timeout`` mid-job (the job can be run again).

    Examples:
        >>> from llmrouter.batch import read_items
        >>> from llmrouter.integrations.celery import run_batch_on_celery
        >>> report = run_batch_on_celery(  # doctest: +SKIP
        ...     read_items("requests.jsonl"), "results.jsonl", config="router.yaml")
    """
    check_concurrency(concurrency)
    app = app or create_app()
    task = register(app)
    config_path = str(Path(config).expanduser().resolve())
    if not Path(config_path).is_file():
        raise ConfigurationError(f"config {config} not found: the workers are sent its path")
    sent = _SentTasks(Path(out))
    with BatchOutput(out, items, retry_failed=retry_failed, on_result=on_result) as output:
        if output.todo:  # a finished job needs no worker
            check_workers(app, worker_timeout)
        known = sent.read()
        waiting = deque(output.todo)
        pending: dict[str, tuple[BatchItem, AsyncResult]] = {}
        patient = _Patience(app, outage_timeout)
        while waiting or pending:
            while waiting and len(pending) < concurrency:
                item = waiting.popleft()
                task_id = known.get(item.id)
                if task_id is not None:  # sent by an earlier run of this job
                    result = app.AsyncResult(task_id)
                else:
                    keywords = {"router": router, "config": config_path}
                    result = patient(partial(task.apply_async, (item.to_request(),), keywords))
                    sent.add(item.id, result.id)
                pending[result.id] = (item, result)
            ready = patient(lambda: [k for k, (_, r) in pending.items() if r.ready()])
            for key in ready:
                item, result = pending.pop(key)
                value = patient(partial(result.get, propagate=False))
                output.write(item, _outcome(item, value))
                sent.add(item.id, None)
                patient(result.forget)
            if not ready:
                _wait_for_news(app, 0.2)
    sent.discard()
    return output.report


class _Patience:
    """Call the broker or result backend, waiting out an outage (Redis restarting) of
    up to ``limit`` seconds; then `StateUnavailableError`."""

    def __init__(self, app: Celery, limit: float) -> None:
        declared = getattr(app.backend, "connection_errors", ())
        # kombu lists KeyError among Redis's connection errors (a vanished queue); a
        # missing key in our own code is no outage
        self.errors: tuple[type[BaseException], ...] = (
            OSError,
            OperationalError,
            *(kind for kind in declared if not issubclass(kind, LookupError)),
        )
        self.where = maybe_sanitize_url(app.conf.result_backend or app.conf.broker_url)
        self.limit = limit

    def __call__(self, call: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.limit
        while True:
            try:
                return call()
            except self.errors as exc:
                if time.monotonic() > deadline:
                    raise StateUnavailableError(
                        f"the Celery broker or result backend at {self.where} did not answer "
                        f"for {self.limit:g} s ({type(exc).__name__}: {exc}); the tasks sent "
                        "are kept: run the same job again to go on"
                    ) from exc
                time.sleep(0.5)


def _outcome(item: BatchItem, value: Any) -> Any:
    """A worker's answer as `BatchOutput.write` takes it: its result line, or the
    exception the task raised."""
    if isinstance(value, BaseException):
        return value
    if isinstance(value, dict) and value.get("id") == item.id and "ok" in value:
        return value
    return RuntimeError(f"the worker answered {value!r:.200}, not a result line of {item.id!r}")


def _wait_for_news(app: Celery, timeout: float) -> None:
    """Wait up to ``timeout`` for a result to be announced. A Redis result backend
    publishes each result to the task's channel: reading them here returns as soon
    as one lands, and keeps unread announcements from piling up in Redis."""
    consumer = getattr(app.backend, "result_consumer", None)
    drain = getattr(consumer, "drain_events", None)
    if drain is None or getattr(consumer, "_pubsub", None) is None:
        time.sleep(timeout)
        return
    try:
        drain(timeout=timeout)
    except Exception:  # Redis restarting: only a shortcut is lost, the job polls on
        time.sleep(timeout)


def check_workers(app: Celery, timeout: float = 5.0) -> list[str]:
    """The name of a worker that answers a ping on ``app``'s broker (the first to
    answer, within ``timeout`` seconds).

    Raises:
        ConfigurationError: the broker cannot be reached, or no worker answers.
    """
    where = maybe_sanitize_url(app.conf.broker_url)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot reach the Celery broker at {where} ({type(exc).__name__}: {exc}); "
            "start it, or point CELERY_BROKER_URL at it"
        ) from None
    replies = app.control.ping(timeout=timeout, limit=1) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise ConfigurationError(
            f"no Celery worker answered on {where} within {timeout:g} s; start one with "
            f"CELERY_BROKER_URL={where} celery -A llmrouter.integrations.celery worker"
        )
    return names


class _SentTasks:
    """``OUT.tasks``: one ``{"id", "task"}`` line per task sent (``"task": null``
    once its result is in the output). The last line of an id wins."""

    def __init__(self, out: Path) -> None:
        self.path = out.with_name(out.name + ".tasks")

    def read(self) -> dict[str, str]:
        known: dict[str, str | None] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError, TypeError, KeyError):
                    entry = json.loads(line)
                    known[str(entry["id"])] = entry["task"]
        return {key: value for key, value in known.items() if value}

    def add(self, identifier: str, task_id: str | None) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"id": identifier, "task": task_id}) + "\n")

    def discard(self) -> None:
        """Every task sent has its result in the output: nothing left to wait for."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
