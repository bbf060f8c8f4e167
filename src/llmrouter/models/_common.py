"""What every model factory shares: splitting `ModelSpec` keywords from backend ones."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseLanguageModel

from llmrouter.spec import ModelFactory, ModelSpec

SPEC_FIELDS = frozenset(ModelSpec.model_fields) - {"name", "model"}


def split_spec_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keywords into (`ModelSpec` fields, keywords for the LangChain class)."""
    spec = {k: v for k, v in kwargs.items() if k in SPEC_FIELDS}
    rest = {k: v for k, v in kwargs.items() if k not in SPEC_FIELDS}
    return spec, rest


def make_spec(
    name: str, model: BaseLanguageModel[Any] | ModelFactory, spec_kwargs: dict[str, Any]
) -> ModelSpec:
    """Build the `ModelSpec` a factory returns."""
    return ModelSpec(name=name, model=model, **spec_kwargs)
