"""Routed calls as Celery tasks, and batch jobs fanned out to Celery workers.

Start workers on any machine that has the config file (and the extra
``llmrouter[celery]``)::

    CELERY_BROKER_URL=redis://broker:6379/0 celery -A llmrouter.integrations.celery worker

then send them work, from Python or with ``llmrouter batch ... --celery``::

    from llmrouter.integrations.celery import route
    result = route.delay({"id": "q1", "prompt": "Hi"}, router="support", config="/etc/router.yaml")
    result.get(timeout=60)   # {"id": "q1", "ok": True, "content": ..., "route": {...}}

``app`` is this module's Celery app (`create_app` with the environment's
settings) and ``route`` its ``llmrouter.route`` task; `register` adds the task to
an app of your own. Budgets, breakers and rate limits are shared between workers
when the config has ``state: redis://...``. See docs/batch.md.

Examples:
    >>> from llmrouter.integrations.celery import TASK_NAME, app, route
    >>> route.name == TASK_NAME and route.app is app
    True
"""

from llmrouter.integrations.celery._app import (
    DEFAULT_BROKER,
    TASK_NAME,
    create_app,
    register,
    route_request,
)
from llmrouter.integrations.celery._jobs import check_workers, run_batch_on_celery

__all__ = [
    "DEFAULT_BROKER",
    "TASK_NAME",
    "app",
    "check_workers",
    "create_app",
    "register",
    "route",
    "route_request",
    "run_batch_on_celery",
]

app = create_app()
"""The app ``celery -A llmrouter.integrations.celery worker`` runs."""

route = app.tasks[TASK_NAME]
"""The ``llmrouter.route`` task of `app`: ``route.delay(request, router=..., config=...)``."""
