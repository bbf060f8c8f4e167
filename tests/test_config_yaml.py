"""read_yaml: data with the line of every value, ``${VAR}`` substitution, strictness."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llmrouter.config._yaml import Source, dotted, read_yaml
from llmrouter.errors import ConfigFileError


def write(tmp_path: Path, text: str, name: str = "router.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def fails(path: Path, environ: dict[str, str] | None = None) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as info:
        read_yaml(path, environ=environ or {})
    return info.value


def test_nested_keys_and_list_items_have_their_1_based_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        models:
          local:
            factory: huggingface_pipeline
            tasks:
              - chat
              - summarize
        routers:
          r: {type: cost, models: [local]}
        """,
    )
    data, source = read_yaml(path, environ={})
    assert data == {
        "models": {"local": {"factory": "huggingface_pipeline", "tasks": ["chat", "summarize"]}},
        "routers": {"r": {"type": "cost", "models": ["local"]}},
    }
    assert source.path == path
    assert source.lines[("models", "local", "factory")] == 3
    assert source.lines[("models", "local", "tasks", 0)] == 5
    assert source.lines[("models", "local", "tasks", 1)] == 6
    assert source.lines[("routers", "r", "type")] == 8
    assert source.lines[("routers", "r", "models", 0)] == 8


def test_line_of_falls_back_to_the_closest_enclosing_value(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  m:\n    factory: x\n")
    _, source = read_yaml(path, environ={})
    assert source.line_of(("models", "m", "factory", "no", "such")) == 3
    assert source.line_of(()) == 1
    assert Source(path).line_of(("anything",)) is None


def test_error_of_a_source_names_path_line_and_dotted_field(tmp_path: Path) -> None:
    path = write(tmp_path, "routers:\n  r:\n    models: [a, b]\n")
    _, source = read_yaml(path, environ={})
    error = source.error(("routers", "r", "models", 1), "no such model")
    assert (error.path, error.line, error.field) == (str(path), 3, "routers.r.models[1]")
    assert str(error) == f"{path}:3: routers.r.models[1]: no such model"
    assert dotted(("a", 0, "b", 2)) == "a[0].b[2]"


def test_environment_variables_are_substituted_from_environ(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        key: ${API_KEY}
        url: "http://${HOST}:8000/v1"
        both: ${HOST}${HOST}
        number: 5
        """,
    )
    data, _ = read_yaml(path, environ={"API_KEY": "sk-123", "HOST": "box"})
    assert data == {"key": "sk-123", "url": "http://box:8000/v1", "both": "boxbox", "number": 5}


def test_fallback_applies_when_unset_or_empty_but_not_when_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        unset: ${NOPE:-fallback value}
        empty: ${EMPTY:-used}
        set: ${SET:-ignored}
        blank: ${NOPE:-}
        """,
    )
    data, _ = read_yaml(path, environ={"EMPTY": "", "SET": "given"})
    assert data == {"unset": "fallback value", "empty": "used", "set": "given", "blank": ""}


def test_double_dollar_is_a_literal_dollar(tmp_path: Path) -> None:
    path = write(tmp_path, "price: 5$$\nliteral: $${HOME}\n")
    data, _ = read_yaml(path, environ={"HOME": "/root"})
    assert data == {"price": "5$", "literal": "${HOME}"}


def test_os_environ_is_used_without_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMROUTER_TEST_YAML_VAR", "from-os")
    data, _ = read_yaml(write(tmp_path, "v: ${LLMROUTER_TEST_YAML_VAR}\n"))
    assert data == {"v": "from-os"}


def test_unset_variable_points_at_the_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        models:
          remote:
            factory: openai_compatible
            api_key: ${MISSING_KEY}
        """,
    )
    error = fails(path, environ={"OTHER": "x"})
    assert error.line == 4
    assert error.field == "models.remote.api_key"
    assert "MISSING_KEY is not set" in error.problem
    assert "${MISSING_KEY:-default}" in error.problem
    assert str(error).startswith(f"{path}:4: models.remote.api_key: ")


def test_unset_variable_in_a_list_item_names_its_index(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  m:\n    tags:\n      - ok\n      - ${NOPE}\n")
    error = fails(path)
    assert (error.line, error.field) == (5, "models.m.tags[1]")


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        models:
          a: {factory: x}
          b: {factory: y}
          a: {factory: z}
        """,
    )
    error = fails(path)
    assert error.line == 4
    assert error.field == "models.a"
    assert "duplicate key 'a' (also at line 2)" in error.problem


def test_duplicate_key_with_block_values_names_the_first_key_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        models:
          a:
            factory: x
          a:
            factory: y
        """,
    )
    error = fails(path)
    assert "(also at line 2)" in error.problem


def test_merge_key_is_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        base: &base {factory: x}
        models:
          m:
            <<: *base
            tasks: [chat]
        """,
    )
    error = fails(path)
    assert "merge keys (<<) are not supported" in error.problem
    assert (error.line, error.field) == (4, "models.m")


def test_plain_aliases_still_work(tmp_path: Path) -> None:
    path = write(tmp_path, "tags: &t [a, b]\nother: *t\n")
    data, _ = read_yaml(path, environ={})
    assert data == {"tags": ["a", "b"], "other": ["a", "b"]}


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_file_is_an_error_at_line_1(tmp_path: Path, text: str) -> None:
    error = fails(write(tmp_path, text))
    assert error.line == 1
    assert "the file is empty" in error.problem


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    error = fails(write(tmp_path, text))
    assert error.line == 1 and error.field is None
    assert "the top of a config must be a mapping" in error.problem


def test_non_string_keys_are_rejected(tmp_path: Path) -> None:
    error = fails(write(tmp_path, "models:\n  true: {factory: x}\n"))
    assert error.line == 2
    assert "reads as True in YAML; quote it" in error.problem


def test_integer_keys_become_strings(tmp_path: Path) -> None:
    data, source = read_yaml(write(tmp_path, "shares:\n  1: 0.5\n"), environ={})
    assert data == {"shares": {"1": 0.5}}
    assert source.lines[("shares", "1")] == 2


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("models:\n  a: [1, 2\nrouters: {}\n", 3),
        ("models:\n  a:\n    b: 1\n     c: 2\n", 4),
        ("models:\n  a: *undefined\n", 2),
    ],
)
def test_invalid_yaml_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    error = fails(path)
    assert error.problem.startswith("not valid YAML: ")
    assert error.line == line
    assert str(error).startswith(f"{path}:{line}: not valid YAML")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    error = fails(path)
    assert error.path == str(path)
    assert error.line is None and error.field is None
    assert "no such file" in error.problem
    assert str(error).startswith(f"{path}: no such file")


def test_undecodable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"models: \xff\xfe\n")
    error = fails(path)
    assert "cannot read it" in error.problem


def test_a_variable_set_to_empty_is_empty_not_unset(tmp_path: Path) -> None:
    path = write(tmp_path, "key: ${EMPTY}\n")
    data, _ = read_yaml(path, environ={"EMPTY": ""})
    assert data == {"key": ""}
