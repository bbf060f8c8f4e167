"""The shape of a config file, as pydantic models (and so as a JSON Schema).

The router sections are generated from the router classes' own fields, so a
field added to a router is configurable at once; only the fields that hold
Python objects (models, classifiers, stores, retry policies, ...) have a
config-file form here, naming other entries by their keys.
"""

from __future__ import annotations

import copy
import functools
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from llmrouter.config._settings import (
    BreakerSettings,
    CacheSettings,
    ClassifierSettings,
    GuardSettings,
    LocalModelSettings,
    RampSettings,
    RateLimitSettings,
    RetrySettings,
    Strict,
)
from llmrouter.serve._settings import ServeSettings
from llmrouter.spec import ModelSpec

ROUTER_TYPES: dict[str, str] = {
    "task": "llmrouter.task:ModelRouter",
    "cost": "llmrouter.cost:CostAwareRouter",
    "ab": "llmrouter.ab:ABRouter",
    "multimodal": "llmrouter.multimodal:MultiModalRouter",
}
"""The ``type:`` of a router entry and the class it builds."""

_NAMES = "names of entries in models: or routers:"
_PATH = "a directory written by `llmrouter fit`"

# Fields that hold Python objects, in their config-file form: (type, default, doc).
_COMMON: dict[str, tuple[Any, Any, str]] = {
    "models": (list[str], [], f"The candidates: {_NAMES}."),
    "retry": (RetrySettings | None, None, "Retry policy (``null``: 2 retries, backoff)."),
    "circuit_breaker": (
        BreakerSettings | None,
        BreakerSettings(),
        "Circuit breaker settings (``null``: no breaker).",
    ),
    "state": (
        str | None,
        None,
        "Where breakers and budgets keep shared state: ``memory://``, ``sqlite:///FILE`` "
        "(beside the config file), ``redis://HOST:PORT/DB`` (``null``: the file's "
        "top-level ``state``, else this process).",
    ),
    "response_cache": (
        bool | CacheSettings,
        False,
        "Cache the models' answers in ``state`` (``true``: kept a day; ``{ttl: SECONDS}``; "
        "see docs/caching.md).",
    ),
}
_OWN: dict[str, dict[str, tuple[Any, Any, str]]] = {
    "task": {
        "classifier": (ClassifierSettings | None, None, "How a task is found when none is given."),
        "predictor": (str | None, None, f"Reorder candidates by predicted quality: {_PATH}."),
    },
    "cost": {
        "predictor": (str | None, None, f"Learned quality prediction: {_PATH}."),
        "spend_db": (str | None, None, "SQLite file of the spend ledger (``null``: default)."),
    },
    "ab": {
        "models": (list[str], [], "Not used by an A/B router: give ``variants``."),
        "variants": (dict[str, str], ..., f"Variant name to the model it uses ({_NAMES})."),
        "store": (str | None, None, "SQLite file of experiment records (``null``: in memory)."),
        "guard": (GuardSettings | None, None, "Automatic canary rollback."),
        "schedule": (RampSettings | None, None, "Shares that change on a clock."),
    },
    "multimodal": {
        "routes": (dict[str, list[str]], {}, f"Task to the models that serve it ({_NAMES})."),
    },
}
# Python-only fields (callables, tokenizer objects, LangChain caches).
_SKIP = frozenset({"cache", "key_fn", "tokenizers"})


REPLICAS = "(replicas)"
"""The ``factory`` of an entry that gives ``replicas`` instead."""


