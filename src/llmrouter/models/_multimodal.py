"""What every multimodal backend shares, plus the generic ones: embeddings, HF inference.

Each backend is a `BaseChatModel` whose input is the last human message (its
text and standard image/audio blocks, see `llmrouter.multimodal._content`) and whose answer
is an `AIMessage` with standard blocks: generated images as base64 PNG image
blocks, captions and transcripts as text, embeddings as a JSON array.

Local models load lazily on first use and are shared process-wide, one per
(kind, model id, settings), like `llmrouter.models._huggingface`; one call at a
time runs on each. Async calls run in worker threads (LangChain's executor),
so the event loop keeps running.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables.config import run_in_executor
from pydantic import Field, PrivateAttr, SecretStr, model_validator

from llmrouter.errors import ConfigurationError, ModalityError, reject_unknown_keywords
from llmrouter.models._common import (
    SPEC_FIELDS,
    freeze,
    generation_fields,
    keywords_of,
    make_spec,
    recorded,
    split_spec_kwargs,
)
from llmrouter.models._hf_loading import KIND as TEXT_KIND
from llmrouter.models._registry import registry
from llmrouter.multimodal._detect import as_prompt_value, inspect_content, last_human
from llmrouter.multimodal._media import image_block, read_block
from llmrouter.spec import ModelSpec

if TYPE_CHECKING:
    from transformers import Pipeline

__all__ = [
    "ChatEmbeddings",
    "ChatHuggingFaceInference",
    "LazyEmbeddings",
    "MediaChatModel",
    "clear_media_models",
    "embeddings_model",
    "huggingface_inference",
    "loaded_media_models",
]

T = TypeVar("T")

#: Generic chat keywords that mean nothing to a media model; dropped, not errors,
#: because a router passes its defaults (``temperature``, ...) to every route.
CHAT_ONLY_KEYWORDS = frozenset({"temperature", "top_p", "stop", "max_tokens", "max_new_tokens"})


# --------------------------------------------------------------------- shared loading


@dataclass(eq=False)
class SharedModel:
    """One loaded model (pipeline), shared by every adapter with the same settings."""

    name: str
    """``kind:model_id``, as listed by `loaded_media_models`."""
    model: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while the model runs: one call at a time per loaded model."""


def shared_model(
    kind: str, model_id: str, settings: Mapping[str, Any], load: Callable[[], Any]
) -> SharedModel:
    """The loaded model for (kind, model id, settings), calling ``load`` only when it is
    not loaded (first use, or unloaded by the memory budget since)."""
    return registry.get(
        kind, model_id, freeze(settings), lambda: SharedModel(f"{kind}:{model_id}", load())
    )


def loaded_media_models() -> list[str]:
    """``kind:model_id`` of every multimodal model loaded in this process.

    Examples:
        >>> from llmrouter.models._multimodal import loaded_media_models
        >>> isinstance(loaded_media_models(), list)
        True
    """
    return [m.name for m in registry.loaded() if not m.name.startswith(f"{TEXT_KIND}:")]


def clear_media_models() -> None:
    """Forget every shared multimodal model (calls running on one finish with it)."""
    registry.clear(exclude=TEXT_KIND)


def device_kwargs(device: int | str | None) -> dict[str, Any]:
    """``transformers.pipeline`` keywords for ``device`` (``"auto"`` becomes a device map)."""
    if device is None:
        return {}
    if device == "auto":
        return {"device_map": "auto"}
    return {"device": device}


# ------------------------------------------------------------- call keywords


@functools.cache
def pipeline_arguments(pipeline_cls: type[Pipeline]) -> frozenset[str]:
    """What a call of a transformers pipeline of class ``pipeline_cls`` takes by name:
    its ``_sanitize_parameters`` and ``Pipeline.__call__``'s own (``batch_size``, ...)."""
    from transformers import Pipeline

    names = set(inspect.signature(pipeline_cls._sanitize_parameters).parameters)
    names |= set(inspect.signature(Pipeline.__call__).parameters)
    return frozenset(names - {"self", "inputs", "args", "kwargs"})


