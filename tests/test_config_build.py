"""Building a config: models from factories, the four router types, nesting, mistakes."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel

from llmrouter import route_of
from llmrouter.ab import ABRouter
from llmrouter.config import RouterSet, load_config, load_router
from llmrouter.config._build import _first_parameter_as_model, build_model, resolve_factory
from llmrouter.cost import CostAwareRouter
from llmrouter.errors import ConfigFileError, ConfigurationError
from llmrouter.models import openai_compatible
from llmrouter.models._huggingface import ChatHuggingFacePipeline, loaded_pipelines
from llmrouter.multimodal import MultiModalRouter
from llmrouter.resilience import DEFAULT_BOARD
from llmrouter.resilience._breaker import CircuitBreaker
from llmrouter.spec import ModelSpec
from llmrouter.task import ModelRouter
from llmrouter.testing import RedisServer

FAKE = '"langchain_core.language_models:FakeListChatModel"'
MODELS = f"""
models:
  a: {{factory: {FAKE}, responses: [A]}}
  b: {{factory: {FAKE}, responses: [B]}}
"""


def remote(*extra: str, api_key: str = "not-a-real-key") -> str:
    """A ``models:`` section of one openai_compatible entry (its last line is 6)."""
    lines = [
        "models:",
        "  remote:",
        "    factory: openai_compatible",
        "    model: gpt-4o-mini",
        '    base_url: "http://127.0.0.1:9/v1"',
        f"    api_key: {api_key}",
        *(f"    {line}" for line in extra),
    ]
    return "\n".join(lines) + "\n"


def write(folder: Path, *parts: str, name: str = "router.yaml") -> Path:
    """A config file of ``parts``, each dedented (MODELS is lines 1 to 3)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(textwrap.dedent(p).lstrip("\n") for p in parts), encoding="utf-8")
    return path


def build(folder: Path, *parts: str) -> RouterSet:
    return load_config(write(folder, *parts)).build()


def build_fails(folder: Path, *parts: str) -> ConfigFileError:
    path = write(folder, *parts)
    config = load_config(path)  # valid: the mistake shows only when building
    with pytest.raises(ConfigFileError) as info:
        config.build()
    assert info.value.path == str(path)
    return info.value


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is not the config's folder."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


# ------------------------------------------------------------------ models


def test_models_from_an_import_path_of_a_langchain_class(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        MODELS + f"  priced: {{factory: {FAKE}, responses: [P], input_cost: 2, tasks: chat}}\n",
    )
    assert list(built.models) == ["a", "b", "priced"]
    spec = built.models["a"]
    assert isinstance(spec, ModelSpec) and spec.name == "a"
    assert isinstance(spec.chat_model, FakeListChatModel)
    assert spec.chat_model.invoke("hi").content == "A"
    priced = built.models["priced"]
    assert priced.input_cost == 2.0 and priced.tasks == frozenset({"chat"})
    assert built.routers == {} and built.default is None


def test_openai_compatible_model_is_built_not_called(tmp_path: Path) -> None:
    built = build(tmp_path, remote("input_cost: 0.15", "tasks: [chat]"))
    spec = built.models["remote"]
    assert spec.name == "remote"
    assert spec.input_cost == 0.15 and spec.tasks == frozenset({"chat"})
    chat: Any = spec.chat_model
    assert chat.model_name == "gpt-4o-mini"
    assert chat.openai_api_base == "http://127.0.0.1:9/v1"
    assert chat.openai_api_key.get_secret_value() == "not-a-real-key"


def test_model_entry_name_retry_and_rate_limit(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        remote("name: custom", "retry: {attempts: 4}", "rate_limit: {requests_per_second: 5}"),
    )
    spec = built.models["remote"]  # keyed by the entry, named by ``name:``
    assert spec.name == "custom"
    assert spec.retry is not None and spec.retry.max_attempts == 4
    limiter: Any = spec.rate_limiter
    assert limiter is not None and limiter.requests_per_second == 5.0


def test_api_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMROUTER_TEST_API_KEY", "sk-from-env")
    path = write(tmp_path, remote(api_key="${LLMROUTER_TEST_API_KEY}"))
    config = load_config(path)
    assert config.data["models"]["remote"]["api_key"] == "sk-from-env"
    chat: Any = config.build().models["remote"].chat_model
    assert chat.openai_api_key.get_secret_value() == "sk-from-env"
    assert "sk-from-env" not in repr(chat)


