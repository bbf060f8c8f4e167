"""Adapter that lets a completion-style `BaseLLM` sit behind a router as a chat model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from llmrouter._callbacks import RunContext


class LLMChatAdapter(BaseChatModel):
    """Chat interface over a `BaseLLM`: the messages are rendered as one prompt.

    Examples:
        >>> from langchain_core.language_models import FakeListLLM
        >>> from llmrouter._llm_chat import LLMChatAdapter
        >>> LLMChatAdapter(llm=FakeListLLM(responses=["pong"])).invoke("ping").content
        'pong'
    """

    llm: BaseLLM

    @property
    def _llm_type(self) -> str:
        return f"llm-adapter:{self.llm._llm_type}"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        config = RunContext(run_manager, None).child_config()
        text = self.llm.invoke(messages, config=config, stop=stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        config = RunContext(run_manager, None).child_config()
        text = await self.llm.ainvoke(messages, config=config, stop=stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        config = RunContext(run_manager, None).child_config()
        for text in self.llm.stream(messages, config=config, stop=stop, **kwargs):
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        config = RunContext(run_manager, None).child_config()
        async for text in self.llm.astream(messages, config=config, stop=stop, **kwargs):
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
