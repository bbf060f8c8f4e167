"""The config format: router entries generated from the router classes' own fields."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from pydantic import ValidationError

from llmrouter.ab import ABRouter
from llmrouter.config import ROUTER_TYPES, config_schema
from llmrouter.config._schema import ModelEntry, config_model, router_class, router_entry
from llmrouter.config._settings import BreakerSettings, RetrySettings
from llmrouter.cost import CostAwareRouter
from llmrouter.multimodal import MultiModalRouter
from llmrouter.task import ModelRouter

CLASSES: dict[str, type[BaseChatModel]] = {
    "task": ModelRouter,
    "cost": CostAwareRouter,
    "ab": ABRouter,
    "multimodal": MultiModalRouter,
}
PYTHON_ONLY = {"cache", "key_fn", "tokenizers"}


def defs() -> dict[str, Any]:
    definitions: dict[str, Any] = config_schema()["$defs"]
    return definitions


def test_json_schema_of_the_whole_file() -> None:
    schema = config_model().model_json_schema()
    assert schema == config_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert {"version", "models", "routers", "default"} <= set(schema["properties"])
    assert schema["required"] == ["models"]
    assert schema["additionalProperties"] is False
    assert config_model() is config_model()  # built once


def test_routers_are_a_union_tagged_by_type() -> None:
    routers = config_schema()["properties"]["routers"]["additionalProperties"]
    assert routers["discriminator"]["propertyName"] == "type"
    assert set(routers["discriminator"]["mapping"]) == set(ROUTER_TYPES)


def test_router_types_name_the_router_classes() -> None:
    assert set(ROUTER_TYPES) == set(CLASSES)
    for kind, cls in CLASSES.items():
        assert router_class(kind) is cls


@pytest.mark.parametrize("kind", list(CLASSES))
def test_each_entry_has_its_router_class_own_fields(kind: str) -> None:
    cls = CLASSES[kind]
    entry = router_entry(kind)
    own = set(cls.model_fields) - set(BaseChatModel.model_fields) - PYTHON_ONLY
    assert own <= set(entry.model_fields)
    assert typing.get_args(entry.model_fields["type"].annotation) == (kind,)
    assert not PYTHON_ONLY & set(entry.model_fields)
    assert not {"callbacks", "verbose", "tags", "metadata"} & set(entry.model_fields)
    assert entry.__name__ == f"{cls.__name__}Entry"
    assert cls.__name__ in (entry.__doc__ or "")


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("cost", {"max_cost", "budget", "objective", "spend_db", "min_quality"}),
        ("task", {"routes", "default", "classifier", "predictor"}),
        ("ab", {"variants", "experiment", "weights", "control", "store", "guard", "schedule"}),
        ("multimodal", {"routes"}),
    ],
)
def test_entries_have_the_expected_keys(kind: str, fields: set[str]) -> None:
    properties = set(defs()[router_entry(kind).__name__]["properties"])
    assert fields | {"type", "models", "retry", "circuit_breaker"} <= properties


def test_python_only_fields_are_not_in_the_schema() -> None:
    assert "tokenizers" in CostAwareRouter.model_fields  # really a field of the class
    assert "key_fn" in ABRouter.model_fields
    for kind in CLASSES:
        properties = defs()[router_entry(kind).__name__]["properties"]
        assert not PYTHON_ONLY & set(properties)


def test_router_fields_keep_their_types_constraints_and_docstrings() -> None:
    cost = router_entry("cost").model_fields
    assert cost["max_cost"].annotation == CostAwareRouter.model_fields["max_cost"].annotation
    assert cost["budget"].annotation == CostAwareRouter.model_fields["budget"].annotation
    description = CostAwareRouter.model_fields["max_cost"].description
    assert description and cost["max_cost"].description == description
    properties = defs()["CostAwareRouterEntry"]["properties"]
    assert properties["max_cost"]["description"] == description
    assert properties["budget"]["description"]
    assert defs()["ABRouterEntry"]["properties"]["experiment"]["description"]


def test_fields_holding_objects_have_a_config_form() -> None:
    task = defs()["ModelRouterEntry"]["properties"]
    assert task["models"]["type"] == "array"
    assert task["models"]["items"] == {"type": "string"}
    assert task["routes"]["description"]
    retry = router_entry("cost").model_fields["retry"].annotation
    assert RetrySettings in typing.get_args(retry)
    breaker = router_entry("cost").model_fields["circuit_breaker"]
    assert isinstance(breaker.get_default(call_default_factory=True), BreakerSettings)
    ab = defs()["ABRouterEntry"]
    assert set(ab["required"]) == {"type", "variants", "experiment"}
    assert ab["properties"]["variants"]["additionalProperties"] == {"type": "string"}
    multimodal = defs()["MultiModalRouterEntry"]["properties"]["routes"]
    assert multimodal["additionalProperties"]["items"] == {"type": "string"}


def test_descriptions_come_from_attribute_docstrings() -> None:
    retry = defs()["RetrySettings"]["properties"]
    assert retry["attempts"]["description"].startswith("Tries in all")
    model = defs()["ModelEntryWithSpecFields"]["properties"]
    assert "package.module:name" in model["factory"]["description"]
    assert model["name"]["description"].startswith("The name routers and records use")
    described = [
        name
        for name, prop in defs()["CostAwareRouterEntry"]["properties"].items()
        if prop.get("description", "").strip()
    ]
    assert len(described) >= 20


def test_router_entries_forbid_unknown_keys() -> None:
    with pytest.raises(ValidationError) as info:
        router_entry("cost").model_validate({"type": "cost", "max_cots": 1})
    assert [e["type"] for e in info.value.errors()] == ["extra_forbidden"]
    for kind in CLASSES:
        assert defs()[router_entry(kind).__name__]["additionalProperties"] is False


def test_model_entry_allows_extra_keys_for_the_factory() -> None:
    entry = ModelEntry.model_validate(
        {"factory": "openai_compatible", "model": "gpt-4o-mini", "temperature": 0.2}
    )
    assert entry.model_extra == {"model": "gpt-4o-mini", "temperature": 0.2}
    assert entry.name is None and entry.tasks == []
    assert defs()["ModelEntryWithSpecFields"]["additionalProperties"] is True


def test_model_entry_of_the_file_has_the_spec_fields() -> None:
    validated: Any = config_model().model_validate(
        {"models": {"m": {"factory": "x", "input_cost": 1.5, "tasks": "chat", "extra": [1]}}}
    )
    entry = validated.models["m"]
    assert entry.input_cost == 1.5
    assert entry.tasks == ["chat"]  # a single task may be written as a string
    assert entry.model_extra == {"extra": [1]}
    properties = defs()["ModelEntryWithSpecFields"]["properties"]
    assert {"input_cost", "output_cost", "context_window", "quality"} <= set(properties)
    assert not {"model", "rate_limiter"} & set(properties)  # model is the factory's
    assert "rate_limit" in properties and properties["factory"]["type"] == "string"
    with pytest.raises(ValidationError):
        config_model().model_validate({"models": {"m": {"factory": "x", "input_cost": -1}}})


def test_a_file_validates_into_typed_entries() -> None:
    validated: Any = config_model().model_validate(
        {
            "models": {"a": {"factory": "x"}},
            "routers": {
                "t": {"type": "task", "routes": {"code": "a"}, "default": "a"},
                "c": {"type": "cost", "models": ["a"], "budget": {"usd": 5, "per": "day"}},
            },
        }
    )
    routers: dict[str, Any] = validated.routers
    assert routers["c"].budget.usd == 5.0
    assert type(routers["t"]) is router_entry("task")
    assert type(routers["c"]) is router_entry("cost")
    assert validated.version == 1 and validated.default is None
