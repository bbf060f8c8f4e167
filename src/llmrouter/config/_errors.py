"""pydantic's validation errors, told as ``file:line: field: what is expected``."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from llmrouter.config._schema import ROUTER_TYPES, config_model
from llmrouter.config._yaml import Location, Source, dotted
from llmrouter.errors import ConfigFileError, closest

_WHAT: dict[str, str] = {
    "missing": "required, but not given",
}
_TAGS = {
    "routers": ", ".join(repr(k) for k in ROUTER_TYPES),
    "classifier": "'keyword', 'semantic', 'llm'",
}


def validation_error(exc: ValidationError, data: dict[str, Any], source: Source) -> ConfigFileError:
    """One error for all of ``exc``'s problems, located at the first one."""
    errors = exc.errors()
    located = [(_in_data(tuple(err["loc"]), data, err["type"]), err) for err in errors]
    # a union reports every member that failed; keep the member the value was meant as
    kept = [
        (loc, err)
        for loc, err in located
        if not (
            _mismatch(err)
            and any(
                o is not err and o_loc[: len(loc)] == loc and not _mismatch(o)
                for o_loc, o in located
            )
        )
    ]
    problems: list[tuple[Location, str]] = []
    for loc, err in kept or located:
        same = [i for i, (at, _) in enumerate(problems) if at == loc]
        if same and _mismatch(err):  # no member of a union takes it: one problem, all members
            at, what = problems[same[0]]
            problems[same[0]] = (at, f"{what}, or {_explain(err, data).lower()}")
            continue
        problems.append((loc, _explain(err, data)))
    (loc, first), rest = problems[0], problems[1:]
    more = [f"\n  line {source.line_of(at)}: {dotted(at)}: {what}" for at, what in rest[:9]]
    if len(rest) > 9:
        more.append(f"\n  ... and {len(rest) - 9} more")
    return source.error(loc, first + "".join(more))


def _mismatch(err: ErrorDetails) -> bool:
    return err["type"].endswith("_type") or err["type"] == "is_instance_of"


def _in_data(loc: Location, data: Any, kind: str = "missing") -> Location:
    """pydantic's error location as a path into the file's data.

    pydantic adds steps that are not in the file (the tag of a tagged union,
    the member type of a plain union); they are dropped.
    """
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and node.get("type") == part and i < len(loc) - 1:
            continue  # the tag pydantic adds for a tagged union (even if also a key)
        inside = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if inside:
            path.append(part)
            node = node[part]
        elif (
            i == len(loc) - 1 and kind in ("missing", "extra_forbidden") and isinstance(node, dict)
        ):
            path.append(part)  # a missing or unknown key: named, though not in the file
    return tuple(path)


def _explain(err: ErrorDetails, data: dict[str, Any]) -> str:
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        loc = _in_data(tuple(err["loc"]), data, kind)
        allowed = _keys_at(loc[:-1], data)
        hint = closest(str(loc[-1]), allowed) if loc else None
        if hint:
            return f"unknown key; did you mean {hint!r}?"
        return f"unknown key; expected one of {sorted(allowed)}" if allowed else "unknown key"
    if kind == "union_tag_not_found":
        loc = _in_data(tuple(err["loc"]), data, kind)
        where = "routers" if len(loc) == 2 and loc[0] == "routers" else str(loc[-1] if loc else "")
        tags = _TAGS.get(where)
        return "missing `type:`; " + (
            f"expected one of {tags}" if tags else "see `llmrouter schema`"
        )
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        expected = ctx.get("expected_tags", "")
        return f"unknown type {ctx.get('tag')!r}; expected one of {expected}"
    return _WHAT.get(kind, message) if kind == "missing" else message


def _keys_at(loc: Location, data: Any) -> set[str]:
    """The keys the config format accepts in the mapping at ``loc``."""
    annotation: Any = config_model()
    node = data
    for part in loc:
        annotation = _concrete(annotation, node)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return set()
            annotation = field.annotation
        else:
            args = typing.get_args(annotation)
            annotation = args[-1] if args else Any
        inside = isinstance(node, dict) or (isinstance(node, list) and isinstance(part, int))
        node = node[part] if inside else None
    annotation = _concrete(annotation, node)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return set(annotation.model_fields)
    return set()


def _concrete(annotation: Any, node: Any) -> Any:
    """Unwrap ``Annotated``/``Optional``; of a union of models, the one whose
    ``type`` matches ``node``'s (tagged unions), or the first."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        tag = node.get("type") if isinstance(node, dict) else None
        for model in models:
            field = model.model_fields.get("type")
            if field is not None and tag in typing.get_args(field.annotation):
                return model
        return models[0] if models else (members[0] if members else Any)
    return annotation
