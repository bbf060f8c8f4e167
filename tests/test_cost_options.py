"""Per-call settings of CostAwareRouter: where they are read from, and bad values refused."""

from __future__ import annotations

import math
from typing import Any

import pytest
from _fixtures.fakes import Recorder
from langchain_core.messages import HumanMessage

from llmrouter import ModelSpec
from llmrouter.core import RouteRequest
from llmrouter.cost._options import call_number, call_option, configured_max_tokens
from llmrouter.cost._router import CostAwareRouter
from llmrouter.errors import ConfigurationError, InvalidRequestError


def request(options: dict[str, Any] | None = None, **metadata: Any) -> RouteRequest:
    return RouteRequest(
        messages=[HumanMessage("hello world")], options=options or {}, metadata=metadata
    )


def test_the_call_keyword_wins_over_metadata_and_user_falls_back_to_user_id() -> None:
    assert call_option(request({"max_cost": 0.1}, max_cost=0.2), "max_cost") == 0.1
    assert call_option(request({"max_cost": None}, max_cost=0.2), "max_cost") == 0.2
    assert call_option(request(user_id="ann"), "user") == "ann"
    assert call_option(request(user="bob", user_id="ann"), "user") == "bob"
    assert call_option(request(), "min_quality") is None


def test_numbers_in_range_are_floats_and_missing_ones_take_the_default() -> None:
    assert call_number(request({"max_cost": 0}), "max_cost", 1.0) == 0.0
    assert call_number(request(max_cost=2), "max_cost", None) == 2.0
    assert call_number(request({"min_quality": 1}), "min_quality", None) == 1.0
    assert call_number(request({"min_quality": 0.0}), "min_quality", 0.5) == 0.0
    assert call_number(request(), "min_quality", 0.5) == 0.5


@pytest.mark.parametrize(
    ("key", "value", "span"),
    [
        ("max_cost", -0.01, ">= 0 and finite"),
        ("max_cost", math.inf, ">= 0 and finite"),
        ("max_cost", math.nan, ">= 0 and finite"),
        ("max_cost", "cheap", ">= 0 and finite"),
        ("max_cost", True, ">= 0 and finite"),
        ("min_quality", 1.01, r"in \[0, 1\]"),
        ("min_quality", -0.1, r"in \[0, 1\]"),
        ("min_quality", math.nan, r"in \[0, 1\]"),
        ("min_quality", "high", r"in \[0, 1\]"),
    ],
)
def test_a_bad_per_call_value_is_an_invalid_request(key: str, value: Any, span: str) -> None:
    for bad in (request({key: value}), request(**{key: value})):
        with pytest.raises(InvalidRequestError, match=f"{key} must be a number {span}") as info:
            call_number(bad, key, None)
        assert not isinstance(info.value, ConfigurationError)


def test_the_router_refuses_a_bad_per_call_value_before_ranking() -> None:
    router = CostAwareRouter(models=[ModelSpec(name="a", model=Recorder(reply="a"))])
    with pytest.raises(InvalidRequestError, match="min_quality must be a number in"):
        router.rank(request(min_quality=1.5))
    with pytest.raises(InvalidRequestError, match="max_cost must be a number >= 0"):
        router.rank(request({"max_cost": math.inf}))
    # construction-time values are the router's configuration
    with pytest.raises(ConfigurationError):
        CostAwareRouter(models=[ModelSpec(name="a", model=Recorder())], min_quality=1.5)


class Limited(Recorder):
    max_tokens: int | None = None
    pipeline_kwargs: dict[str, Any] = {}


def test_configured_max_tokens_reads_pipeline_kwargs_then_the_model() -> None:
    assert configured_max_tokens(Recorder()) is None
    assert configured_max_tokens(Limited(max_tokens=64)) == 64
    both = Limited(max_tokens=64, pipeline_kwargs={"max_new_tokens": 32})
    assert configured_max_tokens(both) == 32
    assert (
        configured_max_tokens(Limited(max_tokens=0, pipeline_kwargs={"max_tokens": True})) is None
    )
