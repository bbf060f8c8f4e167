"""Callback plumbing: run candidate models as children of the router's run."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.runnables import RunnableConfig

RunManager = CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun

#: Private call keyword that carries the router's run into ``_stream``/``_astream``.
PARENT_KEY = "_llmrouter_parent"


@dataclass(frozen=True)
class StreamParent:
    """The router's own run, known before ``stream()`` starts it.

    ``BaseChatModel.stream`` does not hand its run manager to ``_stream``, so the
    router picks the run id itself (``config["run_id"]``) and passes it along.
    """

    run_id: uuid.UUID
    config: RunnableConfig

    def __repr__(self) -> str:  # keeps traces readable if it is ever printed
        return f"StreamParent({self.run_id})"


class RunContext:
    """What the executor needs of the router's run: metadata and a child config."""

    def __init__(self, run_manager: RunManager | None, parent: StreamParent | None) -> None:
        self._run_manager = run_manager
        self._parent = parent
        self._child: RunnableConfig | None = None

    @property
    def run_manager(self) -> RunManager | None:
        """The router's run manager (generate paths; ``None`` under ``stream()``)."""
        return self._run_manager

    @property
    def parent(self) -> StreamParent | None:
        """The router's run as known to ``stream()`` (``None`` on generate paths)."""
        return self._parent

    @property
    def listening(self) -> bool:
        """True if any callback handler would see an event dispatched from this run."""
        if self._run_manager is not None:  # its inheritable handlers are the child's handlers
            return bool(self._run_manager.inheritable_handlers)
        callbacks = self.child_config().get("callbacks")
        return isinstance(callbacks, CallbackManager) and bool(callbacks.handlers)

    @property
    def metadata(self) -> dict[str, Any]:
        if self._run_manager is not None:
            return dict(self._run_manager.metadata)
        if self._parent is not None:
            return dict(self._parent.config.get("metadata") or {})
        return {}

    def child_config(self) -> RunnableConfig:
        """A config under which a model call becomes a child run of the router's run.

        Built once per request. LLM run managers have no ``get_child`` (chat
        models are leaves upstream); a router is not a leaf, so the child
        manager is built the same way.
        """
        if self._child is None:
            self._child = self._build_child()
        return self._child

    def _build_child(self) -> RunnableConfig:
        if self._run_manager is not None:
            rm = self._run_manager
            manager = CallbackManager(handlers=[], parent_run_id=rm.run_id)
            manager.set_handlers(rm.inheritable_handlers)
            manager.add_tags(rm.inheritable_tags)
            manager.add_metadata(rm.inheritable_metadata)
            return {"callbacks": manager}
        if self._parent is not None:
            config = self._parent.config
            manager = CallbackManager.configure(
                inheritable_callbacks=config.get("callbacks"),
                inheritable_tags=config.get("tags"),
                inheritable_metadata=config.get("metadata"),
            )
            manager.parent_run_id = self._parent.run_id
            return {"callbacks": manager}
        return {}


def with_parent(config: RunnableConfig, kwargs: dict[str, Any]) -> RunnableConfig:
    """Fix the run id of a ``stream()`` call and record it in ``kwargs``."""
    run_id = config.get("run_id") or uuid.uuid4()
    config = {**config, "run_id": run_id}
    kwargs[PARENT_KEY] = StreamParent(run_id=run_id, config=config)
    return config
