"""Task classifiers (`llmrouter.classify`): the public name of `llmrouter.task`'s classifiers."""

from llmrouter.task._classifiers import *  # noqa: F403 -- exactly the classifiers' public names
from llmrouter.task._classifiers import __all__ as __all__
