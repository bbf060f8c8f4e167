"""Estimators that map prompt features to each model's expected outcome.

Every estimator fits with scikit-learn or numpy and predicts with numpy alone, and
saves as plain arrays plus JSON parameters (no pickle): a saved predictor loads
without running any code from the file.

* `KNNEstimator`: the outcomes of the k most similar training prompts (cosine
  similarity of the embeddings), weighted by similarity and shrunk towards each
  model's mean;
* `LogisticEstimator`: one L2-regularised logistic regression per model over the
  embedding and the standardised text statistics (soft labels for scores);
* `BlendEstimator`: the mean of several of the above.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from llmrouter.errors import ConfigurationError

Floats = NDArray[np.float64]
_FEW = 8
"""Queries up to this many rows are scored without BLAS (see `KNNEstimator.predict`)."""


class Estimator(ABC):
    """Predicts a (prompts, models) matrix of expected outcomes in [0, 1]."""

    kind: ClassVar[str]

    @abstractmethod
    def fit(self, emb: NDArray[np.float32], text: Floats, outcomes: Floats, seed: int) -> None:
        """Learn from embeddings, text statistics and outcomes (all row-aligned)."""

    @abstractmethod
    def predict(self, emb: NDArray[np.float32], text: Floats) -> Floats:
        """Expected outcomes, shape (prompts, models)."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """JSON-serialisable settings (what `describe` and the manifest show)."""

    @abstractmethod
    def arrays(self, prefix: str = "") -> dict[str, NDArray[Any]]:
        """The learned state as named arrays."""

    @classmethod
    @abstractmethod
    def restore(
        cls, params: dict[str, Any], arrays: dict[str, NDArray[Any]], prefix: str = ""
    ) -> Estimator:
        """The estimator saved as ``params`` and ``arrays``."""

    def describe(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.params().items() if k != "members")
        return f"{self.kind}({settings})"


class KNNEstimator(Estimator):
    """Similarity-weighted mean outcome of the ``k`` nearest training prompts.

    ``prior`` pseudo-neighbours at each model's mean outcome keep sparse regions
    of the embedding space from extreme predictions.
    """

    kind = "knn"

    def __init__(self, k: int = 50, prior: float = 5.0, sharpness: float = 10.0) -> None:
        if k < 1 or prior < 0 or sharpness < 0:
            raise ConfigurationError("knn needs k >= 1, prior >= 0 and sharpness >= 0")
        self.k, self.prior, self.sharpness = k, prior, sharpness
        self._emb: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self._outcomes: Floats = np.zeros((0, 0))

    def fit(self, emb: NDArray[np.float32], text: Floats, outcomes: Floats, seed: int) -> None:
        self._emb = np.ascontiguousarray(emb, dtype=np.float32)
        self._outcomes = np.asarray(outcomes, dtype=np.float64)

    def predict(self, emb: NDArray[np.float32], text: Floats) -> Floats:
        k = min(self.k, len(self._emb))
        query = np.asarray(emb, dtype=np.float32)
        if len(query) <= _FEW:
            # no BLAS for a routed prompt or two: OpenBLAS's threads keep spinning after a
            # call and slow the next prompt's embedding on a small machine (measured: a
            # routed call's prediction took 44-52 ms p50 with it, 20 ms without)
            sims = np.einsum("nd,md->nm", query, self._emb)
        else:
            sims = query @ self._emb.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(sims, top, axis=1).astype(np.float64)
        weights = np.exp(self.sharpness * (near - near.max(axis=1, keepdims=True)))
        votes = np.einsum("nk,nkm->nm", weights, self._outcomes[top])
        mean = self._outcomes.mean(axis=0)
        return np.asarray(
            (votes + self.prior * mean) / (weights.sum(axis=1, keepdims=True) + self.prior),
            dtype=np.float64,
        )

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "prior": self.prior, "sharpness": self.sharpness}

    def arrays(self, prefix: str = "") -> dict[str, NDArray[Any]]:
        return {f"{prefix}emb": self._emb, f"{prefix}outcomes": self._outcomes}

    @classmethod
    def restore(
        cls, params: dict[str, Any], arrays: dict[str, NDArray[Any]], prefix: str = ""
    ) -> KNNEstimator:
        est = cls(int(params["k"]), float(params["prior"]), float(params["sharpness"]))
        est._emb = np.asarray(arrays[f"{prefix}emb"], dtype=np.float32)
        est._outcomes = np.asarray(arrays[f"{prefix}outcomes"], dtype=np.float64)
        return est


class LogisticEstimator(Estimator):
    """Per model, ``sigmoid(w · [embedding, text statistics] + b)``, fitted with
    scikit-learn's L2-regularised logistic regression (strength ``1/c``).

    Scores in (0, 1) are soft labels: each row counts as a success with weight
    ``y`` and a failure with weight ``1 - y``, which is the cross-entropy fit.
    """

    kind = "logistic"

    def __init__(self, c: float = 1.0, text: bool = True) -> None:
        if not c > 0:
            raise ConfigurationError("logistic needs c > 0")
        self.c, self.text = c, text
        self._mean: Floats = np.zeros(0)
        self._scale: Floats = np.ones(0)
        self._coef: Floats = np.zeros((0, 0))
        self._bias: Floats = np.zeros(0)

    def _design(self, emb: NDArray[np.float32], text: Floats) -> Floats:
        x = np.asarray(emb, dtype=np.float64)
        if not self.text:
            return x
        return np.hstack([x, (text - self._mean) / self._scale])

    def fit(self, emb: NDArray[np.float32], text: Floats, outcomes: Floats, seed: int) -> None:
        from sklearn.linear_model import LogisticRegression

        self._mean = text.mean(axis=0)
        self._scale = np.where(text.std(axis=0) > 1e-9, text.std(axis=0), 1.0)
        x = self._design(emb, text)
        coefs, biases = [], []
        for y in np.asarray(outcomes, dtype=np.float64).T:
            if y.min() == y.max():  # one outcome only: a constant
                coefs.append(np.zeros(x.shape[1]))
                biases.append(_logit(float(np.clip(y[0], 0.001, 0.999))))
                continue
            model = LogisticRegression(C=self.c, max_iter=2000, random_state=seed)
            model.fit(
                np.vstack([x, x]),
                np.r_[np.ones(len(y)), np.zeros(len(y))],
                sample_weight=np.r_[y, 1.0 - y],
            )
            coefs.append(model.coef_[0])
            biases.append(float(model.intercept_[0]))
        self._coef, self._bias = np.array(coefs).T, np.array(biases)

    def predict(self, emb: NDArray[np.float32], text: Floats) -> Floats:
        z = self._design(emb, text) @ self._coef + self._bias
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def params(self) -> dict[str, Any]:
        return {"c": self.c, "text": self.text}

    def arrays(self, prefix: str = "") -> dict[str, NDArray[Any]]:
        return {
            f"{prefix}mean": self._mean,
            f"{prefix}scale": self._scale,
            f"{prefix}coef": self._coef,
            f"{prefix}bias": self._bias,
        }

    @classmethod
    def restore(
        cls, params: dict[str, Any], arrays: dict[str, NDArray[Any]], prefix: str = ""
    ) -> LogisticEstimator:
        est = cls(float(params["c"]), bool(params["text"]))
        est._mean = np.asarray(arrays[f"{prefix}mean"], dtype=np.float64)
        est._scale = np.asarray(arrays[f"{prefix}scale"], dtype=np.float64)
        est._coef = np.asarray(arrays[f"{prefix}coef"], dtype=np.float64)
        est._bias = np.asarray(arrays[f"{prefix}bias"], dtype=np.float64)
        return est


class BlendEstimator(Estimator):
    """The mean prediction of ``members``."""

    kind = "blend"

    def __init__(self, members: list[Estimator]) -> None:
        if not members:
            raise ConfigurationError("a blend needs at least one member")
        self.members = members

    def fit(self, emb: NDArray[np.float32], text: Floats, outcomes: Floats, seed: int) -> None:
        for member in self.members:
            member.fit(emb, text, outcomes, seed)

    def predict(self, emb: NDArray[np.float32], text: Floats) -> Floats:
        return np.asarray(
            np.mean([m.predict(emb, text) for m in self.members], axis=0), dtype=np.float64
        )

    def params(self) -> dict[str, Any]:
        return {"members": [{"kind": m.kind, **m.params()} for m in self.members]}

    def arrays(self, prefix: str = "") -> dict[str, NDArray[Any]]:
        out: dict[str, NDArray[Any]] = {}
        for i, member in enumerate(self.members):
            out.update(member.arrays(f"{prefix}{i}."))
        return out

    @classmethod
    def restore(
        cls, params: dict[str, Any], arrays: dict[str, NDArray[Any]], prefix: str = ""
    ) -> BlendEstimator:
        members = [
            restore({k: v for k, v in p.items() if k != "kind"}, arrays, p["kind"], f"{prefix}{i}.")
            for i, p in enumerate(params["members"])
        ]
        return cls(members)

    def describe(self) -> str:
        return "blend(" + " + ".join(m.describe() for m in self.members) + ")"


KINDS: dict[str, type[Estimator]] = {
    cls.kind: cls for cls in (KNNEstimator, LogisticEstimator, BlendEstimator)
}


def restore(
    params: dict[str, Any], arrays: dict[str, NDArray[Any]], kind: str, prefix: str = ""
) -> Estimator:
    """The saved estimator of ``kind``."""
    cls = KINDS.get(kind)
    if cls is None:
        raise ConfigurationError(f"unknown estimator {kind!r}; known: {sorted(KINDS)}")
    return cls.restore(params, arrays, prefix)


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))