def test_model_stands_for_the_factory_first_parameter() -> None:
    def factory(model_id_or_path: str, *, name: str | None = None, **kwargs: Any) -> None:
        raise AssertionError("not called")

    kwargs: dict[str, Any] = {"model": "org/m", "tasks": ["chat"]}
    _first_parameter_as_model(factory, kwargs)
    assert kwargs == {"model_id_or_path": "org/m", "tasks": ["chat"]}
    given: dict[str, Any] = {"model": "x", "model_id_or_path": "y"}
    _first_parameter_as_model(factory, given)  # both given: left to the factory to refuse
    assert given == {"model": "x", "model_id_or_path": "y"}
    same: dict[str, Any] = {"model": "gpt-4o-mini"}
    _first_parameter_as_model(openai_compatible, same)  # its first parameter is ``model``
    assert same == {"model": "gpt-4o-mini"}


def test_unknown_factory_with_did_you_mean(tmp_path: Path) -> None:
    error = build_fails(tmp_path, "models:\n  r:\n    factory: openai_compatble\n    model: x\n")
    assert (error.line, error.field) == (3, "models.r.factory")
    assert "unknown factory 'openai_compatble'; did you mean 'openai_compatible'?" in error.problem


def test_resolve_factory() -> None:
    assert resolve_factory("langchain_core.language_models:FakeListChatModel") is FakeListChatModel
    assert resolve_factory("openai_compatible") is openai_compatible
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        resolve_factory("no_such_module_xyz:thing")
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        resolve_factory("langchain_core.language_models:NoSuchModel")
    with pytest.raises(ConfigurationError, match="is not callable"):
        resolve_factory("os:sep")
    with pytest.raises(ConfigurationError, match="the factories are"):
        resolve_factory("zzzzzz")


def test_factory_returning_something_else_is_an_error(tmp_path: Path) -> None:
    error = build_fails(tmp_path, 'models:\n  m: {factory: "builtins:dict", x: 1}\n')
    assert error.line == 2 and (error.field or "").startswith("models.m")
    assert "returned dict; it must return a ModelSpec or a LangChain model" in error.problem


def test_factory_keyword_typo_is_reported_at_its_line(tmp_path: Path) -> None:
    error = build_fails(tmp_path, remote("temprature: 0.2"))
    assert (error.line, error.field) == (7, "models.remote.temprature")
    assert "did you mean 'temperature'?" in error.problem
    assert str(error).startswith(f"{tmp_path / 'router.yaml'}:7: models.remote.temprature: ")


def test_huggingface_pipeline_with_a_missing_directory_fails_at_build(
    tmp_path: Path, elsewhere: Path
) -> None:
    error = build_fails(
        tmp_path / "cfg",
        "models:\n  local:\n    factory: huggingface_pipeline\n    model: ./no-such-model\n",
    )
    assert error.line == 4 and error.field == "models.local.model"
    assert "neither in the config's folder" in error.problem


def test_huggingface_pipeline_path_relative_to_the_config_folder(
    tmp_path: Path, tiny_model_dir: Path, elsewhere: Path
) -> None:
    folder = tmp_path / "cfg"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "tiny").symlink_to(tiny_model_dir, target_is_directory=True)
    assert not (elsewhere / "models" / "tiny").exists()
    built = build(
        folder,
        "models:\n  local:\n    factory: huggingface_pipeline\n    model: ./models/tiny\n"
        "    tasks: [chat]\n    max_new_tokens: 8\n",
    )
    spec = built.models["local"]
    assert spec.name == "local" and spec.tasks == frozenset({"chat"})
    chat = spec.chat_model
    assert isinstance(chat, ChatHuggingFacePipeline)
    assert Path(chat.model_id) == folder / "models" / "tiny"
    assert chat.pipeline_kwargs == {"max_new_tokens": 8}
    assert spec.context_window == 512  # read from the model's config.json on disk
    assert chat.model_id not in loaded_pipelines()  # built, not loaded


