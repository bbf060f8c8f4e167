"""`ModelSpec` construction: typed errors for nonsense and typos (issue 9, items 1 and 13)."""

from __future__ import annotations

import math

import pytest
from langchain_core.language_models import FakeListChatModel

from llmrouter import ConfigurationError, ModelSpec


def _model() -> FakeListChatModel:
    return FakeListChatModel(responses=["x"])


@pytest.mark.parametrize("field", ["input_cost", "output_cost", "cached_input_cost"])
@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0])
def test_prices_must_be_finite_and_non_negative(field: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=f"invalid ModelSpec:\n  - {field}: "):
        ModelSpec(name="m", model=_model(), **{field: value})


@pytest.mark.parametrize("field", ["attempt_timeout", "first_token_timeout"])
def test_timeouts_must_be_finite(field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{field}: Input should be a finite number"):
        ModelSpec(name="m", model=_model(), **{field: math.inf})


def test_a_misspelled_field_names_the_closest_one() -> None:
    with pytest.raises(
        ConfigurationError, match=r"input_cots: unknown keyword; did you mean 'input_cost'\?"
    ):
        ModelSpec(name="m", model=_model(), input_cots=1.0)


def test_an_unrelated_unknown_field_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        ModelSpec(name="m", model=_model(), zzz=1)
    assert "zzz: unknown keyword; ModelSpec takes [" in str(info.value)
    assert "'context_window'" in str(info.value)


def test_valid_specs_still_build() -> None:
    spec = ModelSpec(name="m", model=_model(), input_cost=0.5, attempt_timeout=2.5)
    assert spec.cost(1_000_000, 0) == 0.5


def test_warm_up_builds_the_model_and_calls_its_own_warm_up() -> None:
    built: list[str] = []

    class Warm(FakeListChatModel):
        def warm_up(self) -> None:
            built.append("loaded")

    spec = ModelSpec(name="m", model=lambda: Warm(responses=["x"]))
    assert spec.warm_up() is spec
    assert built == ["loaded"] and isinstance(spec.chat_model, Warm)


def test_warm_up_reports_a_bad_local_path_before_any_call(tmp_path: object) -> None:
    from llmrouter.models import huggingface_pipeline

    spec = huggingface_pipeline(f"{tmp_path}/no-such-model", name="local")
    with pytest.raises(ConfigurationError, match="does not exist"):
        spec.warm_up()