def media_settings(
    defaults: Mapping[str, Any], call: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An adapter's defaults and a call's keywords, with ``max_tokens`` read as
    ``max_new_tokens``, and the call's generic chat keywords (``temperature``, ...)
    dropped: a router's are not meant for this model; the adapter's own defaults are."""
    defaults, call = dict(defaults), dict(call)
    for source in (defaults, call):
        if "max_tokens" in source:
            source.setdefault("max_new_tokens", source.pop("max_tokens"))
    kept = {k: v for k, v in call.items() if k == "max_new_tokens" or k not in CHAT_ONLY_KEYWORDS}
    return defaults, kept


def route_generation(
    settings: dict[str, Any], direct: frozenset[str], extra: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """``settings`` with the generation settings the pipeline does not take by name
    (`generation_fields` and ``extra``, minus ``direct``) moved into ``generate_kwargs``."""
    routed = (generation_fields() | extra) - direct
    call = {k: v for k, v in settings.items() if k not in routed}
    generate = {k: v for k, v in settings.items() if k in routed}
    if generate:
        call["generate_kwargs"] = {**(call.get("generate_kwargs") or {}), **generate}
    return call


# --------------------------------------------------------------------------- base


def usage(input_tokens: int, output_tokens: int) -> UsageMetadata:
    """Token usage as LangChain reports it."""
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


class MediaChatModel(BaseChatModel, ABC):
    """Base of the multimodal adapters: answer the last human message with standard blocks.

    Subclasses implement `answer` (and `aanswer` when they have a native async
    client; the default runs `answer` in a worker thread). ``invoke``,
    ``ainvoke``, ``batch`` and ``stream`` (one chunk) all work, and take the
    same inputs as `MultiModalRouter` (a PIL image, bytes, ``{"audio": path}``,
    ... see `llmrouter.multimodal._content.as_prompt_value`).
    """

    accepts_any_call_keyword: ClassVar[bool] = True
    """Backend settings pass through per call, so a router lets any call keyword reach
    this model (see `llmrouter.core._keywords`)."""
    call_keywords_hint: ClassVar[str] = ""
    """Where the keywords of `call_keywords` come from, for the factory's error message."""

    @classmethod
    def call_keywords(cls, model_id: str) -> frozenset[str] | None:
        """The call defaults a factory accepts as keywords for this backend and
        ``model_id`` (besides the adapter's fields); ``None``: any keyword."""
        return None

    def _convert_input(self, model_input: Any) -> PromptValue:
        return as_prompt_value(model_input)

    @property
    @abstractmethod
    def modality(self) -> str:
        """The route this adapter serves, e.g. ``"image_generation"``."""

    @property
    @abstractmethod
    def model_label(self) -> str:
        """The backend's model name, reported as ``response_metadata["model_name"]``."""

    @abstractmethod
    def answer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        """Answer one human message (its text and media blocks)."""

    async def aanswer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        """Async `answer`; by default `answer` in a worker thread."""
        return await run_in_executor(None, partial(self.answer, message, **kwargs))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(self.answer(self._human(messages), **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(await self.aanswer(self._human(messages), **kwargs))

    def _human(self, messages: list[BaseMessage]) -> HumanMessage:
        message = last_human(messages)
        if message is None:
            raise ModalityError(
                f"{type(self).__name__} answers a human message; the input has none",
                found=", ".join(m.type for m in messages) or "no messages",
            )
        return message

    def _result(self, answer: AIMessage) -> ChatResult:
        answer.response_metadata = {
            "model_name": self.model_label,
            "modality": self.modality,
            **answer.response_metadata,
        }
        return ChatResult(generations=[ChatGeneration(message=answer)])

    @property
    def _llm_type(self) -> str:
        return f"llmrouter-{self.modality}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_label, "modality": self.modality}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(
            ls_provider="llmrouter", ls_model_name=self.model_label, ls_model_type="chat"
        )


def text_only(message: HumanMessage, what: str) -> str:
    text = message.text.strip()
    if not text:
        raise ModalityError(
            f"{what} needs a text prompt; the message carries "
            f"{inspect_content(message).describe()}",
            found=inspect_content(message).describe(),
        )
    return text


def _one_media(message: HumanMessage, kind: Literal["image", "audio"]) -> list[dict[str, Any]]:
    found = inspect_content(message)
    blocks = found.images if kind == "image" else found.audio
    if not blocks:
        raise ModalityError(
            f"this model needs {kind} input; the message carries {found.describe()}. "
            f"Add a {kind} block, e.g. {{'type': '{kind}', 'base64': ..., 'mime_type': ...}}",
            found=found.describe(),
        )
    return blocks


# ---------------------------------------------------------------------- embeddings


class LazyEmbeddings(Embeddings):
    """An `Embeddings` built on first use by a zero-argument factory (thread-safe, once).

    Examples:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> from llmrouter.models._multimodal import LazyEmbeddings
        >>> lazy = LazyEmbeddings(lambda: DeterministicFakeEmbedding(size=3))
        >>> lazy.is_loaded, len(lazy.embed_query("x")), lazy.is_loaded
        (False, 3, True)
    """

    def __init__(self, factory: Callable[[], Embeddings], label: str | None = None) -> None:
        self._factory = factory
        self._label = label
        self._loaded: Embeddings | None = None
        self._lock = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        """True once the factory has run."""
        return self._loaded is not None

    @property
    def loaded(self) -> Embeddings:
        """The embeddings, built now if they were not yet."""
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    built = self._factory()
                    if not isinstance(built, Embeddings):
                        raise ConfigurationError(
                            f"the embeddings factory returned {type(built).__name__}, "
                            "expected a langchain_core Embeddings"
                        )
                    self._loaded = built
        return self._loaded

    @property
    def model_name(self) -> str | None:
        """The loaded model's name, else the label given."""
        if self._loaded is not None:
            for attribute in ("model_name", "model"):
                value = getattr(self._loaded, attribute, None)
                if isinstance(value, str) and value:
                    return value
        return self._label

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.loaded.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.loaded.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self.loaded.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await self.loaded.aembed_query(text)

    def __repr__(self) -> str:
        return f"LazyEmbeddings({self.model_name or 'not loaded'})"


class ChatEmbeddings(MediaChatModel, Embeddings):
    """A LangChain `Embeddings` as a chat model -- and still an `Embeddings`.

    As a chat model (what a router calls), the content of the answer is the
    embedding of the last human message's text as a JSON array
    (``JsonOutputParser`` or `llmrouter.multimodal._media.embedding_of` turn it
    back into floats); ``response_metadata["dimensions"]`` is its length.
    ``usage_metadata.input_tokens`` is counted with the model's tokenizer when it
    exposes one (sentence-transformers models do), so a priced spec has a cost.

    As an `Embeddings` (``embed_documents``, ``embed_query`` and their async
    twins, delegated to ``embeddings``) it plugs into vector stores and
    retrievers, so the model a router uses for embeddings serves RAG too.

    Examples:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> from llmrouter.multimodal._media import embedding_of
        >>> from llmrouter.models._multimodal import ChatEmbeddings
        >>> chat = ChatEmbeddings(embeddings=DeterministicFakeEmbedding(size=4))
        >>> len(embedding_of(chat.invoke("hello")))
        4
        >>> len(chat.embed_documents(["a", "b"])), len(chat.embed_query("a"))
        (2, 4)
    """

    embeddings: Embeddings
    """The embeddings model (e.g. ``HuggingFaceEmbeddings``, ``OpenAIEmbeddings``, a
    `LazyEmbeddings`)."""
    model_name: str | None = None
    """The name reported as ``model_name`` (default: the embeddings' own)."""

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        inner = data.get("embeddings") if isinstance(data, dict) else None
        if isinstance(inner, ChatEmbeddings):  # one layer of chat model is enough
            data = {**data, "embeddings": inner.embeddings}
            data.setdefault("model_name", inner.model_name)
        return data

    @property
    def modality(self) -> str:
        return "embeddings"

    @property
    def model_label(self) -> str:
        if self.model_name:
            return self.model_name
        for attribute in ("model_name", "model"):
            value = getattr(self.embeddings, attribute, None)
            if isinstance(value, str) and value:
                return value
        return type(self.embeddings).__name__

    # ---------------------------------------------------------- as Embeddings

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (for vector stores), with the wrapped embeddings."""
        return self.embeddings.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """Embed a query (for retrievers), with the wrapped embeddings."""
        return self.embeddings.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async `embed_documents`."""
        return await self.embeddings.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async `embed_query`."""
        return await self.embeddings.aembed_query(text)

    # --------------------------------------------------------- as a chat model

    def answer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        text = text_only(message, "an embeddings model")
        return self._message(text, self.embeddings.embed_query(text))

    async def aanswer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        text = text_only(message, "an embeddings model")
        return self._message(text, await self.embeddings.aembed_query(text))

    def _message(self, text: str, vector: list[float]) -> AIMessage:
        tokens = self._count_tokens(text)
        return AIMessage(
            content=json.dumps([float(x) for x in vector]),
            response_metadata={"dimensions": len(vector)},
            usage_metadata=usage(tokens, 0) if tokens is not None else None,
        )

    def _count_tokens(self, text: str) -> int | None:
        embeddings = self.embeddings
        if isinstance(embeddings, LazyEmbeddings):
            embeddings = embeddings.loaded
        tokenizer = getattr(embeddings, "tokenizer", None)  # LocalEmbeddings
        if tokenizer is None:  # HuggingFaceEmbeddings: its sentence-transformers model's
            tokenizer = getattr(getattr(embeddings, "_client", None), "tokenizer", None)
        if tokenizer is None:
            return None
        try:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])
        except Exception:  # an unusual tokenizer: no usage rather than a failed request
            return None


@recorded
def embeddings_model(
    embeddings: Embeddings | Callable[[], Embeddings] | None = None,
    *,
    name: str | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A `ModelSpec` (modality ``embeddings``) over a LangChain `Embeddings`.

    The spec's ``model`` is a `ChatEmbeddings`: a chat model for routers and a
    LangChain `Embeddings` for vector stores and retrievers
    (``embeddings_model().model.embed_documents(texts)``).

    Args:
        embeddings: The embeddings, or a zero-argument factory building them on
            first use. Default: all-MiniLM-L6-v2 from the ``semantic`` extra
            (`llmrouter.task._classifiers.default_embeddings`: offline, loaded on
            first use, once per process).
        name: The spec's name (default: the embeddings' model name, else
            ``"embeddings"``).
        **kwargs: `ModelSpec` fields (``input_cost``, ``tags``, ...); other
            keywords go to `ChatEmbeddings` (``model_name``, ``callbacks``, ...).

    Raises:
        ConfigurationError: a keyword is neither a `ModelSpec` nor a
            `ChatEmbeddings` field (the message names the closest valid one).

    Examples:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> from llmrouter.models._multimodal import embeddings_model
        >>> spec = embeddings_model(DeterministicFakeEmbedding(size=8), name="fake")
        >>> spec.name, spec.modality, len(spec.model.embed_query("hello"))
        ('fake', 'embeddings', 8)
    """
    spec_kwargs, rest = split_spec_kwargs(kwargs)
    spec_kwargs.setdefault("modality", "embeddings")
    reject_unknown_keywords(
        "embeddings_model",
        rest,
        (keywords_of(ChatEmbeddings) - {"embeddings"}) | SPEC_FIELDS,
        "Configure the embeddings themselves (e.g. HuggingFaceEmbeddings(model_kwargs="
        "{...})) and pass them as the first argument",
    )
    if isinstance(embeddings, Embeddings):
        chat = ChatEmbeddings(embeddings=embeddings, **rest)
        label = chat.model_label
        return make_spec(name or label.rsplit("/", 1)[-1], chat, spec_kwargs)
    if embeddings is None:
        rest.setdefault("model_name", "sentence-transformers/all-MiniLM-L6-v2")
        lazy = LazyEmbeddings(_minilm, label=rest["model_name"])
        default = "all-MiniLM-L6-v2"
    else:
        lazy, default = LazyEmbeddings(embeddings), "embeddings"
    return make_spec(name or default, ChatEmbeddings(embeddings=lazy, **rest), spec_kwargs)


def _minilm() -> Embeddings:
    from llmrouter.task._classifiers import default_embeddings

    return default_embeddings()


# ------------------------------------------------------------ Hugging Face inference

InferenceTask = Literal["image_generation", "image_to_text", "speech_to_text"]


class ChatHuggingFaceInference(MediaChatModel):
    """A Hugging Face Inference Endpoint / provider model for one media task.

    Uses ``huggingface_hub.InferenceClient``: ``text_to_image`` (answer: a PNG
    image block), ``image_to_text`` (answer: the caption) or
    ``automatic_speech_recognition`` (answer: the transcript). Media are sent as
    bytes, so URLs in the request are fetched first.

    Known limit: with ``HF_HUB_OFFLINE=1`` ``huggingface_hub`` refuses every
    request, including to your own server.

    Examples:
        >>> from llmrouter.models._multimodal import ChatHuggingFaceInference
        >>> chat = ChatHuggingFaceInference(target="http://127.0.0.1:8080",
        ...                                 task="image_generation", api_key="EMPTY")
        >>> chat.modality, chat.model_label
        ('image_generation', 'http://127.0.0.1:8080')
    """

    target: str
    """An endpoint URL, or a Hub repo id served by Inference Providers."""
    task: InferenceTask
    """Which media task to call."""
    api_key: SecretStr | None = None
    """The token (default: ``$HF_TOKEN`` or the saved login)."""
    provider: str | None = None
    """Inference provider for a repo id (default: huggingface_hub's choice)."""
    timeout: float | None = None
    """Seconds to wait for the server."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Defaults for the call (``text_to_image``: ``height``, ``width``,
    ``num_inference_steps``, ``guidance_scale``, ``negative_prompt``, ``seed``, ...);
    per-call keywords win."""

    _client: Any = PrivateAttr(default=None)

    @property
    def modality(self) -> str:
        return self.task

    @property
    def model_label(self) -> str:
        return self.target

    def _get_client(self) -> Any:
        if self._client is None:
            from huggingface_hub import InferenceClient

            token = self.api_key.get_secret_value() if self.api_key else None
            self._client = InferenceClient(
                model=self.target,
                token=token,
                provider=cast(Any, self.provider),  # a Literal upstream; new ones appear
                timeout=self.timeout,
            )
        return self._client

    def answer(self, message: HumanMessage, **kwargs: Any) -> AIMessage:
        client = self._get_client()
        options = {
            **self.parameters,
            **{k: v for k, v in kwargs.items() if k not in CHAT_ONLY_KEYWORDS},
        }
        if self.task == "image_generation":
            prompt = text_only(message, "image generation")
            image = client.text_to_image(prompt, **_split_extra(client.text_to_image, options))
            return AIMessage(content=[image_block(image)])
        if self.task == "image_to_text":  # the API takes no parameters
            captions = [
                client.image_to_text(read_block(block)).generated_text
                for block in _one_media(message, "image")
            ]
            return AIMessage(content="\n".join(str(c) for c in captions))
        recognize = client.automatic_speech_recognition
        transcripts = [
            recognize(read_block(block), **_split_extra(recognize, options)).text
            for block in _one_media(message, "audio")
        ]
        return AIMessage(content="\n".join(str(t) for t in transcripts))


_CLIENT_METHODS: dict[str, str] = {
    "image_generation": "text_to_image",
    "image_to_text": "image_to_text",
    "speech_to_text": "automatic_speech_recognition",
}
_INFERENCE_OWN = frozenset({"name", "target", "task", "api_key", "parameters"})
"""`ChatHuggingFaceInference` fields the factory sets itself (or takes as a dict)."""


@functools.cache
def _inference_parameters(task: str) -> frozenset[str]:
    """The call parameters ``InferenceClient`` names for ``task`` (input and model excluded)."""
    from huggingface_hub import InferenceClient

    method = _CLIENT_METHODS.get(task)
    if method is None:  # an invalid task: ChatHuggingFaceInference reports it
        return frozenset()
    names = set(inspect.signature(getattr(InferenceClient, method)).parameters)
    return frozenset(names - {"self", "prompt", "image", "audio", "model"})


def _split_extra(method: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """Keywords ``method`` names, plus the others as its ``extra_body``."""
    named = set(inspect.signature(method).parameters)
    call = {k: v for k, v in options.items() if k in named}
    extra = {k: v for k, v in options.items() if k not in named}
    if extra:
        call["extra_body"] = {**(call.get("extra_body") or {}), **extra}
    return call


@recorded
def huggingface_inference(
    endpoint_url_or_repo_id: str,
    task: InferenceTask,
    *,
    name: str | None = None,
    api_key: str | None = None,
    **kwargs: Any,
) -> ModelSpec:
    """A `ModelSpec` for a Hugging Face endpoint or provider model serving a media task.

    Args:
        endpoint_url_or_repo_id: An endpoint URL (your TGI/Inference Endpoint) or
            a Hub repo id (Inference Providers).
        task: ``"image_generation"`` (text-to-image), ``"image_to_text"``
            (captioning) or ``"speech_to_text"`` (ASR); also the spec's modality.
        name: The spec's name (default: the last part of the URL or repo id).
        api_key: The token; default ``$HF_TOKEN`` then the saved login.
        **kwargs: `ModelSpec` fields go to the spec; ``provider``, ``timeout``
            and ``parameters`` to `ChatHuggingFaceInference`; any other keyword
            must be a parameter ``InferenceClient`` names for ``task`` (e.g.
            ``num_inference_steps=4``) and is a call default; put others in
            ``parameters={...}`` (sent in the request body).

    Raises:
        ConfigurationError: an unknown keyword (the message names the closest
            valid one).

    Examples:
        >>> from llmrouter.models._multimodal import huggingface_inference
        >>> spec = huggingface_inference("https://my-endpoint.example/sdxl",
        ...                              "image_generation", api_key="hf_x", width=512)
        >>> spec.name, spec.modality, spec.chat_model.parameters
        ('sdxl', 'image_generation', {'width': 512})
    """
    spec_kwargs, rest = split_spec_kwargs(kwargs)
    spec_kwargs.setdefault("modality", task)
    own_fields = keywords_of(ChatHuggingFaceInference) - _INFERENCE_OWN
    reject_unknown_keywords(
        f"huggingface_inference({endpoint_url_or_repo_id!r}, {task!r})",
        [k for k in rest if k != "parameters"],
        own_fields | _inference_parameters(task) | SPEC_FIELDS,
        "Pass other request parameters in parameters={...} (those the client does "
        "not name are sent in the request body)",
    )
    own = {k: rest.pop(k) for k in list(rest) if k in own_fields}
    parameters = {**(rest.pop("parameters", None) or {}), **rest}
    key = api_key if api_key is not None else os.environ.get("HF_TOKEN")
    chat = ChatHuggingFaceInference(
        target=endpoint_url_or_repo_id,
        task=task,
        api_key=SecretStr(key) if key else None,
        parameters=parameters,
        **own,
    )
    default = endpoint_url_or_repo_id.rstrip("/").rsplit("/", 1)[-1]
    return make_spec(name or default, chat, spec_kwargs)