def test_local_model_options_beside_the_config(
    tmp_path: Path, tiny_model_dir: Path, elsewhere: Path
) -> None:
    from llmrouter.models._registry import registry, set_memory_budget
    from llmrouter.testing import build_tiny_lora_adapter

    folder = tmp_path / "cfg"
    build_tiny_lora_adapter(tiny_model_dir, folder / "adapters" / "sql", seed=3)
    try:
        built = build(
            folder,
            f"models:\n  sql:\n    factory: huggingface_pipeline\n"
            f"    model: {tiny_model_dir}\n    adapter: adapters/sql\n"
            "    lock: my.lock\n    cache_dir: hf-cache\n"
            "local_models:\n  memory: 2GiB\n  max_models: 2\n",
        )
        assert registry.budget == (2 * 2**30, 2)
    finally:
        set_memory_budget()
    chat = built.models["sql"].chat_model
    assert isinstance(chat, ChatHuggingFacePipeline)
    assert chat.adapter == str(folder / "adapters" / "sql")
    assert (chat.lock, chat.cache_dir) == (str(folder / "my.lock"), str(folder / "hf-cache"))


def test_a_bad_memory_budget_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as caught:
        build(tmp_path, MODELS, "local_models:\n  memory: lots\n")
    assert caught.value.line == 5 and "memory size 'lots' is not understood" in str(caught.value)


# ------------------------------------------------------------------ routers


def test_task_router_routes_by_task_and_by_keyword_classifier(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        MODELS,
        """
        routers:
          by-task:
            type: task
            routes: {code_generation: b}
            default: a
            classifier: {type: keyword, rules: {code_generation: [python]}}
        """,
    )
    router = built.router()
    assert isinstance(router, ModelRouter) and router.name == "by-task"
    assert built.default == "by-task"
    explicit = router.invoke("hello", task="code_generation")
    assert explicit.content == "B" and route_of(explicit).task_source == "explicit"
    classified = router.invoke("write some python please")
    record = route_of(classified)
    assert classified.content == "B"
    assert (record.model, record.task, record.task_source) == (
        "b",
        "code_generation",
        "classifier:keyword",
    )
    plain = router.invoke("hello there")
    assert plain.content == "A" and route_of(plain).model == "a"


def test_cost_router_picks_the_cheapest(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        f"""
        models:
          pricey: {{factory: {FAKE}, responses: [P], input_cost: 5, output_cost: 10}}
          cheap: {{factory: {FAKE}, responses: [C], input_cost: 1, output_cost: 2}}
        routers:
          cheapest: {{type: cost, models: [pricey, cheap], max_tokens: 16}}
        """,
    )
    router = built.router("cheapest")
    assert isinstance(router, CostAwareRouter)
    message = router.invoke("hello")
    record = route_of(message)
    assert message.content == "C" and record.model == "cheap"
    assert record.estimates["cheap"] < record.estimates["pricey"]


def test_cost_router_budget_and_spend_db_relative_to_the_config(
    tmp_path: Path, elsewhere: Path
) -> None:
    folder = tmp_path / "cfg"
    built = build(
        folder,
        MODELS,
        """
        routers:
          r:
            type: cost
            models: [a, b]
            budget: {usd: 5, per: day, on_exceeded: downgrade}
            spend_db: spend.db
        """,
    )
    router = built.router()
    assert isinstance(router, CostAwareRouter)
    budget: Any = router.budget
    assert budget.usd == 5.0 and budget.per == "day" and budget.on_exceeded == "downgrade"
    assert Path(str(router.spend_db)) == folder / "spend.db"
    assert router.invoke("hi").content == "A"
    assert not list(elsewhere.iterdir())


def test_ab_router_with_variants_experiment_and_a_store_next_to_the_config(
    tmp_path: Path, elsewhere: Path
) -> None:
    folder = tmp_path / "cfg"
    built = build(
        folder,
        MODELS,
        """
        routers:
          exp:
            type: ab
            experiment: e1
            variants: {control: a, treatment: b}
            weights: {control: 0, treatment: 1}
            store: exp.db
        """,
    )
    router = built.router()
    assert isinstance(router, ABRouter)
    try:
        assert router.experiment == "e1" and router.control == "control"
        assert (folder / "exp.db").exists()
        assert not (elsewhere / "exp.db").exists()
        message = router.invoke("hello")
        record = route_of(message)
        assert message.content == "B" and record.model == "b"
        assert record.extra["experiment"] == "e1" and record.extra["variant"] == "treatment"
    finally:
        router.close()


def test_multimodal_router_with_routes(tmp_path: Path) -> None:
    built = build(tmp_path, MODELS, "routers:\n  mm: {type: multimodal, routes: {text: [b, a]}}\n")
    router = built.router()
    assert isinstance(router, MultiModalRouter)
    message = router.invoke("hello")
    record = route_of(message)
    assert message.content == "B" and record.model == "b"
    assert record.extra["route"] == "text"


