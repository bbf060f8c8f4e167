"""`SemanticResponseCache`: answers to questions that mean the same thing.

A LangChain `BaseCache` whose ``lookup(prompt, llm_string)`` matches ``prompt``
by meaning -- the cosine similarity of its embedding (all-MiniLM-L6-v2 by
default) to the questions stored under the same ``llm_string`` -- and
``llm_string`` exactly. A router gives it the last user message as the prompt,
and as the ``llm_string`` everything else that changes the answer: the router,
the task, the earlier messages, the model and its settings (see
`llmrouter.core._cache`). So "what's the capital of France" finds the answer to
"What is the capital of France?" (similarity 0.91 with MiniLM), from the same
model, in the same conversation, for the same task only.

Entries live in a SQLite table -- ``path=":memory:"`` (the default) for this
process, or a file shared by the processes of one machine -- or, from
``RedisState(url).semantic_cache()``, on Redis for every replica (see
`llmrouter.state._vectors`).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache

from llmrouter._sqlite import database_path
from llmrouter.errors import ConfigurationError
from llmrouter.state._responses import DEFAULT_TTL_S, check_ttl, decode, encode
from llmrouter.state._vectors import SQLiteVectors, VectorStore

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.embeddings import Embeddings

    from llmrouter.state._backends import SharedState

__all__ = ["DEFAULT_THRESHOLD", "SemanticHit", "SemanticResponseCache"]

DEFAULT_THRESHOLD = 0.9
"""Least cosine similarity for a hit. With all-MiniLM-L6-v2, paraphrases of one
question score about 0.84-0.98; a question about another country or another
property of the same one about 0.5-0.7."""


@dataclass(frozen=True)
class SemanticHit:
    """The nearest stored question that is near enough."""

    generations: RETURN_VAL_TYPE
    similarity: float
    """Cosine similarity of the two questions' embeddings."""


class SemanticResponseCache(BaseCache):
    """Answers found by the meaning of the question (see the module docstring).

    ``threshold`` is the least cosine similarity that counts as the same question;
    ``ttl`` the seconds an answer is kept (``None``: until cleared); ``max_per_scope``
    the answers kept for one model, task and conversation (the oldest go first),
    which bounds the work of a lookup.

    Examples:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> from langchain_core.outputs import Generation
        >>> cache = SemanticResponseCache(DeterministicFakeEmbedding(size=8))
        >>> cache.update("hello", "model", [Generation(text="hi")])
        >>> cache.lookup("hello", "model")[0].text
        'hi'
        >>> cache.lookup("hello", "another model") is None
        True
    """

    semantic: ClassVar[bool] = True
    """Marks a cache whose prompt is matched by meaning: a router gives it the last
    user message as the prompt and the rest of the request as the model string."""

    def __init__(
        self,
        embeddings: Embeddings | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        ttl: float | None = DEFAULT_TTL_S,
        path: str = ":memory:",
        max_per_scope: int = 1000,
        store: VectorStore | None = None,
        state: SharedState | None = None,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ConfigurationError(f"threshold must be in (0, 1], not {threshold!r}")
        if max_per_scope < 1:
            raise ConfigurationError(f"max_per_scope must be at least 1, not {max_per_scope!r}")
        self._given = embeddings
        self._embeddings = embeddings
        self._identity: str | None = None
        self.threshold = threshold
        self.ttl = check_ttl(ttl)
        self.path = database_path(path, "semantic response cache")
        self.max_per_scope = max_per_scope
        self.store = store or SQLiteVectors(self.path, self.ttl, max_per_scope)
        """Where the entries are (`llmrouter.state._vectors`): ``path``'s SQLite table,
        unless the state gave another."""
        self._state = state
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # recent questions
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        if self._state is not None:  # on Redis: the copy opens the same state
            kept = (self._given, self.threshold, self.ttl, self.max_per_scope)
            return (_reopened, (self._state, *kept))
        options = {"threshold": self.threshold, "ttl": self.ttl, "path": self.path}
        return (_rebuilt, (self._given, options, self.max_per_scope))

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings model (all-MiniLM-L6-v2, offline, unless another was given)."""
        if self._embeddings is None:
            from llmrouter.task._classifiers import default_embeddings

            self._embeddings = default_embeddings()
        return self._embeddings

    def nearest(self, prompt: str, llm_string: str) -> SemanticHit | None:
        """The stored answer whose question is nearest ``prompt`` under ``llm_string``,
        if it is at least ``threshold`` similar."""
        rows = self.store.rows(self._scope(llm_string))
        if not rows:
            return None  # nothing to compare with: no need to embed
        import numpy as np

        question = self._vector(prompt)
        stored = np.stack([np.frombuffer(vector, dtype=np.float32) for vector, _ in rows])
        if stored.shape[1] != question.shape[0]:
            return None  # written with other embeddings
        similarities = stored @ question
        best = int(np.argmax(similarities))
        if similarities[best] < self.threshold:
            return None
        return SemanticHit(decode(rows[best][1]), float(similarities[best]))

    async def anearest(self, prompt: str, llm_string: str) -> SemanticHit | None:
        """Async `nearest` (in a worker thread: embedding takes milliseconds)."""
        return await asyncio.to_thread(self.nearest, prompt, llm_string)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        hit = self.nearest(prompt, llm_string)
        return None if hit is None else hit.generations

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        vector, scope = self._vector(prompt), self._scope(llm_string)
        self.store.add(scope, vector.tobytes(), encode(return_val))

    def clear(self, **kwargs: Any) -> None:
        self.store.clear()

    def _scope(self, llm_string: str) -> str:
        # the embeddings model is part of the scope: vectors of two models do not compare
        if self._identity is None:
            model = self.embeddings
            name = getattr(model, "model_name", None) or getattr(model, "model", None)
            self._identity = f"{type(model).__name__}:{name}"
        return hashlib.sha256(f"{self._identity}\0{llm_string}".encode()).hexdigest()

    def _vector(self, text: str) -> np.ndarray:
        """``text``'s unit-length embedding (the last few are remembered: a miss's
        lookup and the write of its answer embed the same question)."""
        with self._lock:
            cached = self._vectors.get(text)
        if cached is not None:
            return cached
        import numpy as np

        vector = np.asarray(self.embeddings.embed_query(text), dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        vector = vector / norm if norm else vector
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > 256:
                self._vectors.popitem(last=False)
        return vector


def _reopened(
    state: SharedState,
    embeddings: Embeddings | None,
    threshold: float,
    ttl: float | None,
    max_per_scope: int,
) -> SemanticResponseCache:
    return state.semantic_cache(threshold, ttl, embeddings, max_per_scope)


def _rebuilt(
    embeddings: Embeddings | None, options: dict[str, Any], max_per_scope: int
) -> SemanticResponseCache:
    # a copy of an in-memory cache starts empty; one on a file shares it
    return SemanticResponseCache(embeddings, max_per_scope=max_per_scope, **options)
