"""`MultiModalRouter`: route each request by what it carries and what it asks for."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseLanguageModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig
from pydantic import Field, model_validator

from llmrouter.core import BaseRouter, Ranking, RouteRequest
from llmrouter.errors import ModalityError
from llmrouter.multimodal._detect import (
    Found,
    as_prompt_value,
    inspect_content,
    last_human,
    sniff_mime,
)
from llmrouter.spec import ModelSpec

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["ROUTES", "ModalityError", "MultiModalInput", "MultiModalRouter"]

ROUTES = ("text", "image_generation", "image_to_text", "speech_to_text", "embeddings")
"""The routes (task names) a `MultiModalRouter` knows, in detection order."""

#: Routes that take a text-only request (used when there is no ``text`` route).
_TEXT_INPUT = ("text", "image_generation", "embeddings")

MultiModalInput: TypeAlias = (
    "LanguageModelInput | Mapping[str, Any] | bytes | os.PathLike[str] | PILImage"
)
"""What `MultiModalRouter` accepts: anything a chat model accepts, plus a dict
(``{"image": ..., "text": ...}``, ``{"audio": ...}``), raw bytes, a path or a PIL image."""


class MultiModalRouter(BaseRouter):
    """Route each request to a model that can do it: text, images, speech, embeddings.

    Give the models per route, as keywords -- ``text``, ``image_generation``,
    ``image_to_text``, ``speech_to_text``, ``embeddings`` -- each a `ModelSpec`, a
    LangChain model (an `Embeddings` under ``embeddings``), or a list of them
    (tried in order: the first answers, the others are fallbacks). Or give
    ``models=[...]`` with each spec's ``modality`` set (``llmrouter.models``
    factories set it); a spec also joins the routes named in its ``tasks``, so a
    vision chat model with ``tasks={"image_to_text"}`` serves both.

    The route comes from, in order: the ``task`` keyword (or ``.bind(task=...)``,
    ``config["metadata"]["task"]``); else the content of the last human message:
    images go to ``image_to_text``, audio to ``speech_to_text``, text alone to
    ``text`` (or, with no ``text`` route, to the only route that takes text).
    An input with both images and audio, or with video/documents, raises
    `ModalityError` naming what was found and the routes that exist. A ``task``
    that is not a route but a task some models declare (``tasks={"code"}``)
    routes by content among the models that serve it.

    Besides what any chat model accepts, ``invoke``/``stream``/``batch`` take a
    PIL image, bytes (PNG, JPEG, GIF, WEBP, WAV, MP3, FLAC, OGG are recognised;
    other bytes are read as UTF-8 text, as by every router),
    a `pathlib.Path`, or a dict: ``{"image": img_or_path_or_url, "text": "..."}``,
    ``{"images": [...]}``, ``{"audio": "meeting.wav"}``. Answers are standard
    content blocks: generated images as base64 PNG image blocks, captions and
    transcripts as text, embeddings as a JSON array (see `llmrouter.multimodal._content`).

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter.multimodal._router import MultiModalRouter
        >>> chat = FakeListChatModel(responses=["Hello!"])
        >>> captioner = FakeListChatModel(responses=["a red square"])
        >>> mm = MultiModalRouter(text=chat, image_to_text=captioner)
        >>> mm.routes
        {'text': ['text'], 'image_to_text': ['image_to_text']}
        >>> png = bytes.fromhex("89504e470d0a1a0a")  # a PNG signature is enough to route
        >>> reply = mm.invoke({"image": png, "text": "What is in this picture?"})
        >>> reply.content, reply.response_metadata["route"]["reason"]
        ('a red square', 'input carries text, 1 image: image_to_text')
        >>> mm.invoke("Hi").response_metadata["model_name"]
        'text'
    """

    models: list[ModelSpec] = Field(default_factory=list)
    """Every candidate model; filled from the route keywords (may also be given)."""
    routes: dict[str, list[str]] = Field(default_factory=dict)
    """Route name -> model names in the order tried. Built from the keywords and
    each model's ``modality``/``tasks``; rarely given by hand."""

    # ------------------------------------------------------------ construction

    @classmethod
    def _keywords(cls) -> set[str]:
        return super()._keywords() | set(ROUTES)

    @model_validator(mode="before")
    @classmethod
    def _collect_routes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        models: list[Any] = list(data.get("models") or [])
        routes: dict[str, list[str]] = {k: list(v) for k, v in (data.get("routes") or {}).items()}
        for route in ROUTES:
            value = data.pop(route, None)
            if value is None:
                continue
            items = list(value) if isinstance(value, list | tuple) else [value]
            for i, item in enumerate(items):
                spec = _as_spec(route, item, i, len(items))
                if spec.modality not in ("text", route) and spec.modality in ROUTES:
                    raise ValueError(
                        f"{spec.name!r} has modality {spec.modality!r} but was given as {route}=; "
                        f"pass it as {spec.modality}=..., or give it modality={route!r}"
                    )
                if not any(spec is m for m in models):
                    models.append(spec)
                names = routes.setdefault(route, [])
                if spec.name not in names:
                    names.append(spec.name)
        placed = {name for names in routes.values() for name in names}
        for spec in models:
            if not isinstance(spec, ModelSpec) or spec.name in placed:
                continue
            for route in [spec.modality, *sorted(spec.tasks)]:
                if route in ROUTES and spec.name not in routes.setdefault(route, []):
                    routes[route].append(spec.name)
        data["models"] = models
        data["routes"] = {route: names for route, names in routes.items() if names}
        return data

    @model_validator(mode="after")
    def _routes_are_valid(self) -> MultiModalRouter:
        names = {s.name for s in self.models}
        for route, targets in self.routes.items():
            if route not in ROUTES:
                raise ValueError(f"unknown route {route!r}: routes are {list(ROUTES)}")
            unknown = [t for t in targets if t not in names]
            if unknown:
                raise ValueError(
                    f"routes[{route!r}] names unknown models {unknown}; models are {sorted(names)}"
                )
        routed = {t for targets in self.routes.values() for t in targets}
        for spec in self.models:
            if spec.name not in routed:
                raise ValueError(
                    f"model {spec.name!r} has modality {spec.modality!r}, which is no route; "
                    f"set modality to one of {list(ROUTES)} or pass it as a keyword, "
                    f"e.g. image_generation=spec"
                )
        return self

    # ------------------------------------------------------------------ input

    def _convert_input(self, model_input: Any) -> PromptValue:
        if isinstance(model_input, bytes | bytearray) and sniff_mime(bytes(model_input)) is None:
            # text as UTF-8, as every router reads bytes (the base accepts them at run time)
            return super()._convert_input(cast(Any, model_input))
        return as_prompt_value(model_input)

    def invoke(  # a wider input than a chat model's; the same call otherwise
        self,
        input: MultiModalInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return super().invoke(input, config, stop=stop, **kwargs)  # type: ignore[arg-type]

    async def ainvoke(
        self,
        input: MultiModalInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return await super().ainvoke(input, config, stop=stop, **kwargs)  # type: ignore[arg-type]

    def stream(
        self,
        input: MultiModalInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        yield from super().stream(input, config, stop=stop, **kwargs)  # type: ignore[arg-type]

    async def astream(
        self,
        input: MultiModalInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        stream = super().astream(input, config, stop=stop, **kwargs)  # type: ignore[arg-type]
        async for chunk in stream:
            yield chunk

    # ---------------------------------------------------------------- ranking

    def rank(self, request: RouteRequest) -> Ranking:
        found = inspect_content(last_human(request.messages))
        task = request.task
        extra: dict[str, Any] = {"input": found.describe()}
        if task in self.routes:
            route, reason = task, f"task {task!r} given"
            candidates = self._candidates(route)
        elif task in ROUTES:
            raise self._error(f"task {task!r} was asked for, but there is no {task} route", found)
        else:
            route, reason = self._detect(found, task)
            candidates = self._candidates(route)
            if task is not None:
                candidates = [s for s in candidates if s.serves(task)]
                if not candidates:
                    raise self._error(
                        f"no {route} model serves task {task!r} (and it is no route)", found
                    )
                reason += f", models serving {task!r}"
        extra["route"] = route
        return Ranking(
            candidates,
            reason,
            task=task if task is not None else route,
            task_source=request.task_source or "detected",
            extra=extra,
        )

    def _candidates(self, route: str) -> list[ModelSpec]:
        return [self.spec(name) for name in self.routes[route]]

    def _detect(self, found: Found, task: str | None) -> tuple[str, str]:
        """The route for ``found`` (and why), or `ModalityError`."""
        given = f"task {task!r} is no route and " if task is not None else ""
        if found.other:
            raise self._error(f"{given}no route reads {', '.join(found.other)}", found)
        if found.images and found.audio:
            raise self._error(
                f"{given}the input is ambiguous: it carries images and audio. Pass "
                "task='image_to_text' or task='speech_to_text'",
                found,
            )
        if found.images or found.audio:
            route = "image_to_text" if found.images else "speech_to_text"
            if route not in self.routes:
                raise self._error(f"{given}there is no {route} route for it", found)
            return route, f"input carries {found.describe()}: {route}"
        if "text" in self.routes:
            return "text", f"input carries {found.describe()}: text"
        takers = [r for r in _TEXT_INPUT if r in self.routes]
        if len(takers) == 1:
            return takers[0], f"text input, no text route: the only text-input route {takers[0]}"
        raise self._error(
            f"{given}there is no text route; pass task=<route> to say what to do with text",
            found,
        )

    def _error(self, problem: str, found: Found) -> ModalityError:
        routes = list(self.routes)
        return ModalityError(
            f"{self.router_name}: {problem}. The input carries {found.describe()}; "
            f"routes are {routes}.",
            found=found.describe(),
            routes=routes,
        )


def _as_spec(route: str, item: Any, index: int, count: int) -> ModelSpec:
    embedder = isinstance(item, Embeddings) or (
        isinstance(item, ModelSpec) and item.modality == "embeddings"
    )
    if route == "embeddings" and not embedder:
        what = (
            f"ModelSpec {item.name!r} of modality {item.modality!r}"
            if isinstance(item, ModelSpec)
            else f"a {type(item).__name__}"
        )
        raise ValueError(
            f"embeddings[{index}] is {what}, not an embedding model; give a LangChain "
            "Embeddings or llmrouter.models.embeddings_model(...)"
        )
    if isinstance(item, ModelSpec):
        return item
    name = route if count == 1 else f"{route}-{index + 1}"
    if isinstance(item, Embeddings):
        from llmrouter.models._multimodal import ChatEmbeddings

        return ModelSpec(name=name, model=ChatEmbeddings(embeddings=item), modality=route)
    if isinstance(item, BaseLanguageModel):
        return ModelSpec(name=name, model=item, modality=route)
    raise ValueError(
        f"{route}[{index}] is a {type(item).__name__}; give a ModelSpec, a LangChain chat "
        "model or LLM" + (", or an Embeddings" if route == "embeddings" else "")
    )