def test_multimodal_router_with_an_unknown_route_names_it(tmp_path: Path) -> None:
    error = build_fails(
        tmp_path, MODELS, "routers:\n  mm: {type: multimodal, routes: {chat: [a]}}\n"
    )
    assert error.line == 5 and error.field == "routers.mm.routes.chat"
    assert "unknown route 'chat'" in error.problem


def test_routes_name_models_by_key_even_when_they_have_a_name(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        f"""
        models:
          k: {{factory: {FAKE}, responses: [K], name: custom}}
          j: {{factory: {FAKE}, responses: [J]}}
        routers:
          t: {{type: task, routes: {{code_generation: k}}, default: j}}
        """,
    )
    message = built.router().invoke("x", task="code_generation")
    assert message.content == "K" and route_of(message).model == "custom"


def test_a_router_nested_by_name_answers_through_it(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        MODELS,
        """
        routers:
          inner: {type: task, routes: {code_generation: b}, default: a}
          outer: {type: cost, models: [inner]}
        default: outer
        """,
    )
    assert list(built.routers) == ["inner", "outer"]
    outer = built.router()
    assert outer is built.routers["outer"]
    assert outer.spec("inner").model is built.routers["inner"]
    message = outer.invoke("hello", task="code_generation")
    record = route_of(message)
    assert message.content == "B"
    assert record.model == "inner" and record.backend_model == "b"
    assert record.inner is not None and record.inner["model"] == "b"
    assert record.inner["router"] == "inner"


def test_a_cycle_of_routers_names_the_cycle(tmp_path: Path) -> None:
    error = build_fails(
        tmp_path,
        MODELS,
        """
        routers:
          x: {type: cost, models: [y]}
          y: {type: cost, models: [z, a]}
          z: {type: task, models: [x]}
        """,
    )
    assert (error.line, error.field) == (5, "routers.x")
    assert "routers contain each other: x -> y -> z -> x" in error.problem


def test_a_router_containing_itself_is_a_cycle(tmp_path: Path) -> None:
    error = build_fails(tmp_path, MODELS, "routers:\n  me: {type: cost, models: [a, me]}\n")
    assert "me -> me" in error.problem


def test_a_name_of_both_a_model_and_a_router_is_an_error(tmp_path: Path) -> None:
    error = build_fails(tmp_path, MODELS, "routers:\n  a: {type: cost, models: [b]}\n")
    assert (error.line, error.field) == (5, "routers.a")
    assert "'a' names both a model and a router" in error.problem


def test_unknown_model_name_with_did_you_mean(tmp_path: Path) -> None:
    error = build_fails(tmp_path, MODELS, "routers:\n  r: {type: cost, models: [a, bb]}\n")
    assert (error.line, error.field) == (5, "routers.r.models[1]")
    assert "no model or router 'bb'; did you mean 'b'?" in error.problem


def test_unknown_variant_model_is_located_at_the_variant(tmp_path: Path) -> None:
    error = build_fails(
        tmp_path,
        MODELS,
        "routers:\n  e:\n    type: ab\n    experiment: x\n    variants: {control: a, new: zzz}\n",
    )
    assert (error.line, error.field) == (8, "routers.e.variants.new")
    assert "no model or router 'zzz'" in error.problem


def test_default_chooses_the_router(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        MODELS,
        "routers:\n  one: {type: cost, models: [a]}\n  two: {type: cost, models: [b]}\n"
        "default: two\n",
    )
    assert built.default == "two"
    assert built.router() is built.routers["two"]
    assert built.router("one").invoke("x").content == "A"
    assert built.router().invoke("x").content == "B"


def test_unknown_default_is_an_error(tmp_path: Path) -> None:
    error = build_fails(
        tmp_path, MODELS, "routers:\n  main: {type: cost, models: [a]}\ndefault: mian\n"
    )
    assert (error.line, error.field) == (6, "default")
    assert "no router 'mian'; did you mean 'main'?" in error.problem


