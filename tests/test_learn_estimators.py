"""Estimators: what each predicts on data with a known answer, and a lossless save."""

from __future__ import annotations

import numpy as np
import pytest

from llmrouter.errors import ConfigurationError
from llmrouter.learn._estimators import (
    BlendEstimator,
    Estimator,
    KNNEstimator,
    LogisticEstimator,
    restore,
)


def clusters(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two clusters of unit vectors: model 0 is right on cluster A, model 1 on cluster B."""
    rng = np.random.default_rng(seed)
    centre = np.eye(8, dtype=np.float32)
    side = rng.integers(0, 2, n)
    emb = centre[side] + 0.3 * rng.standard_normal((n, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    outcomes = np.stack([side == 0, side == 1], axis=1).astype(np.float64)
    text = rng.standard_normal((n, 3))
    return emb, text, outcomes


@pytest.mark.parametrize(
    "estimator",
    [
        KNNEstimator(k=10),
        LogisticEstimator(c=1.0),
        BlendEstimator([KNNEstimator(k=10), LogisticEstimator(c=1.0, text=False)]),
    ],
    ids=lambda e: e.kind,
)
def test_each_estimator_learns_which_model_is_right_where(estimator: Estimator) -> None:
    emb, text, outcomes = clusters()
    estimator.fit(emb[:150], text[:150], outcomes[:150], seed=0)
    predicted = estimator.predict(emb[150:], text[150:])
    assert predicted.shape == (50, 2) and ((predicted >= 0) & (predicted <= 1)).all()
    right = (predicted.argmax(axis=1) == outcomes[150:].argmax(axis=1)).mean()
    assert right > 0.9
    saved = {k: np.array(v) for k, v in estimator.arrays().items()}
    again = restore(estimator.params(), saved, estimator.kind)
    assert np.allclose(again.predict(emb[150:], text[150:]), predicted)
    assert again.describe() == estimator.describe()


def test_knn_shrinks_towards_the_mean_with_its_prior() -> None:
    emb, text, outcomes = clusters()
    sure, shrunk = KNNEstimator(k=5, prior=0.0), KNNEstimator(k=5, prior=100.0)
    for est in (sure, shrunk):
        est.fit(emb, text, outcomes, seed=0)
    a, b = sure.predict(emb[:20], text[:20]), shrunk.predict(emb[:20], text[:20])
    assert np.abs(b - outcomes.mean(axis=0)).max() < np.abs(a - outcomes.mean(axis=0)).max()


def test_logistic_takes_scores_as_soft_labels_and_constant_columns() -> None:
    emb, text, outcomes = clusters()
    scores = np.stack([outcomes[:, 0] * 0.8 + 0.1, np.full(len(emb), 1.0)], axis=1)
    est = LogisticEstimator(c=10.0)
    est.fit(emb, text, scores, seed=0)
    predicted = est.predict(emb, text)
    assert abs(predicted[:, 0].max() - 0.9) < 0.1 and abs(predicted[:, 0].min() - 0.1) < 0.1
    assert np.allclose(predicted[:, 1], 0.999, atol=1e-6)  # always right: a constant


def test_bad_settings_and_unknown_kinds_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        KNNEstimator(k=0)
    with pytest.raises(ConfigurationError):
        LogisticEstimator(c=0)
    with pytest.raises(ConfigurationError):
        BlendEstimator([])
    with pytest.raises(ConfigurationError, match="unknown estimator 'forest'"):
        restore({}, {}, "forest")


def test_knn_scores_a_few_prompts_and_a_batch_alike() -> None:
    """A routed prompt is scored without BLAS (einsum), a batch with it: same answers."""
    emb, text, outcomes = clusters(300)
    est = KNNEstimator(k=20)
    est.fit(emb[:250], text[:250], outcomes[:250], seed=0)
    batch = est.predict(emb[250:], text[250:])
    one_by_one = np.vstack([est.predict(emb[i : i + 1], text[i : i + 1]) for i in range(250, 300)])
    assert np.allclose(batch, one_by_one, atol=1e-6)
