"""Callback plumbing: run child models as children of the router's run."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.runnables import RunnableConfig

RunManager = CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun


def child_config(run_manager: RunManager | None, **metadata: Any) -> RunnableConfig:
    """A config that makes a model call a child run of ``run_manager``'s run.

    LLM run managers have no ``get_child`` (chat models are leaves upstream); a
    router is not a leaf, so we build the child manager the same way.
    """
    if run_manager is None:
        return {"metadata": metadata} if metadata else {}
    manager = CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    config: RunnableConfig = {"callbacks": manager}
    if metadata:
        config["metadata"] = metadata
    return config
