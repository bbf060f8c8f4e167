"""Routing by task: `ModelRouter` and the task classifiers it can use."""

from llmrouter.task._classifiers import *  # noqa: F403 -- the classifiers' public names
from llmrouter.task._classifiers import __all__ as _classifiers
from llmrouter.task._router import ModelRouter

__all__ = [*_classifiers, "ModelRouter"]
