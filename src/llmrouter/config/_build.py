"""Turn a validated config into `ModelSpec`s and routers, naming the line of any mistake."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseLanguageModel
from pydantic import BaseModel, ValidationError

from llmrouter.config._schema import router_class
from llmrouter.config._settings import CacheSettings, RampSettings
from llmrouter.config._yaml import Location, Source
from llmrouter.core._router import BaseRouter
from llmrouter.errors import ConfigFileError, ConfigurationError, closest
from llmrouter.serve._settings import ServeSettings
from llmrouter.spec import ModelSpec, explain_validation_error

# What a factory or a router raises for a bad setting (all turned into ConfigFileError).
_SETTING_ERRORS = (ConfigurationError, ValidationError, ValueError, TypeError, ImportError, OSError)


@dataclass
class RouterSet:
    """Everything a config file defines, built (no model has been called).

    Examples:
        >>> import pathlib, tempfile
        >>> from llmrouter.config import load_config
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "router.yaml"
        >>> _ = path.write_text('''
        ... models:
        ...   fake: {factory: "langchain_core.language_models:FakeListChatModel",
        ...          responses: ["hi"]}
        ... routers:
        ...   main: {type: cost, models: [fake]}
        ... ''')
        >>> built = load_config(path).build()
        >>> built.router().invoke("hello").response_metadata["model_name"]
        'fake'
    """

    models: dict[str, ModelSpec]
    """The models, by their key in ``models:``."""
    routers: dict[str, BaseRouter]
    """The routers, by their key in ``routers:``."""
    default: str | None = None
    """The router used when none is named."""
    source: Source | None = field(default=None, repr=False)
    serve: ServeSettings = field(default_factory=ServeSettings)
    """The ``serve:`` section: address, API keys, limits of ``llmrouter serve``."""
    state: str | None = None
    """The top-level ``state:`` (a SQLite path made absolute beside the config)."""

    def router(self, name: str | None = None) -> BaseRouter:
        """The router called ``name``, or the default one."""
        name = name or self.default
        if name is None:
            if not self.routers:
                raise self._error("the config defines no routers; add a `routers:` section")
            raise self._error(
                f"the config has {len(self.routers)} routers ({', '.join(self.routers)}): "
                "name one, or set `default:`"
            )
        if name not in self.routers:
            hint = closest(name, self.routers)
            raise self._error(
                f"no router {name!r}"
                + (
                    f"; did you mean {hint!r}?"
                    if hint
                    else f"; the routers are {list(self.routers)}"
                )
            )
        return self.routers[name]

    def _error(self, message: str) -> ConfigurationError:
        if self.source is None:
            return ConfigurationError(message)
        return self.source.error(("routers",), message)


class Builder:
    """Builds one validated config: models first, then routers in dependency order."""

    def __init__(self, config: BaseModel, data: dict[str, Any], source: Source) -> None:
        self.config: Any = config  # of the generated `config_model()`
        self.data = data
        self.source = source
        self.models: dict[str, ModelSpec] = {}
        self.routers: dict[str, BaseRouter] = {}
        self._as_member: dict[str, ModelSpec] = {}
        self._building: list[str] = []

    def build(self) -> RouterSet:
        entries: dict[str, Any] = self.config.models
        routers: dict[str, Any] = self.config.routers
        clash = set(entries) & set(routers)
        if clash:
            name = sorted(clash)[0]
            raise self.source.error(
                ("routers", name), f"{name!r} names both a model and a router; rename one"
            )
        self._located(("local_models",), self.config.local_models.apply)
        for key, entry in entries.items():
            if not entry.replicas:
                self.models[key] = self._located(
                    ("models", key),
                    functools.partial(
                        build_model, key, entry, self.source.path.parent, self._state()
                    ),
                )
        for key, entry in entries.items():  # groups, once the entries they name are built
            if entry.replicas:
                self.models[key] = self._located(
                    ("models", key), functools.partial(self._replicated, key, entry)
                )
        for key in routers:
            self._router(key)
        default: str | None = self.config.default
        if default is None and len(routers) == 1:
            default = next(iter(routers))
        elif default is not None and default not in routers:
            hint = closest(default, routers)
            raise self.source.error(
                ("default",),
                f"no router {default!r}" + (f"; did you mean {hint!r}?" if hint else ""),
            )
        serve: ServeSettings = self.config.serve
        for i, api_key in enumerate(serve.keys):
            for j, target in enumerate(api_key.routers):
                if target not in self.routers and target not in self.models:
                    raise self.source.error(
                        ("serve", "keys", i, "routers", j),
                        f"no router or model {target!r} for key {api_key.name!r}",
                    )
        return RouterSet(self.models, self.routers, default, self.source, serve, self._state())

    # ------------------------------------------------------------ routers

    def _router(self, key: str) -> BaseRouter:
        if key in self.routers:
            return self.routers[key]
        if key in self._building:
            cycle = " -> ".join([*self._building[self._building.index(key) :], key])
            raise self.source.error(("routers", key), f"routers contain each other: {cycle}")
        self._building.append(key)
        try:
            entry = self.config.routers[key]
            router: BaseRouter = self._located(
                ("routers", key), lambda: self._make_router(key, entry)
            )
        finally:
            self._building.pop()
        self.routers[key] = router
        return router

    def _member(self, name: str, loc: Location, router: str | None = None) -> ModelSpec:
        """The spec of ``name`` (an entry's key; else a model's ``name:``): a model,
        or a router wrapped as a model."""
        if name in self.models:
            return self.models[name]
        if name in self.config.routers:  # itself included: reported as a cycle
            if name not in self._as_member:
                self._as_member[name] = ModelSpec(name=name, model=self._router(name))
            return self._as_member[name]
        for spec in self.models.values():
            if spec.name == name:
                return spec
        known = [*self.models, *(r for r in self.config.routers if r != router)]
        hint = closest(name, known)
        raise self.source.error(
            loc,
            f"no model or router {name!r}"
            + (f"; did you mean {hint!r}?" if hint else f"; known: {known}"),
        )

    def _state(self) -> str | None:
        """The top-level ``state:`` (a SQLite file taken beside the config)."""
        state: str | None = getattr(self.config, "state", None)
        return None if state is None else self._beside(state)

    def _beside(self, state: str) -> str:
        if state.startswith("sqlite:///"):
            path = self.source.path.parent / state.removeprefix("sqlite:///")  # absolute wins
            return f"sqlite:///{path}"
        return state

    def _make_router(self, key: str, entry: Any) -> BaseRouter:
        kind: str = entry.type
        loc: Location = ("routers", key)
        given = entry.model_dump(exclude_unset=True, exclude={"type"})
        if given.get("state") is None and self._state() is not None:
            given["state"] = self._state()
        kwargs: dict[str, Any] = {"name": key, **given}

        def spec(name: str, *where: str | int) -> ModelSpec:
            return self._member(name, (*loc, *where), router=key)

        members = [spec(n, "models", i) for i, n in enumerate(given.get("models", []))]
        routes = given.get("routes", {})
        if kind == "task":  # routes and default name entries; the router wants spec names
            kwargs["routes"] = {t: spec(n, "routes", t).name for t, n in routes.items()}
            if given.get("default"):
                kwargs["default"] = spec(given["default"], "default").name
            members += [spec(n, "routes", t) for t, n in routes.items()]
            members += [spec(given["default"], "default")] if given.get("default") else []
        if kind == "multimodal":
            kwargs["routes"] = {
                route: [spec(n, "routes", route, i).name for i, n in enumerate(names)]
                for route, names in routes.items()
            }
            members += [
                spec(n, "routes", r, i) for r, ns in routes.items() for i, n in enumerate(ns)
            ]
        if kind == "ab":
            kwargs.pop("models", None)
            kwargs["variants"] = {v: spec(n, "variants", v) for v, n in given["variants"].items()}
        elif members or "models" in given:  # models named in routes/default join the candidates
            kwargs["models"] = list({id(m): m for m in members}.values())
        for name, value in list(kwargs.items()):
            settings = getattr(entry, name, None)
            if name in given and value is not None and hasattr(settings, "build"):
                kwargs[name] = settings.build()  # type: ignore[union-attr]
        self._objects(entry, given, kwargs, loc)
        return router_class(kind)(**kwargs)  # type: ignore[return-value]

    def _objects(
        self, entry: BaseModel, given: dict[str, Any], kwargs: dict[str, Any], loc: Location
    ) -> None:
        """The fields that name files or other entries, as the objects they stand for.

        Files are found relative to the config file's folder."""
        for name in ("predictor", "store", "spend_db"):
            value = given.get(name)
            if isinstance(value, str) and value != ":memory:" and "://" not in value:
                kwargs[name] = given[name] = str(self.source.path.parent / value)
        if isinstance(given.get("state"), str):
            kwargs["state"] = given["state"] = self._beside(given["state"])
        cache = getattr(entry, "response_cache", None)
        if isinstance(cache, CacheSettings):
            kwargs["response_cache"] = cache.cache_in(given.get("state"))
        if given.get("predictor"):
            from llmrouter.learn import QualityPredictor

            kwargs["predictor"] = QualityPredictor.load(given["predictor"])
        if given.get("guard"):
            from llmrouter.ab import CanaryGuard

            kwargs["guard"] = CanaryGuard(**given["guard"])
        schedule = getattr(entry, "schedule", None)
        if isinstance(schedule, RampSettings) and "schedule" in given:
            from llmrouter.ab import RampSchedule

            steps = [(step.after, step.shares) for step in schedule.steps]
            kwargs["schedule"] = RampSchedule(steps, start=schedule.start)
        if given.get("classifier"):
            kwargs["classifier"] = self._classifier(given["classifier"], (*loc, "classifier"))

    def _classifier(self, settings: dict[str, Any], loc: Location) -> Any:
        from llmrouter import classify

        kind = settings.pop("type")
        if kind == "keyword":
            return classify.KeywordClassifier(settings["rules"])
        if kind == "semantic":
            if settings.get("threshold") is None:
                settings.pop("threshold", None)
            return classify.SemanticClassifier(**settings)
        spec = self._member(settings.pop("model"), (*loc, "model"))
        return classify.LLMClassifier(spec.chat_model, **settings)

    # ------------------------------------------------------------ errors

    def _replicated(self, key: str, entry: Any) -> ModelSpec:
        """A ``models:`` entry with ``replicas``: one model over the entries it names."""
        replicas = []
        for i, name in enumerate(entry.replicas):
            spec = self.models.get(name)
            if spec is None:
                others = [k for k, e in self.config.models.items() if not e.replicas]
                hint = closest(name, others)
                raise self.source.error(
                    ("models", key, "replicas", i),
                    f"no model entry {name!r} to serve as a replica"
                    + (f"; did you mean {hint!r}?" if hint else ""),
                )
            replicas.append(spec)
        name, kwargs = _spec_kwargs(key, entry)
        return ModelSpec(name=name, replicas=replicas, **kwargs)

    def _located(self, loc: Location, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except ConfigFileError:
            raise
        except _SETTING_ERRORS as exc:
            raise self.source.error(_closer(loc, self.data, exc), _message(exc)) from exc


def _closer(loc: Location, data: dict[str, Any], exc: BaseException) -> Location:
    """``loc`` or, when the error names a key inside it, that key (for a better line)."""
    node: Any = data
    for part in loc:
        node = node.get(part) if isinstance(node, dict) else None
    text = str(exc)
    found: list[tuple[int, int, Location]] = []

    def search(value: Any, path: Location) -> None:
        if isinstance(value, dict) and len(path) - len(loc) < 3:
            for key, inner in value.items():
                match = re.search(rf"\b{re.escape(str(key))}\b", text)
                if match:  # first named in the message wins; then the deepest
                    found.append((match.start(), -len(path), (*path, key)))
                search(inner, (*path, key))

    search(node, loc)
    return min(found)[2] if found else loc


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return explain_validation_error(exc, exc.title)
    if isinstance(exc, ImportError):
        return f"{exc}; install the package that provides it (see the docs' Models page)"
    return str(exc)


# ------------------------------------------------------------ models

_LOCAL_TRANSFORMERS = frozenset(
    {"huggingface_pipeline", "image_to_text_pipeline", "speech_to_text_pipeline"}
)
"""Factories of local transformers models (a directory with a ``config.json``, or a hub id)."""
_FIRST = "model_id_or_path"
_FILES_BESIDE_CONFIG = ("lock", "cache_dir")
"""Local model options naming a file or folder, taken relative to the config's folder."""


def _spec_kwargs(key: str, entry: Any) -> tuple[str, dict[str, Any]]:
    """The name and the keywords a ``models:`` entry gives (its own keys aside)."""
    given = entry.model_dump(exclude_unset=True)
    own = ("factory", "replicas", "retry", "rate_limit")
    kwargs = {k: v for k, v in given.items() if k not in own}
    name = kwargs.pop("name", None) or key
    for listed in ("tasks", "tags"):
        if listed in kwargs:
            kwargs[listed] = frozenset(kwargs[listed])
    if entry.retry is not None:
        kwargs["retry"] = entry.retry.build()
    return name, kwargs


def build_model(
    key: str, entry: Any, base: Path | None = None, state: str | None = None
) -> ModelSpec:
    """The `ModelSpec` of one ``models:`` entry; a local model path that exists
    relative to ``base`` (the config file's folder) is taken from there. A
    ``rate_limit`` (requests and tokens) is shared through ``state`` (a state URL)
    when one is given."""
    if entry.replicas:
        raise ConfigurationError(f"model entry {key!r} has replicas: build the group instead")
    name, kwargs = _spec_kwargs(key, entry)
    if entry.rate_limit is not None:
        for key, limiter in (
            ("rate_limiter", entry.rate_limit.build(name, state)),
            ("token_limiter", entry.rate_limit.build_tokens(name, state)),
        ):
            if limiter is not None:
                kwargs[key] = limiter
    target = resolve_factory(entry.factory)
    if isinstance(target, type) and issubclass(target, BaseLanguageModel):
        from llmrouter.models._common import split_spec_kwargs

        fields, model_kwargs = split_spec_kwargs(kwargs)
        return ModelSpec(name=name, model=target(**model_kwargs), **fields)
    _first_parameter_as_model(target, kwargs)
    if entry.factory in _LOCAL_TRANSFORMERS and isinstance(kwargs.get(_FIRST), str):
        from llmrouter.models._hf_checks import check_model_source

        given_path = kwargs[_FIRST] = os.path.expanduser(kwargs[_FIRST])
        if base is not None and (base / given_path).is_dir():
            kwargs[_FIRST] = str(base / given_path)
        for option in _FILES_BESIDE_CONFIG:  # the lock and a cache folder sit by the config
            if base is not None and isinstance(kwargs.get(option), str):
                kwargs[option] = str(base / os.path.expanduser(kwargs[option]))
        adapter = kwargs.get("adapter")  # a folder by the config, or a hub repo id
        if base is not None and isinstance(adapter, str) and (base / adapter).is_dir():
            kwargs["adapter"] = str(base / adapter)
        try:
            check_model_source(  # a missing directory fails now, not on first call
                kwargs[_FIRST], revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir")
            )
        except ConfigurationError as exc:
            if "does not exist" not in str(exc):
                raise
            raise ConfigurationError(
                f"model path {given_path!r} is neither in the config's folder ({base}) nor in "
                f"the working directory ({os.getcwd()}); fix the path, or give a Hugging Face "
                "Hub repo id ('org/name')"
            ) from None
    call: Any = target
    spec_kwargs: dict[str, Any] = {}
    if ":" in entry.factory:  # someone else's function: it may not take ModelSpec fields
        from llmrouter.models._common import split_spec_kwargs

        spec_kwargs, kwargs = split_spec_kwargs(kwargs)
    built = call(name=name, **kwargs) if _takes(target, "name") else call(**kwargs)
    if isinstance(built, BaseLanguageModel):
        return ModelSpec(name=name, model=built, **spec_kwargs)
    if not isinstance(built, ModelSpec):
        raise ConfigurationError(
            f"factory {entry.factory!r} returned {type(built).__name__}; "
            "it must return a ModelSpec or a LangChain model"
        )
    changes = {**spec_kwargs, "name": name}
    if all(getattr(built, k) == v for k, v in changes.items()):
        return built
    return ModelSpec(**{**dict(built), **changes})  # validated again, with the entry's fields


def resolve_factory(factory: str) -> Callable[..., Any]:
    """A `llmrouter.models` factory by name, or any callable by ``module:name``."""
    if ":" in factory:
        module, _, attr = factory.partition(":")
        try:
            target = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(
                f"factory {factory!r} cannot be imported ({exc}); write it as "
                "package.module:name and install its package"
            ) from exc
        if not callable(target):
            raise ConfigurationError(f"factory {factory!r} is not callable")
        return target  # type: ignore[no-any-return]
    from llmrouter import models

    if factory not in models.__all__:
        hint = closest(factory, models.__all__)
        raise ConfigurationError(
            f"unknown factory {factory!r}"
            + (f"; did you mean {hint!r}?" if hint else f"; the factories are {models.__all__}")
            + " (or give package.module:name)"
        )
    return getattr(models, factory)  # type: ignore[no-any-return]


def _takes(target: Callable[..., Any], keyword: str) -> bool:
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _first_parameter_as_model(target: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """``model:`` stands for a factory's first parameter (``model_id_or_path``, ...)."""
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return
    first = params[0] if params else None
    if (
        first is not None
        and first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)
        and first.name != "model"
        and "model" in kwargs
        and first.name not in kwargs
    ):
        kwargs[first.name] = kwargs.pop("model")