def test_several_routers_and_no_default(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        MODELS,
        "routers:\n  one: {type: cost, models: [a]}\n  two: {type: cost, models: [b]}\n",
    )
    assert built.default is None
    with pytest.raises(ConfigFileError) as info:
        built.router()
    assert "2 routers (one, two): name one, or set `default:`" in info.value.problem
    assert info.value.field == "routers"
    with pytest.raises(ConfigFileError, match="did you mean 'two'"):
        built.router("tow")
    assert built.router("one") is built.routers["one"]


def test_router_set_without_routers_or_source() -> None:
    with pytest.raises(ConfigurationError, match="defines no routers"):
        RouterSet(models={}, routers={}).router()
    with pytest.raises(ConfigurationError) as info:
        RouterSet(models={}, routers={"r": None}).router("x")  # type: ignore[dict-item]
    assert not isinstance(info.value, ConfigFileError)
    assert "the routers are ['r']" in str(info.value)


def test_circuit_breaker_null_disables_it_and_retry_sets_the_policy(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        MODELS,
        """
        routers:
          disabled: {type: cost, models: [a], circuit_breaker: null, retry: {attempts: 1}}
          tuned: {type: cost, models: [a], circuit_breaker: {failure_threshold: 2, cooldown: 3}}
          plain: {type: cost, models: [a]}
        default: plain
        """,
    )
    disabled = built.router("disabled")
    assert disabled.circuit_breaker is None
    assert disabled.retry is not None and disabled.retry.max_attempts == 1
    tuned = built.router("tuned").circuit_breaker
    assert isinstance(tuned, CircuitBreaker)
    assert (tuned.failure_threshold, tuned.cooldown) == (2, 3.0)
    assert tuned.board is DEFAULT_BOARD
    plain = built.router("plain")
    assert plain.circuit_breaker == CircuitBreaker()  # the router's own default
    assert plain.retry is None


def test_load_router_builds_the_named_or_only_router(tmp_path: Path) -> None:
    path = write(tmp_path, MODELS, "routers:\n  only: {type: task, routes: {x: b}, default: a}\n")
    router = load_router(path)
    assert router.name == "only"
    assert router.invoke("hi", task="x").content == "B"
    assert load_router(os.fspath(path), "only").invoke("hi").content == "A"
    with pytest.raises(ConfigFileError, match="no router 'nope'"):
        load_router(path, "nope")


def test_unknown_model_in_task_routes_or_default_is_an_error(tmp_path: Path) -> None:
    error = build_fails(
        tmp_path, MODELS, "routers:\n  r: {type: task, routes: {x: a}, default: zz}\n"
    )
    assert error.line == 5 and (error.field or "").startswith("routers.r")
    assert "no model or router 'zz'" in error.problem


@pytest.mark.parametrize(
    ("router", "line", "field"),
    [
        (
            "  r:\n    type: task\n    routes: {x: a, y: bb}\n    default: a\n",
            7,
            "routers.r.routes.y",
        ),
        ("  r:\n    type: task\n    routes: {x: a}\n    default: zz\n", 8, "routers.r.default"),
        (
            "  r:\n    type: multimodal\n    routes:\n      text: [a, qq]\n",
            8,
            "routers.r.routes.text[1]",
        ),
    ],
    ids=["task-routes", "task-default", "multimodal-routes"],
)
def test_unknown_model_in_routes_is_located_where_it_is_written(
    tmp_path: Path, router: str, line: int, field: str
) -> None:
    error = build_fails(tmp_path, MODELS, "routers:\n" + router)
    assert (error.line, error.field) == (line, field)


def test_build_model_directly_gives_the_entry_name(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MODELS))
    spec = build_model("other-key", config.models["a"], tmp_path)
    assert spec.name == "other-key"
    assert spec.chat_model.invoke("x").content == "A"


def test_an_ab_store_given_as_a_sqlite_url_is_used_as_is(tmp_path: Path) -> None:
    db = tmp_path / "abs" / "exp.db"
    db.parent.mkdir()
    text = f"""
        routers:
          exp: {{type: ab, experiment: e2, variants: {{control: a, treatment: b}},
                 store: "sqlite:///{db}"}}
        """
    router = build(tmp_path / "cfg", MODELS, text).router()
    try:
        assert isinstance(router, ABRouter)
        router.invoke("hello")
        assert db.exists() and not (tmp_path / "cfg" / "sqlite:").exists()
    finally:
        router.close()


def make_fake(responses: list[str]) -> FakeListChatModel:
    """A function returning a LangChain model (for ``factory: module:make_fake``)."""
    return FakeListChatModel(responses=responses)


