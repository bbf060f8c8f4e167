"""A/B experiments: `ABRouter`, assignment, canary guard, shadowing, store and report."""

from llmrouter.ab._assignment import RampSchedule, assignment_point
from llmrouter.ab._guard import CanaryGuard
from llmrouter.ab._report import Comparison, ExperimentReport, VariantStats, report_from_store
from llmrouter.ab._router import ABRouter
from llmrouter.ab._stats import TestResult
from llmrouter.ab._store import (
    ExperimentEvent,
    ExperimentRecord,
    ExperimentStore,
    ExperimentStoreWarning,
    Feedback,
    SQLiteStore,
    open_store,
)

__all__ = [
    "ABRouter",
    "CanaryGuard",
    "Comparison",
    "ExperimentEvent",
    "ExperimentRecord",
    "ExperimentReport",
    "ExperimentStore",
    "ExperimentStoreWarning",
    "Feedback",
    "RampSchedule",
    "SQLiteStore",
    "TestResult",
    "VariantStats",
    "assignment_point",
    "open_store",
    "report_from_store",
]
