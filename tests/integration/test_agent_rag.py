"""Routers composed the way LangChain users compose chat models: agents and RAG."""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore

from llmrouter import ModelRouter, models, route_of
from llmrouter.task._classifiers import default_embeddings


@tool(return_direct=True)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_router_drives_a_create_agent_tool_call(katan_server: Any, tiny_model_dir: Any) -> None:
    models.unload_models(str(tiny_model_dir))  # another test module may have loaded it
    local = models.huggingface_pipeline(str(tiny_model_dir), name="local", tasks={"chat"})
    assert not local.chat_model.is_loaded
    remote = models.openai_compatible(
        katan_server.model,
        base_url=katan_server.base_url,
        api_key=katan_server.api_key,
        name="katan",
        tasks={"chat"},
    )
    # "chat" goes to the local model first, but it cannot take tools: the agent's
    # tool-bound router must skip it and use the endpoint.
    router = ModelRouter(models=[local, remote], routes={"chat": "local"})
    agent = create_agent(model=router, tools=[add])
    result = agent.invoke(
        {"messages": [("user", "What is 1 + 1? Use the add tool.")]},
        config={"metadata": {"task": "chat"}},
    )
    ai = next(m for m in result["messages"] if isinstance(m, AIMessage))
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "add"
    assert ai.response_metadata["model_name"] == "katan"
    record = route_of(ai)
    assert record.candidates == ["local", "katan"] and record.model == "katan"
    assert [a.model for a in record.attempts] == ["katan"]  # local never tried
    tool_msg = result["messages"][-1]
    assert isinstance(tool_msg, ToolMessage) and tool_msg.content == "2"
    assert not local.chat_model.is_loaded  # the local model was never even loaded


def test_router_in_a_rag_chain(katan_server: Any) -> None:
    docs = [
        Document(page_content="The llmrouter office cat is called Pixel."),
        Document(page_content="Quarterly revenue grew by twelve percent."),
        Document(page_content="The staging database restarts every Sunday at 02:00."),
    ]
    store = InMemoryVectorStore.from_documents(docs, embedding=default_embeddings())
    retriever = store.as_retriever(search_kwargs={"k": 1})
    remote = models.openai_compatible(
        katan_server.model,
        base_url=katan_server.base_url,
        api_key=katan_server.api_key,
        name="katan",
        tasks={"rag"},
    )
    router = ModelRouter(models=[remote], routes={"rag": "katan"})
    prompt = ChatPromptTemplate.from_messages(
        [("human", "Answer from the context.\nContext: {context}\nQuestion: {question}")]
    )
    chain = (
        {
            "context": retriever | (lambda ds: "\n".join(d.page_content for d in ds)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | router.bind(task="rag")
        | StrOutputParser()
    )
    answer = chain.invoke("What is the name of the office cat?")
    # the echo backend repeats the prompt: the right document reached the model
    assert "Pixel" in answer
    assert "revenue" not in answer and "Sunday" not in answer
