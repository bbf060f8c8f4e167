"""Validation errors of load_config, told as ``file:line: field: what is expected``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llmrouter.config import RouterConfig, load_config
from llmrouter.errors import ConfigFileError, ConfigurationError

FAKE = '"langchain_core.language_models:FakeListChatModel"'
MODELS = f"""
models:
  a: {{factory: {FAKE}, responses: [A]}}
  b: {{factory: {FAKE}, responses: [B]}}
"""


def write(tmp_path: Path, *parts: str) -> Path:
    """A config file of ``parts``, each dedented (MODELS is lines 1 to 3)."""
    path = tmp_path / "router.yaml"
    text = "".join(textwrap.dedent(part).lstrip("\n") for part in parts)
    path.write_text(text, encoding="utf-8")
    return path


def fails(path: Path) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    return info.value


def test_a_valid_file_loads_without_building(tmp_path: Path) -> None:
    path = write(tmp_path, MODELS + "routers:\n  r: {type: cost, models: [a, b]}\n")
    config = load_config(path)
    assert isinstance(config, RouterConfig)
    assert config.path == path
    assert list(config.models) == ["a", "b"] and list(config.routers) == ["r"]
    assert config.routers["r"].models == ["a", "b"]
    assert config.data["models"]["a"]["responses"] == ["A"]


def test_config_file_error_is_a_configuration_error(tmp_path: Path) -> None:
    error = fails(write(tmp_path, "models: 5\n"))
    assert isinstance(error, ConfigurationError) and isinstance(error, ValueError)
    assert (error.line, error.field) == (1, "models")


def test_unknown_key_with_did_you_mean_and_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MODELS,
        """
        routers:
          r:
            type: cost
            models: [a, b]
            max_cots: 0.01
        """,
    )
    error = fails(path)
    assert error.line == 8
    assert error.field == "routers.r.max_cots"
    assert error.problem == "unknown key; did you mean 'max_cost'?"
    assert str(error) == f"{path}:8: routers.r.max_cots: unknown key; did you mean 'max_cost'?"


def test_unknown_key_in_nested_settings_suggests_from_their_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MODELS + "routers:\n  r:\n    type: task\n    default: a\n    retry: {atempts: 2}\n",
    )
    error = fails(path)
    assert (error.line, error.field) == (8, "routers.r.retry.atempts")
    assert "did you mean 'attempts'?" in error.problem


def test_unknown_key_without_a_close_match_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, MODELS + "routers:\n  r: {type: multimodal, zzzzzz: 1}\n")
    error = fails(path)
    assert error.field == "routers.r.zzzzzz"
    assert "unknown key; expected one of [" in error.problem
    assert "'routes'" in error.problem and "'type'" in error.problem


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, MODELS + "router: {r: {type: cost}}\n")
    error = fails(path)
    assert (error.line, error.field) == (4, "router")
    assert "did you mean 'routers'?" in error.problem


def test_unknown_key_with_a_block_value_is_reported_at_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MODELS,
        """
        routers:
          r:
            type: cost
            models: [a]
            retyr:
              attempts: 2
        """,
    )
    error = fails(path)
    assert error.field == "routers.r.retyr"
    assert error.line == 8


def test_unknown_router_type_lists_the_expected_ones(tmp_path: Path) -> None:
    path = write(tmp_path, MODELS + "routers:\n  r: {type: cheapest, models: [a]}\n")
    error = fails(path)
    assert (error.line, error.field) == (5, "routers.r")
    assert "unknown type 'cheapest'" in error.problem
    for kind in ("'task'", "'cost'", "'ab'", "'multimodal'"):
        assert kind in error.problem


def test_unknown_classifier_type_lists_the_expected_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path, MODELS + "routers:\n  r: {type: task, default: a, classifier: {type: regex}}\n"
    )
    error = fails(path)
    assert error.field == "routers.r.classifier"
    assert "unknown type 'regex'; expected one of 'keyword', 'semantic', 'llm'" in error.problem


def test_missing_required_fields_of_an_ab_router(tmp_path: Path) -> None:
    path = write(tmp_path, MODELS + "routers:\n  exp: {type: ab, models: [a, b]}\n")
    error = fails(path)
    assert error.line == 5
    assert error.field == "routers.exp.variants"
    assert error.problem.startswith("required, but not given")
    assert "line 5: routers.exp.experiment: required, but not given" in error.problem


def test_missing_factory_of_a_model(tmp_path: Path) -> None:
    error = fails(write(tmp_path, "models:\n  a: {responses: [A]}\n"))
    assert (error.line, error.field) == (2, "models.a.factory")
    assert error.problem == "required, but not given"


def test_bad_budget_is_reported_once_not_per_union_member(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MODELS,
        """
        routers:
          r:
            type: cost
            models: [a, b]
            budget: {usd: -1, per: day}
        """,
    )
    error = fails(path)
    assert (error.line, error.field) == (8, "routers.r.budget")
    assert "usd" in error.problem and "greater than or equal to 0" in error.problem
    assert "valid list" not in error.problem  # the list[Budget] member is not blamed
    assert "\n  line" not in error.problem  # a single problem
    assert str(error).count("greater than or equal to 0") == 1


def test_bad_value_in_a_list_of_budgets_names_the_item(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MODELS
        + "routers:\n  r:\n    type: cost\n    budget:\n      - {usd: 1}\n      - {usd: -2}\n",
    )
    error = fails(path)
    assert (error.line, error.field) == (9, "routers.r.budget[1]")
    assert "\n  line" not in error.problem


def test_bad_optional_settings_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MODELS + "routers:\n  r:\n    type: cost\n    circuit_breaker: {failure_threshold: 0}\n",
    )
    error = fails(path)
    assert (error.line, error.field) == (7, "routers.r.circuit_breaker.failure_threshold")
    assert error.problem == "Input should be greater than or equal to 1"


def test_a_value_of_the_wrong_kind_for_a_union_is_one_problem(tmp_path: Path) -> None:
    path = write(tmp_path, MODELS + "routers:\n  r: {type: cost, models: [a], budget: 5}\n")
    error = fails(path)
    assert error.field == "routers.r.budget"
    assert "\n  line" not in error.problem


def test_a_key_named_like_the_router_type_does_not_misplace_other_errors(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        MODELS,
        """
        routers:
          r:
            type: cost
            models: [a]
            cost: 1
            max_tokens: many
        """,
    )
    error = fails(path)
    fields = [error.field, *(line.split(": ")[1] for line in error.problem.split("\n")[1:])]
    assert "routers.r.max_tokens" in fields


def test_several_errors_are_listed_with_their_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MODELS,
        """
        routers:
          r:
            type: cost
            models: [a]
            max_cots: 1
            temperature: hot
          s: {type: abc}
          t: {type: ab, models: [a]}
        """,
    )
    error = fails(path)
    message = str(error)
    assert message.startswith(f"{path}:9: routers.r.temperature: ")
    assert error.line == 9
    lines = message.split("\n")[1:]
    assert "  line 8: routers.r.max_cots: unknown key; did you mean 'max_cost'?" in lines
    assert any(x.startswith("  line 10: routers.s: unknown type 'abc'") for x in lines)
    assert "  line 11: routers.t.variants: required, but not given" in lines
    assert "  line 11: routers.t.experiment: required, but not given" in lines
    assert len(lines) == 4


def test_many_errors_are_capped(tmp_path: Path) -> None:
    routers = "".join(f"  r{i}: {{type: nope}}\n" for i in range(15))
    error = fails(write(tmp_path, MODELS + "routers:\n" + routers))
    lines = str(error).split("\n")
    assert lines[0].startswith(f"{tmp_path / 'router.yaml'}:5: routers.r0: unknown type")
    assert len(lines) == 11
    assert lines[-1] == "  ... and 5 more"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (MODELS + "routers:\n  r: {type: cost, max_cots: 1}\n", 5),
        (MODELS + "default: [x]\n", 4),
        ("models:\n  a: {factory: x, input_cost: -3}\n", 2),
        ("models:\n  a: {factory: x}\nversion: 2\n", 3),
    ],
)
def test_message_starts_with_path_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    error = fails(path)
    assert error.path == str(path) and error.line == line
    assert str(error).startswith(f"{path}:{line}: {error.field}: ")
    assert error.problem in str(error)


def test_environment_errors_surface_through_load_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMROUTER_TEST_UNSET_KEY", raising=False)
    path = write(
        tmp_path,
        "models:\n  m:\n    factory: openai_compatible\n    api_key: ${LLMROUTER_TEST_UNSET_KEY}\n",
    )
    error = fails(path)
    assert (error.line, error.field) == (4, "models.m.api_key")
    assert "LLMROUTER_TEST_UNSET_KEY is not set" in error.problem


def test_a_router_without_type_lists_the_router_types(tmp_path: Path) -> None:
    error = fails(write(tmp_path, MODELS, "routers:\n  r: {models: [a]}\n"))
    assert error.line == 5 and error.field == "routers.r"
    assert "missing `type:`" in error.problem and "'cost'" in error.problem


def test_a_classifier_without_type_lists_the_classifier_types(tmp_path: Path) -> None:
    text = "routers:\n  r: {type: task, default: a, classifier: {rules: {x: [y]}}}\n"
    error = fails(write(tmp_path, MODELS, text))
    assert error.field == "routers.r.classifier"
    assert "'keyword', 'semantic', 'llm'" in error.problem
