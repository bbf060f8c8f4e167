"""What every model factory shares: splitting `ModelSpec` keywords from backend ones."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.language_models import BaseLanguageModel
from pydantic import BaseModel

from llmrouter.core._keywords import field_names
from llmrouter.errors import reject_unknown_keywords
from llmrouter.spec import ModelFactory, ModelSpec

if TYPE_CHECKING:
    from llmrouter.models._multimodal import MediaChatModel

SPEC_FIELDS = frozenset(ModelSpec.model_fields) - {"name", "model"}


def split_spec_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keywords into (`ModelSpec` fields, keywords for the LangChain class)."""
    spec = {k: v for k, v in kwargs.items() if k in SPEC_FIELDS}
    rest = {k: v for k, v in kwargs.items() if k not in SPEC_FIELDS}
    return spec, rest


def keywords_of(*classes: type[BaseModel]) -> set[str]:
    """Every field name and string alias of pydantic ``classes`` (what they accept)."""
    return set().union(*(field_names(cls) for cls in classes))


@functools.cache
def generation_fields() -> frozenset[str]:
    """The fields of transformers' ``GenerationConfig`` (``max_new_tokens``, ``num_beams``, ...)."""
    from transformers import GenerationConfig

    names = set(GenerationConfig().to_dict())  # type: ignore[no-untyped-call]
    return frozenset(names - {"_from_model_config", "transformers_version"})


F = TypeVar("F", bound=Callable[..., ModelSpec])


def recorded(factory: F) -> F:
    """Make ``factory``'s specs remember the call that built them, so they pickle as
    that call (the models they hold, with HTTP clients or loaded weights, cannot)."""

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> ModelSpec:
        spec = factory(*args, **kwargs)
        private = spec.__pydantic_private__
        if private is not None:
            private["_recipe"] = (build, args, dict(kwargs))
        return spec

    return build  # type: ignore[return-value]


def make_spec(
    name: str, model: BaseLanguageModel[Any] | ModelFactory, spec_kwargs: dict[str, Any]
) -> ModelSpec:
    """Build the `ModelSpec` a factory returns."""
    return ModelSpec(name=name, model=model, **spec_kwargs)


def default_name(model_id_or_path: str) -> str:
    """A spec name from a model id or path: its last component."""
    return model_id_or_path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]


def local_pipeline_spec(
    adapter_cls: type[MediaChatModel],
    model_id_or_path: str,
    *,
    factory: str,
    modality: str,
    name: str | None,
    device: int | str | None,
    model_kwargs: dict[str, Any] | None,
    kwargs: dict[str, Any],
) -> ModelSpec:
    """The `ModelSpec` of a local pipeline adapter (vision, speech, diffusion).

    `ModelSpec` fields go to the spec, the adapter's own fields to the adapter,
    and every other keyword (plus a ``pipeline_kwargs`` dict) is a call default.
    A call default must be one of ``adapter_cls.call_keywords(model_id_or_path)``
    (a typo raises `ConfigurationError`); ``pipeline_kwargs`` is not checked.
    """
    spec_kwargs, rest = split_spec_kwargs(kwargs)
    spec_kwargs.setdefault("modality", modality)
    adapter_fields = set(adapter_cls.model_fields) - {"model_id", "pipeline_kwargs"}
    adapter = {k: rest.pop(k) for k in list(rest) if k in adapter_fields}
    allowed = adapter_cls.call_keywords(model_id_or_path)
    if allowed is not None:
        reject_unknown_keywords(
            f"{factory}({model_id_or_path!r})",
            [k for k in rest if k != "pipeline_kwargs"],
            allowed | adapter_fields | SPEC_FIELDS,
            f"{adapter_cls.call_keywords_hint}; pass other call arguments in "
            "pipeline_kwargs={...} and from_pretrained keywords in model_kwargs={...}",
        )
    call = {**(rest.pop("pipeline_kwargs", None) or {}), **rest}
    model = adapter_cls(
        model_id=model_id_or_path,
        device=device,
        model_kwargs=dict(model_kwargs or {}),
        pipeline_kwargs=call,
        **adapter,
    )
    return make_spec(name or default_name(model_id_or_path), model, spec_kwargs)


def freeze(value: Any) -> Hashable:
    """A hashable, order-independent form of nested settings (a cache key)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, set | frozenset):
        return frozenset(freeze(v) for v in value)
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value if isinstance(value, Hashable) else repr(value)
