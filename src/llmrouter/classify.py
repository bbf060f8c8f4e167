"""Task classifiers (`llmrouter.classify`): the public name of `llmrouter.task`'s classifiers."""

from llmrouter.task._classifiers import (
    DEFAULT_SEMANTIC_THRESHOLD,
    BaseClassifier,
    Classification,
    KeywordClassifier,
    LLMClassifier,
    SemanticClassifier,
    default_embeddings,
)

__all__ = [
    "DEFAULT_SEMANTIC_THRESHOLD",
    "BaseClassifier",
    "Classification",
    "KeywordClassifier",
    "LLMClassifier",
    "SemanticClassifier",
    "default_embeddings",
]
