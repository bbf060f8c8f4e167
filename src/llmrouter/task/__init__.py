"""Routing by task: `ModelRouter` and the task classifiers it can use."""

from llmrouter.task._classifiers import (
    DEFAULT_SEMANTIC_THRESHOLD,
    BaseClassifier,
    Classification,
    KeywordClassifier,
    LLMClassifier,
    SemanticClassifier,
    default_embeddings,
)
from llmrouter.task._router import ModelRouter

__all__ = [
    "DEFAULT_SEMANTIC_THRESHOLD",
    "BaseClassifier",
    "Classification",
    "KeywordClassifier",
    "LLMClassifier",
    "ModelRouter",
    "SemanticClassifier",
    "default_embeddings",
]
