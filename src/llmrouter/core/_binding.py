"""`RouterBinding`: ``router.bind(...)`` that keeps its keywords through tool binding.

LangChain's `RunnableBinding` passes unknown attributes through to the bound
model, so ``router.bind(task="x").bind_tools(tools)`` calls the *router's*
``bind_tools`` and returns a new binding without ``task`` (and
``langchain.agents.create_agent(router.bind(task="x"), tools)`` does exactly
that). A router's ``bind`` returns this subclass instead, whose ``bind_tools``
and ``with_structured_output`` re-apply the bound keywords and config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable, RunnableBinding

from llmrouter.core._types import TOOLS_KEY

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import _ChatModelBinding as ChatModelBinding
else:
    try:  # what BaseChatModel.bind returns in recent langchain-core (typed stream events)
        from langchain_core.language_models.chat_models import (
            _ChatModelBinding as ChatModelBinding,
        )
    except ImportError:  # pragma: no cover - older langchain-core 1.x
        ChatModelBinding = RunnableBinding[LanguageModelInput, AIMessage]

#: Keywords a new ``bind_tools`` replaces rather than merges (they describe the old tools).
_TOOL_KEYWORDS = (TOOLS_KEY, "ls_structured_output_format")


class RouterBinding(ChatModelBinding):  # type: ignore[no-redef]  # pydantic's kwargs field
    """A router with bound keywords (``task=``, ``max_tokens=``, tools, ...).

    Behaves as LangChain's `RunnableBinding`; in addition ``bind_tools`` and
    ``with_structured_output`` keep the bound keywords and config, so the
    task bound with ``router.bind(task=...)`` survives agents and
    structured-output chains.

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter import ModelRouter, ModelSpec
        >>> router = ModelRouter(models=[ModelSpec(name="m", model=FakeListChatModel(
        ...     responses=["hi"]))])
        >>> bound = router.bind(task="summarize").bind(max_tokens=50)
        >>> sorted(bound.kwargs)
        ['max_tokens', 'task']
    """

    @classmethod
    def lc_id(cls) -> list[str]:
        """Serialize as `RunnableBinding` (behaviourally, this is one)."""
        return [*cls.get_lc_namespace(), "RunnableBinding"]

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The bound router's ``bind_tools``, with this binding's keywords and config kept."""
        bound = self.bound
        if not isinstance(bound, BaseChatModel):  # pragma: no cover - routers bind themselves
            raise TypeError(f"{type(bound).__name__} cannot bind tools")
        fresh = bound.bind_tools(tools, **kwargs)
        added = fresh.kwargs if isinstance(fresh, RunnableBinding) else {}
        kept = {k: v for k, v in self.kwargs.items() if k not in _TOOL_KEYWORDS}
        return self.__class__(
            bound=bound,
            kwargs={**kept, **added},
            config=self.config,
            config_factories=self.config_factories,
            custom_input_type=self.custom_input_type,
            custom_output_type=self.custom_output_type,
        )

    def with_structured_output(
        self, schema: dict[str, Any] | type, **kwargs: Any
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """The bound router's ``with_structured_output``, over this binding.

        The router's implementation binds the schema as a tool through
        ``self.bind_tools``, which here keeps the bound keywords.
        """
        bound = self.bound
        if not isinstance(bound, BaseChatModel):  # pragma: no cover - routers bind themselves
            raise TypeError(f"{type(bound).__name__} has no structured output")
        method = type(bound).with_structured_output
        result: Runnable[LanguageModelInput, dict[str, Any] | Any] = method(
            self,  # type: ignore[arg-type]  # only its bind_tools is used
            schema,
            **kwargs,
        )
        return result