def test_an_import_path_function_gets_its_own_keywords_and_the_spec_its_fields(
    tmp_path: Path,
) -> None:
    text = f"""
        models:
          f:
            factory: "{__name__}:make_fake"
            responses: [made]
            tasks: [chat]
            input_cost: 2.5
        routers:
          r: {{type: cost, models: [f]}}
        """
    built = build(tmp_path, text)
    spec = built.models["f"]
    assert spec.name == "f" and spec.tasks == frozenset({"chat"}) and spec.input_cost == 2.5
    assert built.router().invoke("hi").content == "made"


# ------------------------------------------------------------------ shared state


def test_one_state_for_every_router_and_a_router_of_its_own(
    tmp_path: Path, elsewhere: Path
) -> None:
    from llmrouter.resilience._breaker import SQLiteBreakerBoard
    from llmrouter.state._redis_breakers import RedisBreakerBoard

    folder = tmp_path / "cfg"
    built = build(
        folder,
        MODELS,
        """
        state: sqlite:///state.db
        routers:
          spend: {type: cost, models: [a, b], budget: {usd: 1.0, per: day}}
          tasks: {type: task, models: [a, b], default: a}
          remote: {type: task, models: [a], default: a, state: "redis://127.0.0.1:1/0"}
        """,
    )
    spend, tasks = built.router("spend"), built.router("tasks")
    assert spend.state == tasks.state == f"sqlite:///{folder / 'state.db'}"  # beside the file
    for router in (spend, tasks):
        assert isinstance(router.circuit_breaker.board, SQLiteBreakerBoard)
    assert isinstance(built.router("remote").circuit_breaker.board, RedisBreakerBoard)
    spend.invoke("hello")
    assert (folder / "state.db").is_file() and not (elsewhere / "state.db").exists()


def test_a_bad_state_url_names_its_line(tmp_path: Path) -> None:
    error = build_fails(
        tmp_path,
        MODELS,
        """
        routers:
          r: {type: task, models: [a], default: a, state: "postgres://db"}
        """,
    )
    assert error.line == 5 and "is not a state URL" in str(error)


def test_rate_limits_are_shared_through_the_top_level_state(tmp_path: Path) -> None:
    from llmrouter.state._limits import SharedRateLimiter

    shared = build(
        tmp_path / "shared",
        f"""
        models:
          a: {{factory: {FAKE}, responses: [A], rate_limit: {{requests_per_second: 2}}}}
        state: sqlite:///state.db
        routers:
          r: {{type: task, models: [a], default: a}}
        """,
    )
    assert isinstance(shared.router("r").spec("a").rate_limiter, SharedRateLimiter)
    alone = build(
        tmp_path / "alone",
        f"""
        models:
          a: {{factory: {FAKE}, responses: [A], rate_limit: {{requests_per_second: 2}}}}
        routers:
          r: {{type: task, models: [a], default: a}}
        """,
    )
    assert type(alone.router("r").spec("a").rate_limiter).__name__ == "InMemoryRateLimiter"


def test_token_limits_come_from_rate_limit_and_are_shared_through_the_state(
    tmp_path: Path,
) -> None:
    from llmrouter.resilience import TokenRateLimiter
    from llmrouter.state._limits import SharedTokenRateLimiter

    def built(folder: str, state: str) -> Any:
        return build(
            tmp_path / folder,
            f"""
            models:
              a: {{factory: {FAKE}, responses: [A], rate_limit: {{tokens_per_minute: 9000}}}}
              b: {{factory: {FAKE}, responses: [B],
                  rate_limit: {{requests_per_second: 2, tokens_per_minute: 500}}}}
            {state}
            routers:
              r: {{type: task, models: [a, b], default: a}}
            """,
        ).router("r")

    shared = built("shared", "state: sqlite:///state.db")
    a, b = shared.spec("a"), shared.spec("b")
    assert isinstance(a.token_limiter, SharedTokenRateLimiter) and a.rate_limiter is None
    assert a.token_limiter.tokens_per_minute == 9000
    assert b.rate_limiter is not None and b.token_limiter.tokens_per_minute == 500
    alone = built("alone", "").spec("a").token_limiter
    assert type(alone) is TokenRateLimiter and alone.tokens_per_minute == 9000


