"""Routers from a YAML file: models, routers over them, and their settings.

```yaml
models:
  local:
    factory: huggingface_pipeline
    model: ./models/tiny-chat          # the factory's first argument
    tasks: [chat, summarize]
    max_new_tokens: 64
  remote:
    factory: openai_compatible
    model: gpt-4o-mini
    base_url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}         # from the environment, never written down
    input_cost: 0.15
    output_cost: 0.60
routers:
  support-router:
    type: cost                         # task | cost | ab | multimodal
    models: [local, remote]
    budget: {usd: 5, per: day, on_exceeded: downgrade}
```

`load_router` builds the default router (or the one named); `load_config`
validates the file and `RouterConfig.build` builds everything. No model is
called by either: ``llmrouter check router.yaml`` runs exactly that. Every
mistake is a `ConfigFileError` naming the file, the line and the field.
``llmrouter schema`` prints the JSON Schema of the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from llmrouter.config._build import Builder, RouterSet
from llmrouter.config._errors import validation_error
from llmrouter.config._schema import ROUTER_TYPES, config_model
from llmrouter.config._yaml import Source, read_yaml
from llmrouter.core._router import BaseRouter

__all__ = [
    "ROUTER_TYPES",
    "RouterConfig",
    "RouterSet",
    "config_schema",
    "load_config",
    "load_router",
]


class RouterConfig:
    """A validated config file, not yet built.

    Examples:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "router.yaml"
        >>> _ = path.write_text("models:\\n  m: {factory: openai_compatible, model: gpt-4o-mini,"
        ...                     " base_url: 'http://127.0.0.1:9/v1', api_key: k}\\n")
        >>> config = load_config(path)
        >>> list(config.models), list(config.routers)
        (['m'], [])
    """

    def __init__(self, validated: BaseModel, data: dict[str, Any], source: Source) -> None:
        self.validated = validated
        """The validated file (a pydantic model of `config_schema`)."""
        self.data = data
        """The file's data after ``${VAR}`` substitution."""
        self.source = source
        """The path, and the line of every value."""

    @property
    def path(self) -> Path:
        """The config file."""
        return self.source.path

    @property
    def models(self) -> dict[str, Any]:
        """The ``models:`` entries, validated, by key."""
        return dict(getattr(self.validated, "models"))  # noqa: B009 (a generated model)

    @property
    def routers(self) -> dict[str, Any]:
        """The ``routers:`` entries, validated, by key."""
        return dict(getattr(self.validated, "routers"))  # noqa: B009 (a generated model)

    def build(self) -> RouterSet:
        """Build every model and router (lazily loaded models stay unloaded).

        Raises:
            ConfigFileError: a factory or router refuses a setting; the message
                names the line.
        """
        return Builder(self.validated, self.data, self.source).build()


def load_config(path: str | Path) -> RouterConfig:
    """Read and validate a config file (nothing is built or called).

    Raises:
        ConfigFileError: the file is missing, is not YAML, references an unset
            environment variable, or a value is invalid; names the line and field.
    """
    data, source = read_yaml(path)
    try:
        validated = config_model().model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, data, source) from None
    return RouterConfig(validated, data, source)


def load_router(path: str | Path, name: str | None = None) -> BaseRouter:
    """The router ``name`` of a config file (default: its ``default:`` or only router).

    Examples:
        >>> import pathlib, tempfile
        >>> from llmrouter import load_router
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "router.yaml"
        >>> _ = path.write_text('''
        ... models:
        ...   a: {factory: "langchain_core.language_models:FakeListChatModel", responses: [A]}
        ...   b: {factory: "langchain_core.language_models:FakeListChatModel", responses: [B]}
        ... routers:
        ...   by-task: {type: task, routes: {code_generation: b}, default: a}
        ... ''')
        >>> router = load_router(path)
        >>> router.invoke("x", task="code_generation").content
        'B'
    """
    return load_config(path).build().router(name)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a config file (what ``llmrouter schema`` prints)."""
    return config_model().model_json_schema()
