"""Integrations with other engines: `llmrouter.integrations.celery` (routed calls
and batch jobs as Celery tasks; needs ``llmrouter[celery]``)."""
