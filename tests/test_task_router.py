"""ModelRouter: where the task comes from, route choice, fallbacks, threads, validation."""

from __future__ import annotations

import pytest
from _fixtures.fakes import Recorder, spec
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
    assert record.candidates == ["local"]


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
    assert list(router._threads) == ["t3", "t4"]


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