def test_response_cache_lives_in_the_routers_state(tmp_path: Path) -> None:
    from llmrouter.state import MemoryResponseCache, SQLiteResponseCache

    built = build(
        tmp_path,
        MODELS,
        """
        state: sqlite:///state.db
        routers:
          day: {type: task, models: [a], default: a, response_cache: true}
          minute: {type: task, models: [a], default: a, response_cache: {ttl: 60}}
          alone: {type: task, models: [a], default: a, state: "memory://",
                  response_cache: {ttl: null}}
          plain: {type: task, models: [a], default: a}
        """,
    )
    day, minute = built.router("day").response_store, built.router("minute").response_store
    assert isinstance(day, SQLiteResponseCache) and day.ttl == 86_400
    assert isinstance(minute, SQLiteResponseCache) and minute.ttl == 60
    assert minute.path == str(tmp_path / "state.db")
    alone = built.router("alone").response_store
    assert isinstance(alone, MemoryResponseCache) and alone.ttl is None
    assert built.router("plain").response_store is None
    first = built.router("minute").invoke("hello")
    assert route_of(built.router("minute").invoke("hello")).extra["cache"] == "hit"
    assert route_of(first).extra["cache"] == "miss"


def test_a_semantic_response_cache_in_the_states_sqlite_file(tmp_path: Path) -> None:
    from llmrouter.state import SemanticResponseCache

    built = build(
        tmp_path,
        MODELS,
        """
        state: sqlite:///state.db
        routers:
          r: {type: task, models: [a], default: a,
              response_cache: {semantic: true, threshold: 0.85, ttl: 600}}
          alone: {type: task, models: [a], default: a, state: "memory://",
                  response_cache: {semantic: true}}
        """,
    )
    cache = built.router("r").response_store
    assert isinstance(cache, SemanticResponseCache)
    assert (cache.path, cache.threshold, cache.ttl) == (str(tmp_path / "state.db"), 0.85, 600)
    alone = built.router("alone").response_store
    assert isinstance(alone, SemanticResponseCache) and alone.path == ":memory:"


def test_a_semantic_response_cache_on_a_redis_state_is_on_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    from llmrouter.state import SemanticResponseCache
    from llmrouter.state._vectors import RedisVectors

    built = build(
        tmp_path,
        MODELS,
        f"""
        state: {redis_server.url}
        routers:
          r: {{type: task, models: [a], default: a, response_cache: {{semantic: true}}}}
        """,
    )
    cache = built.router("r").response_store
    assert isinstance(cache, SemanticResponseCache) and isinstance(cache.store, RedisVectors)


def test_a_typo_in_response_cache_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MODELS,
        """
        routers:
          r: {type: task, models: [a], default: a, response_cache: {tll: 60}}
        """,
    )
    with pytest.raises(ConfigFileError, match="did you mean 'ttl'") as info:
        load_config(path)
    assert info.value.line == 5


# ------------------------------------------------------------------ replicas


def test_a_model_entry_with_replicas_is_one_model_over_them(tmp_path: Path) -> None:
    built = build(
        tmp_path,
        f"""
        models:
          east: {{factory: {FAKE}, responses: [E]}}
          west: {{factory: {FAKE}, responses: [W]}}
          gpt: {{replicas: [east, west], balance: weighted, input_cost: 2.0, tasks: [chat]}}
        routers:
          r: {{type: task, models: [gpt], default: gpt}}
        """,
    )
    gpt = built.models["gpt"]
    assert [s.name for s in gpt.replicas] == ["east", "west"] and gpt.balance == "weighted"
    assert gpt.input_cost == 2.0 and gpt.tasks == frozenset({"chat"})
    record = route_of(built.router("r").invoke("hi"))
    assert record.model == "gpt" and record.extra["replica"] in {"east", "west"}


def test_a_replica_that_is_no_entry_names_its_line(tmp_path: Path) -> None:
    error = build_fails(
        tmp_path,
        f"""
        models:
          east: {{factory: {FAKE}, responses: [E]}}
          gpt: {{replicas: [east, wset]}}
        """,
    )
    assert error.line == 3 and "no model entry 'wset'" in str(error)


def test_an_entry_gives_a_factory_or_replicas_not_both(tmp_path: Path) -> None:
    both = f"models:\n  east: {{factory: {FAKE}}}\n  gpt: {{factory: {FAKE}, replicas: [east]}}\n"
    with pytest.raises(ConfigFileError, match="either factory"):
        load_config(write(tmp_path, both))
