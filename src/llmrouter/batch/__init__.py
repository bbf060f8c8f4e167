"""Batch jobs: a JSON Lines file of prompts through a router, resumable from its output.

``llmrouter batch router.yaml input.jsonl --out results.jsonl`` on the command
line, or `run_batch` in Python; ``--celery`` (and
`llmrouter.integrations.celery`) fans the requests out to Celery workers. See
docs/batch.md.

Examples:
    >>> from llmrouter.batch import BatchItem
    >>> BatchItem("q1", []).id
    'q1'
"""

from llmrouter.batch._jobs import (
    BatchItem,
    BatchOutput,
    BatchReport,
    read_items,
    read_results,
    run_batch,
)

__all__ = ["BatchItem", "BatchOutput", "BatchReport", "read_items", "read_results", "run_batch"]