class ModelEntry(BaseModel):
    """One model: a factory of `llmrouter.models` (or any import path) and its keywords.

    Keys other than those listed are passed to the factory, which rejects the
    ones it does not take (a typo is an error, never ignored).
    """

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    factory: str
    """``huggingface_pipeline``, ``openai_compatible``, ``huggingface_endpoint``, ...
    (any `llmrouter.models` factory), or ``package.module:name`` of a function that
    returns a `ModelSpec` or a LangChain model class. Not with ``replicas``."""
    replicas: list[str] = Field(default_factory=list)
    """Other entries of ``models:`` that serve this same model: each try goes to one of
    them (``balance``), failing over to the next (see docs/replicas.md)."""
    name: str | None = None
    """The name routers and records use (default: this entry's key)."""
    retry: RetrySettings | None = None
    """Retry policy of this model (``null``: the router's)."""
    rate_limit: RateLimitSettings | None = None
    """Request and token rate limits in front of this model."""
    tasks: list[str] = Field(default_factory=list)
    """Task names this model serves (none: any task)."""
    tags: list[str] = Field(default_factory=list)
    """Free-form labels."""

    @field_validator("tasks", "tags", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _replicas_need_no_factory(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("replicas"):
            if "factory" in data:
                raise ValueError(
                    "give either factory: (one endpoint) or replicas: (names of other "
                    "entries that serve the same model), not both"
                )
            data = {**data, "factory": REPLICAS}
        return data

    @model_validator(mode="after")
    def _no_limit_on_a_group(self) -> ModelEntry:
        if self.replicas and self.rate_limit is not None:
            raise ValueError("rate_limit belongs on each replica's own entry")
        return self


def _spec_fields() -> dict[str, Any]:
    own = set(ModelEntry.model_fields) | {"model", "rate_limiter", "token_limiter"}
    return {
        name: (info.annotation, _copy(info))
        for name, info in ModelSpec.model_fields.items()
        if name not in own
    }


def _copy(info: FieldInfo) -> FieldInfo:
    # a router's or spec's own field, re-used as is (constraints, default, docstring)
    return copy.copy(info)


def _field(annotation: Any, default: Any, doc: str) -> tuple[Any, Any]:
    if default is ...:
        return annotation, Field(description=doc)
    if isinstance(default, list | dict | BaseModel):
        factory = default.model_copy if isinstance(default, BaseModel) else default.copy
        return annotation, Field(default_factory=factory, description=doc)
    return annotation, Field(default=default, description=doc)


def router_class(kind: str) -> type[BaseChatModel]:
    """The router class of ``type: kind``."""
    import importlib

    module, _, name = ROUTER_TYPES[kind].partition(":")
    cls: type[BaseChatModel] = getattr(importlib.import_module(module), name)
    return cls


@functools.cache
def router_entry(kind: str) -> type[BaseModel]:
    """The config model of a ``type: kind`` router entry."""
    cls = router_class(kind)
    inherited = set(BaseChatModel.model_fields)
    overrides = {**_COMMON, **_OWN[kind]}
    fields: dict[str, Any] = {"type": (Literal[kind], Field(description="The router kind."))}
    for name, info in cls.model_fields.items():
        if name in inherited or name in _SKIP:
            continue
        if name in overrides:
            fields[name] = _field(*overrides[name])
        else:
            fields[name] = (info.annotation, _copy(info))
    for name, override in overrides.items():  # config-only keys (e.g. ``variants``)
        fields.setdefault(name, _field(*override))
    doc = (cls.__doc__ or "").strip().split("\n\n", 1)[0]
    return create_model(
        f"{cls.__name__}Entry",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        __doc__=f"A `{cls.__name__}`. {doc}",
        **fields,
    )


@functools.cache
def config_model() -> type[BaseModel]:
    """The model of a whole config file."""
    model_entry = create_model(
        "ModelEntryWithSpecFields",
        __base__=ModelEntry,
        __doc__=ModelEntry.__doc__,
        **_spec_fields(),
    )
    entries = tuple(router_entry(kind) for kind in ROUTER_TYPES)
    union: Any = entries[0]
    for entry in entries[1:]:
        union = union | entry
    router = Annotated[union, Field(discriminator="type")]
    return create_model(
        "RouterConfigFile",
        __base__=Strict,
        __doc__="A llmrouter config file: models, the routers over them, and a default.",
        version=(Literal[1], Field(default=1, description="The config format version.")),
        models=(dict[str, model_entry], Field(description="Models by name.")),
        routers=(dict[str, router], Field(default_factory=dict, description="Routers by name.")),
        state=(
            str | None,
            Field(
                default=None,
                description="Shared state of every router that sets none: ``memory://``, "
                "``sqlite:///FILE``, ``redis://HOST:PORT/DB`` (see docs/scaling.md).",
            ),
        ),
        local_models=(
            LocalModelSettings,
            Field(
                default_factory=LocalModelSettings,
                description="Memory budget of the local models loaded in the process.",
            ),
        ),
        serve=(
            ServeSettings,
            Field(default_factory=ServeSettings, description="How `llmrouter serve` listens."),
        ),
        default=(
            str | None,
            Field(
                default=None,
                description="The router used when none is named (default: the only one).",
            ),
        ),
    )
