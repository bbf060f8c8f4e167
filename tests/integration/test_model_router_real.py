"""ModelRouter end to end over real parts: a tiny local GPT-2 and llm-katan servers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from llmrouter import AllModelsFailedError, ModelRouter, ModelSpec, models, route_of
from llmrouter.task._classifiers import SemanticClassifier, default_embeddings


def remote(server: Any, name: str = "katan", **kwargs: Any) -> ModelSpec:
    return models.openai_compatible(
        server.model, base_url=server.base_url, api_key=server.api_key, name=name, **kwargs
    )


@pytest.fixture(scope="module")
def local(tiny_model_dir: Any) -> ModelSpec:
    return models.huggingface_pipeline(
        str(tiny_model_dir),
        name="local",
        tasks={"chat", "summarize"},
        max_new_tokens=8,
        do_sample=False,
    )


def test_routes_between_local_and_remote_with_real_usage(
    local: ModelSpec, katan_server: Any
) -> None:
    router = ModelRouter(
        models=[
            local,
            remote(katan_server, tasks={"code_generation"}, input_cost=0.15, output_cost=0.6),
        ],
        routes={"code_generation": "katan", "summarize": "local"},
        default="local",
    )
    code = router.invoke("Write quicksort in Python", task="code_generation")
    assert code.response_metadata["model_name"] == "katan"
    assert "Write quicksort in Python" in code.text  # the echo server answered
    record = route_of(code)
    assert record.backend_model == katan_server.model
    assert record.usage is not None and record.usage.total_tokens > 0
    assert record.cost_usd == pytest.approx(
        (record.usage.input_tokens * 0.15 + record.usage.output_tokens * 0.6) / 1e6
    )
    summary = router.invoke("Summarize: routers pick models.", task="summarize")
    assert summary.response_metadata["model_name"] == "local"
    assert summary.usage_metadata is not None and summary.usage_metadata["output_tokens"] > 0
    assert "Summarize" not in summary.text  # only generated text, no prompt echo


def test_dead_endpoint_falls_back_to_the_local_model(local: ModelSpec, katan_factory: Any) -> None:
    failing = katan_factory(["--error-rate", "1.0"])
    router = ModelRouter(
        models=[remote(failing, tasks={"chat"}), local],
        routes={"chat": "katan"},
    )
    msg = router.invoke("hello", task="chat")
    record = route_of(msg)
    assert record.model == "local"
    # a 500 is retryable: the default policy tries 3 times, then falls back
    assert [(a.model, a.ok, a.kind) for a in record.attempts] == [
        ("katan", False, "retryable"),
        ("katan", False, "retryable"),
        ("katan", False, "retryable"),
        ("local", True, None),
    ]
    assert "internal server error" in (record.attempts[0].error or "").lower()


def test_all_endpoints_down_raise_with_every_attempt(katan_factory: Any) -> None:
    failing = katan_factory(["--error-rate", "1.0"])
    router = ModelRouter(
        models=[remote(failing, name="a"), remote(failing, name="b")],
        routes={"chat": "a"},
        max_retries=0,
    )
    with pytest.raises(AllModelsFailedError) as info:
        router.invoke("hello", task="chat")
    assert [a.model for a in info.value.record.attempts] == ["a", "b"]


async def test_concurrent_async_requests_over_both_backends(
    local: ModelSpec, katan_server: Any
) -> None:
    router = ModelRouter(
        models=[local, remote(katan_server, tasks={"code_generation"})],
        routes={"code_generation": "katan"},
        default="local",
    )
    tasks = ["code_generation", None] * 4
    results = await asyncio.gather(
        *(router.ainvoke(f"prompt {i}", task=t) for i, t in enumerate(tasks))
    )
    assert [m.response_metadata["model_name"] for m in results] == ["katan", "local"] * 4
    chunks = [c async for c in router.astream("stream me", task="code_generation")]
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert "stream me" in full.text and route_of(full).streamed
    assert full.usage_metadata is not None and full.usage_metadata["total_tokens"] > 0


def test_semantic_classifier_routes_real_requests(local: ModelSpec, katan_server: Any) -> None:
    classifier = SemanticClassifier(
        {
            "code_generation": [
                "Write a Python function",
                "Fix the bug in this code",
                "Implement an algorithm in JavaScript",
            ],
            "summarize": ["Summarize this article", "Give me the key points of this text"],
        },
        embeddings=default_embeddings(),
    )
    router = ModelRouter(
        models=[local, remote(katan_server, tasks={"code_generation"})],
        routes={"code_generation": "katan", "summarize": "local"},
        default="local",
        classifier=classifier,
    )
    record = route_of(router.invoke("Write a function that reverses a string"))
    assert (record.task, record.model) == ("code_generation", "katan")
    assert record.task_source == "classifier:semantic" and record.extra["confidence"] > 0.3
    record = route_of(router.invoke("Please condense this report into three bullet points"))
    assert (record.task, record.model) == ("summarize", "local")
    record = route_of(router.invoke("What's the weather like today?"))
    assert (record.task, record.task_source, record.model) == (None, "classifier:none", "local")


class Person(BaseModel):
    name: str
    age: int


def test_structured_output_through_the_router(local: ModelSpec, katan_server: Any) -> None:
    # the local pipeline cannot take tools, so the endpoint answers
    router = ModelRouter(
        models=[local, remote(katan_server)], default="local", routes={"extract": "katan"}
    )
    structured = router.with_structured_output(Person)
    person = structured.invoke("Ada is 36", config={"metadata": {"task": "extract"}})
    assert isinstance(person, Person)  # the echo server fills the schema with dummy values


def test_transformers_backend_endpoint(katan_transformers_server: Any) -> None:
    router = ModelRouter(models=[remote(katan_transformers_server, name="hf")], default="hf")
    msg = router.invoke("hello there", max_tokens=5)
    record = route_of(msg)
    assert record.model == "hf" and record.usage is not None
    assert 0 < record.usage.output_tokens <= 5
