"""The Celery app and the ``llmrouter.route`` task a worker runs.

A task carries one request (the batch input format: ``id``, ``messages``,
``task``), the router's name and the path of the config file. The worker builds
the config's routers once per process (again when the file changes) and answers
with the request's result line, the same JSON object `llmrouter batch` writes.

Retries and fallbacks are the router's: a routed call that fails after them is
a result with ``"ok": false``, not a Celery retry. Celery only redelivers a task
whose worker died before finishing it (``acks_late`` and
``reject_on_worker_lost``), so nothing acknowledged is lost when a worker is
killed; such a request may be asked twice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from llmrouter.batch._jobs import BatchItem, result_line
from llmrouter.errors import ConfigurationError

__all__ = ["DEFAULT_BROKER", "TASK_NAME", "create_app", "register", "route_request"]

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
"""The broker (and result backend) when neither an argument nor ``CELERY_BROKER_URL``
names one."""

TASK_NAME = "llmrouter.route"
"""The name the routing task is registered under, on every app."""

_DEFAULT_VISIBILITY = 3600.0

logger = logging.getLogger("llmrouter")


def route_request(
    request: dict[str, Any], router: str | None = None, config: str | None = None
) -> dict[str, Any]:
    """Route one request with a config's router; the body of the ``llmrouter.route`` task.

    ``config`` is a path on the worker (default: ``LLMROUTER_CONFIG`` in the
    worker's environment); ``router`` a router of that config (default: its
    default router). Returns the request's result line (JSON types only). A failed
    routed call is a result with ``"ok": false``; only a config that cannot be
    read or a malformed request raises (`ConfigurationError`).

    Examples:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "router.yaml"
        >>> _ = path.write_text('''
        ... models:
        ...   fake: {factory: "langchain_core.language_models:FakeListChatModel",
        ...          responses: ["hi there"]}
        ... routers:
        ...   main: {type: task, models: [fake], default: fake}
        ... ''')
        >>> line = route_request({"id": "q1", "prompt": "hello"}, config=str(path))
        >>> line["id"], line["ok"], line["content"], line["model"]
        ('q1', True, 'hi there', 'fake')
    """
    path = config or os.environ.get("LLMROUTER_CONFIG")
    if not path:
        raise ConfigurationError(
            "no config for this task: pass config=PATH, or set LLMROUTER_CONFIG in the "
            "worker's environment"
        )
    item = BatchItem.from_request(request)
    chosen = _router(path, router)
    try:
        outcome: Any = chosen.invoke(item.messages, **item.keywords())
    except Exception as exc:  # the router already retried and fell back: a failed result
        outcome = exc
    line: dict[str, Any] = json.loads(json.dumps(result_line(item, outcome), default=str))
    return line


def _router(path: str, name: str | None) -> Any:
    resolved = Path(path).expanduser().resolve()
    try:
        stamp = resolved.stat().st_mtime_ns
    except OSError:
        raise ConfigurationError(
            f"config {path} is not on the worker {socket.gethostname()}: every worker "
            "needs the config file at the same path (or LLMROUTER_CONFIG)"
        ) from None
    return _built(str(resolved), stamp).router(name)


@functools.lru_cache(maxsize=8)
def _built(path: str, stamp: int) -> Any:
    """A config's models and routers, built once per worker process and file version."""
    from llmrouter.config import load_config

    return load_config(path).build()


def _import_before_forking(**_: Any) -> None:
    """Import what building a config needs in the worker's main process, before its
    pool forks: each pool process then builds its routers in milliseconds, not the
    seconds a cold import takes (a first task that slow could outlive a short
    visibility timeout and be handed out twice)."""
    import llmrouter.config  # noqa: F401

    with contextlib.suppress(ImportError):
        import langchain_openai  # noqa: F401


def _build_the_workers_config(**_: Any) -> None:
    """With ``LLMROUTER_CONFIG`` set, each pool process builds it when it starts."""
    path = os.environ.get("LLMROUTER_CONFIG")
    if path:
        try:
            resolved = Path(path).expanduser().resolve()
            _built(str(resolved), resolved.stat().st_mtime_ns)
        except Exception as exc:  # the tasks will say what is wrong, one by one
            logger.warning("llmrouter: LLMROUTER_CONFIG=%s could not be built: %s", path, exc)


worker_init.connect(_import_before_forking, weak=False)
worker_process_init.connect(_build_the_workers_config, weak=False)


def register(app: Celery) -> Any:
    """Register the ``llmrouter.route`` task on your own Celery ``app`` and return it.

    The task acknowledges its message only when done (``acks_late``) and a worker
    lost mid-task hands it back (``reject_on_worker_lost``). Also give your app
    ``worker_prefetch_multiplier=1``, and on Redis a ``visibility_timeout`` longer
    than your longest call (see `create_app`).

    Examples:
        >>> from celery import Celery
        >>> task = register(Celery("mine", broker="memory://"))
        >>> task.name, task.acks_late, task.reject_on_worker_lost
        ('llmrouter.route', True, True)
    """
    if TASK_NAME in app.tasks:
        return app.tasks[TASK_NAME]
    return app.task(
        name=TASK_NAME,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=0,
        ignore_result=False,
    )(route_request)


def create_app(
    broker: str | None = None,
    backend: str | None = None,
    *,
    visibility_timeout: float | None = None,
) -> Celery:
    """A Celery app with the ``llmrouter.route`` task, set up for long routed calls.

    ``broker`` defaults to ``CELERY_BROKER_URL``, then ``redis://127.0.0.1:6379/0``;
    ``backend`` (where results are kept, for a week) to ``CELERY_RESULT_BACKEND``,
    then the broker. ``visibility_timeout`` (default ``LLMROUTER_CELERY_VISIBILITY_TIMEOUT``,
    then 3600 s) is how long a Redis broker waits before it hands an unacknowledged
    task (its worker was killed) to another worker: keep it above your longest call.
    JSON messages only; one task reserved per worker process at a time.

    Examples:
        >>> app = create_app("redis://127.0.0.1:6399/0", visibility_timeout=30)
        >>> app.conf.broker_transport_options["visibility_timeout"], app.conf.task_acks_late
        (30.0, True)
        >>> "llmrouter.route" in app.tasks
        True
    """
    broker = broker or os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER
    backend = backend or os.environ.get("CELERY_RESULT_BACKEND") or broker
    if visibility_timeout is None:
        visibility_timeout = _env_seconds("LLMROUTER_CELERY_VISIBILITY_TIMEOUT")
    if visibility_timeout <= 0:
        raise ConfigurationError(f"visibility_timeout must be positive, not {visibility_timeout}")
    transport: dict[str, Any] = {"visibility_timeout": float(visibility_timeout)}
    if visibility_timeout < 600:
        # kombu looks for abandoned tasks every 10 x 10 s by default: as often as the
        # timeout asks for here, so a short timeout means a quick redelivery.
        transport |= {
            "unacked_restore_interval": max(1, int(visibility_timeout // 3)),
            "unacked_restore_throttle": 1,
        }
    app = Celery("llmrouter", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=7 * 24 * 3600,
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        # a result that cannot be stored while Redis restarts is stored when it is back,
        # not turned into a failure (the answer was paid for)
        result_backend_always_retry=True,
        result_backend_max_retries=60,
        worker_hijack_root_logger=False,
    )
    register(app)
    return app


def _env_seconds(name: str) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return _DEFAULT_VISIBILITY
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r}: expected a number of seconds") from None
