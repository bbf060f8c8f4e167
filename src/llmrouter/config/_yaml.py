"""Read a YAML config file into plain data, remembering the line of every value.

PyYAML composes the file into nodes that carry their position; we build the
data from those nodes ourselves so that a later validation error can name the
line, so that a duplicated key is an error (PyYAML silently keeps the last),
and so that ``${VAR}`` references are filled from the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmrouter.errors import ConfigFileError

Location = tuple[str | int, ...]
"""A path into the data: mapping keys and list indices, e.g. ``("routers", "r", "models", 0)``."""

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Source:
    """Where a config came from, and the 1-based line of each value in it."""

    path: Path
    lines: dict[Location, int] = field(default_factory=dict)

    def line_of(self, loc: Location) -> int | None:
        """The line of ``loc``, or of its closest enclosing value that has one."""
        while True:
            if loc in self.lines:
                return self.lines[loc]
            if not loc:
                return None
            loc = loc[:-1]

    def error(self, loc: Location, message: str) -> ConfigFileError:
        """A `ConfigFileError` pointing at ``loc``."""
        return ConfigFileError(message, path=self.path, line=self.line_of(loc), field=dotted(loc))


def dotted(loc: Location) -> str:
    """``("routers", "r", "models", 0)`` as ``routers.r.models[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def read_yaml(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], Source]:
    """The mapping at the top of ``path`` and its `Source`.

    ``${NAME}`` in a string is replaced by the environment variable ``NAME``
    (an error if unset; empty if set to empty), ``${NAME:-fallback}`` falls back
    when it is unset or empty, and ``$$`` is a literal ``$``.
    """
    source = Source(Path(path))
    try:
        text = source.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(
            "no such file; pass the path of a YAML config (see `llmrouter schema`)",
            path=source.path,
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"cannot read it: {exc}", path=source.path) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigFileError(
            f"not valid YAML: {exc.problem or exc}",
            path=source.path,
            line=mark.line + 1 if mark else None,
        ) from exc
    if node is None:
        raise ConfigFileError(
            "the file is empty; a config needs at least `models:`", path=source.path, line=1
        )
    data = _Builder(source, os.environ if environ is None else environ).build(node, ())
    if not isinstance(data, dict):
        raise source.error((), "the top of a config must be a mapping (models:, routers:, ...)")
    return data, source


class _Builder:
    def __init__(self, source: Source, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, loc: Location) -> Any:
        self.source.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, str):
            return self._substitute(value, loc)
        return value

    def _mapping(self, node: yaml.MappingNode, loc: Location) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.source.error(
                    loc, "YAML merge keys (<<) are not supported; repeat the keys"
                )
            key = self.constructor.construct_object(key_node)
            if not isinstance(key, str | int) or isinstance(key, bool):
                raw = str(key_node.value)
                self.source.lines[(*loc, raw)] = key_node.start_mark.line + 1
                raise self.source.error(
                    (*loc, raw),
                    f"the key {raw!r} reads as {key!r} in YAML; quote it: '{raw}'",
                )
            key = str(key)
            if key in out:
                first = self.source.lines[(*loc, key)]
                self.source.lines[(*loc, key)] = key_node.start_mark.line + 1
                raise self.source.error(
                    (*loc, key),
                    f"duplicate key {key!r} (also at line {first}); YAML would silently "
                    "keep only the last one",
                )
            out[key] = self.build(value_node, (*loc, key))
            # a problem with a value is shown at its key (a block value starts a line lower)
            self.source.lines[(*loc, key)] = key_node.start_mark.line + 1
        return out

    def _substitute(self, text: str, loc: Location) -> str:
        def fill(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, fallback = match.group(1), match.group(2)
            value = self.environ.get(name)
            if fallback is not None and not value:
                return fallback
            if value is not None:
                return value
            raise self.source.error(
                loc,
                f"environment variable {name} is not set; export it, or write "
                f"${{{name}:-default}} to give a fallback",
            )

        return _VAR.sub(fill, text) if "$" in text else text
