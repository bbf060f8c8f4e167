"""`QualityPredictor`: from a prompt, each model's expected outcome; fitted, cross-validated, saved.

A predictor is a `PromptEncoder` (sentence embedding of the prompt), the cheap
`text_features`, and an `Estimator` chosen by cross-validation among a few
candidates on the routing metric itself (APGR for two models, AIQ of the
cost-quality curve for more). It saves as a directory:

* ``manifest.json``: models, mean cost per model, embedding settings, the chosen
  estimator and its parameters, the cross-validated metrics of every candidate,
  the data it was fitted on, library versions;
* ``weights.npz``: the learned arrays, loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmrouter.errors import ConfigurationError
from llmrouter.learn import _onnx
from llmrouter.learn._data import OutcomeData
from llmrouter.learn._estimators import (
    BlendEstimator,
    Estimator,
    KNNEstimator,
    LogisticEstimator,
    restore,
)
from llmrouter.learn._features import TEXT_FEATURES, PromptEncoder, text_features

FORMAT = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
_KIND = "llmrouter.quality-predictor"

Floats = NDArray[np.float64]


def default_candidates() -> list[Estimator]:
    """The estimators `QualityPredictor.fit` cross-validates by default."""
    return [
        KNNEstimator(k=20),
        KNNEstimator(k=50),
        KNNEstimator(k=100),
        LogisticEstimator(c=0.1),
        LogisticEstimator(c=1.0),
        BlendEstimator([KNNEstimator(k=50), LogisticEstimator(c=0.1)]),
    ]


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's cross-validated routing metric."""

    estimator: str
    metric: str
    """``apgr`` (two models) or ``aiq`` (more)."""
    mean: float
    """Over the out-of-fold predictions of every fold together."""
    folds: list[float]
    """Per fold."""


class QualityPredictor:
    """Predicts each model's expected outcome (e.g. P(correct)) for a prompt.

    Build one with `QualityPredictor.fit` (or ``llmrouter fit``), keep it with
    `save` and `load`.

    Examples:
        >>> from llmrouter.learn import OutcomeData, QualityPredictor
        >>> data = OutcomeData.from_rows(rows)               # doctest: +SKIP
        >>> pred = QualityPredictor.fit(data, seed=0)        # doctest: +SKIP
        >>> pred.predict(["Prove Fermat's last theorem"])   # doctest: +SKIP
        array([[0.41, 0.78]])
        >>> pred.save("my-router"); QualityPredictor.load("my-router")  # doctest: +SKIP
    """

    def __init__(
        self,
        models: Sequence[str],
        encoder: PromptEncoder,
        estimator: Estimator,
        *,
        costs: Mapping[str, float] | None = None,
        info: Mapping[str, Any] | None = None,
        validation: tuple[Floats, Floats] | None = None,
    ) -> None:
        self.models = list(models)
        self.encoder = encoder
        self.estimator = estimator
        self.costs = dict(costs) if costs is not None else None
        """Mean USD per call of each model in the training data (``None``: no costs)."""
        self.info: dict[str, Any] = dict(info or {})
        """What the manifest records beyond the weights: data, cross-validation, versions."""
        self.validation = validation
        """Out-of-fold predictions of the chosen estimator and the real outcomes, both
        (prompts, models): what `calibrate` picks thresholds and λs on."""

    def __repr__(self) -> str:
        return f"QualityPredictor(models={self.models}, estimator={self.estimator.describe()})"

    # --------------------------------------------------------------- predict

    def predict(self, prompts: Sequence[str], *, remember: bool = True) -> Floats:
        """Expected outcome of every model for every prompt, shape (prompts, models).

        ``remember=False`` keeps the prompts' embeddings out of the on-disk cache (a
        router's traffic would otherwise grow it without bound)."""
        if isinstance(prompts, str):
            raise ConfigurationError("predict takes a list of prompts; use predict_one(prompt)")
        emb = self.encoder.encode(list(prompts), remember=remember)
        return np.clip(self.estimator.predict(emb, text_features(prompts)), 0.0, 1.0)

    def predict_one(self, prompt: str, *, remember: bool = True) -> dict[str, float]:
        """``{model: expected outcome}`` for one prompt."""
        row = self.predict([prompt], remember=remember)[0]
        return {m: float(q) for m, q in zip(self.models, row, strict=True)}

    def threshold_for(self, strong_share: float) -> float:
        """Two models: the predicted-gain threshold that sent ``strong_share`` of the
        validation prompts to the stronger model (calibrated on out-of-fold predictions).

        Raises:
            ConfigurationError: not a two-model predictor, or saved without validation data.
        """
        from llmrouter.learn._decide import calibrate_threshold, gain_score

        predicted, _ = self._validation()
        strong, weak = self.strong_weak()
        return calibrate_threshold(gain_score(predicted, strong, weak), share=strong_share)

    def lambda_for(
        self, *, quality: float | None = None, budget_per_1k: float | None = None
    ) -> float:
        """The cost weight λ (quality per USD) of ``predicted - λ·cost`` that met a mean
        ``quality`` at the lowest cost, or the best quality within ``budget_per_1k`` USD
        per 1,000 requests, on the validation prompts (their real outcomes and the
        training data's mean cost per model).

        Raises:
            ConfigurationError: no costs or validation data, or the target was not met
                on validation data (the message gives the best reachable value).
        """
        from llmrouter.learn._decide import calibrate_lambda

        predicted, outcomes = self._validation()
        if self.costs is None:
            raise ConfigurationError(
                "this predictor knows no costs (its data had no MODEL|cost columns and no "
                "prices were given): give cost_weight= directly, or refit with --prices"
            )
        costs = np.array([self.costs[m] for m in self.models])
        return calibrate_lambda(
            predicted, outcomes, costs, quality=quality, budget_per_1k=budget_per_1k
        )

    def strong_weak(self) -> tuple[int, int]:
        """Two models: (index of the stronger on average, index of the weaker)."""
        if len(self.models) != 2:
            raise ConfigurationError(
                f"strong/weak routing needs a two-model predictor; this one has {self.models}: "
                "use target_quality= or cost_weight="
            )
        means = self.info.get("data", {}).get("mean_outcome", {})
        strong = int(means.get(self.models[1], 0.0) > means.get(self.models[0], 0.0))
        return strong, 1 - strong

    def _validation(self) -> tuple[Floats, Floats]:
        if self.validation is None:
            raise ConfigurationError(
                "this predictor has no validation predictions to calibrate on; refit it "
                "with QualityPredictor.fit or `llmrouter fit`"
            )
        return self.validation

    def check_covers(self, names: Sequence[str]) -> None:
        """Raise `ConfigurationError` unless this predictor predicts for every model in
        ``names`` (a router's models: each needs a predicted quality)."""
        unknown = [name for name in names if name not in self.models]
        if unknown:
            raise ConfigurationError(
                f"the quality predictor knows models {self.models}, not {unknown}: name "
                "each ModelSpec after its outcome column in the training data, or refit"
            )

    def check_models(self, names: Sequence[str]) -> None:
        """Raise `ConfigurationError` unless every model this predictor knows is in ``names``."""
        missing = [m for m in self.models if m not in names]
        if missing:
            raise ConfigurationError(
                f"this quality predictor was fitted for models {self.models}, but the router "
                f"has no model named {missing} (it has {list(names)}): name the ModelSpecs "
                "after the data's model columns, or fit a predictor on data for these models"
            )

    # ------------------------------------------------------------------- fit

    @classmethod
    def fit(
        cls,
        data: OutcomeData,
        *,
        encoder: PromptEncoder | None = None,
        candidates: Sequence[Estimator] | None = None,
        folds: int = 5,
        seed: int = 0,
        prices: Mapping[str, float] | None = None,
        progress: bool = False,
        on_step: Callable[[str], None] | None = None,
    ) -> QualityPredictor:
        """Embed the prompts, choose the estimator by ``folds``-fold cross-validation on
        the routing metric, and fit it on all of ``data``. Reproducible with ``seed``.

        Raises:
            ConfigurationError: fewer than ``2 * folds`` rows, or ``folds < 2``.
        """
        if folds < 2 or data.n < 2 * folds:
            raise ConfigurationError(
                f"cross-validation needs folds >= 2 and at least {2 * max(folds, 2)} rows; "
                f"{data.source} has {data.n}"
            )
        say = on_step or (lambda _: None)
        started = time.monotonic()
        encoder = (encoder or PromptEncoder()).learn_affixes(data.prompts)
        if encoder.prefix or encoder.suffix:
            say(
                f"every prompt shares a {len(encoder.prefix)}-character prefix and a "
                f"{len(encoder.suffix)}-character suffix: embedding what lies between"
            )
        say(f"embedding {data.n} prompts with {encoder.model}")
        emb = encoder.encode(data.prompts, progress=progress)
        text = text_features(data.prompts)
        costs = _mean_costs(data, prices)
        pool = list(candidates) if candidates is not None else default_candidates()
        say(f"cross-validating {len(pool)} estimators over {folds} folds")
        runs = [_cross_validate(est, emb, text, data.outcomes, costs, folds, seed) for est in pool]
        scores = [score for score, _ in runs]
        best = max(range(len(pool)), key=lambda i: (scores[i].mean, -i))
        chosen = pool[best]
        say(f"fitting {chosen.describe()} on all {data.n} prompts")
        chosen.fit(emb, text, data.outcomes, seed)
        info = {
            "data": {
                "source": data.source,
                "rows": data.n,
                "dropped_rows": len(data.dropped),
                "score_range": data.score_range,
                "mean_outcome": dict(
                    zip(data.models, data.outcomes.mean(axis=0).tolist(), strict=True)
                ),
            },
            "cross_validation": {
                "folds": folds,
                "seed": seed,
                "metric": scores[best].metric,
                "selected": chosen.describe(),
                "candidates": [s.__dict__ for s in scores],
            },
            "fit_seconds": round(time.monotonic() - started, 1),
        }
        cost_map = None if costs is None else dict(zip(data.models, costs.tolist(), strict=True))
        validation = (runs[best][1], data.outcomes)
        return cls(data.models, encoder, chosen, costs=cost_map, info=info, validation=validation)

    @classmethod
    def coerce(cls, value: Any) -> QualityPredictor:
        """``value`` itself, or the predictor saved in the directory ``value`` names.

        Raises:
            ConfigurationError: anything else, or not a predictor directory.
        """
        if isinstance(value, QualityPredictor):
            return value
        if isinstance(value, (str, Path)):
            return cls.load(value)
        raise ConfigurationError(
            f"predictor must be a QualityPredictor or the directory `llmrouter fit` wrote, "
            f"not {type(value).__name__}"
        )

    # ----------------------------------------------------------- persistence

    def save(self, path: str | Path) -> Path:
        """Write the predictor to the directory ``path`` (created; files replaced)."""
        folder = Path(path).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = self.estimator.arrays()
        if self.validation is not None:
            arrays["validation.predicted"], arrays["validation.outcomes"] = self.validation
        np.savez(folder / WEIGHTS, allow_pickle=False, **arrays)
        manifest = {
            "kind": _KIND,
            "format": FORMAT,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "models": self.models,
            "costs_usd_per_call": self.costs,
            "encoder": self.encoder.settings,
            "text_features": list(TEXT_FEATURES),
            "estimator": {"kind": self.estimator.kind, "params": self.estimator.params()},
            **self.info,
            "versions": _versions(),
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, path: str | Path, *, encoder: PromptEncoder | None = None) -> QualityPredictor:
        """Read a predictor saved by `save` (or ``llmrouter fit``); runs no code from it.

        Raises:
            ConfigurationError: not a predictor directory, or from a newer format.
        """
        folder = Path(path).expanduser()
        manifest = _read_manifest(folder)
        try:
            with np.load(folder / WEIGHTS, allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
            spec = manifest["estimator"]
            estimator = restore(spec["params"], arrays, spec["kind"])
            validation = None
            if "validation.predicted" in arrays:
                validation = (arrays["validation.predicted"], arrays["validation.outcomes"])
            settings = manifest["encoder"]
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"{folder}: damaged quality predictor ({type(exc).__name__}: {exc}); fit it again"
            ) from exc
        affixes = settings.get("prefix", ""), settings.get("suffix", "")
        if encoder is None:
            encoder = PromptEncoder(
                settings["model"],
                part=settings["part"],
                max_chars=settings["max_chars"],
                quantize=settings.get("quantize"),  # predictors saved before it: float32
            )
        encoder = encoder.with_affixes(*affixes)  # a copy: the caller's encoder stays as it is
        encoder.quantize = settings.get("quantize")  # embed as it was fitted
        if encoder.quantize is not None:  # int8 differs by runtime (saved before it: torch)
            encoder.backend = settings.get("quantized_on") or "torch"
            if encoder.backend == "onnx" and not _onnx.available():
                raise ConfigurationError(
                    f"{folder} embeds with int8 on ONNX Runtime, which is not installed: "
                    "pip install 'llmrouter[learn]', or fit it again"
                )
        info = {
            k: v for k, v in manifest.items() if k in ("data", "cross_validation", "fit_seconds")
        }
        return cls(
            manifest["models"],
            encoder,
            estimator,
            costs=manifest.get("costs_usd_per_call"),
            info=info,
            validation=validation,
        )


def _read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / MANIFEST
    if not file.is_file():
        raise ConfigurationError(
            f"{folder} is not a quality predictor (no {MANIFEST}); make one with "
            "`llmrouter fit DATA --out DIR` or QualityPredictor.fit(...).save(DIR)"
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{file}: not JSON ({exc.msg}); fit it again") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != _KIND:
        raise ConfigurationError(f"{file} is not a quality-predictor manifest")
    if int(manifest.get("format", 0)) > FORMAT:
        raise ConfigurationError(
            f"{folder} was saved by a newer llmrouter (format {manifest['format']}); upgrade"
        )
    return manifest


def _mean_costs(data: OutcomeData, prices: Mapping[str, float] | None) -> Floats | None:
    if data.costs is None and prices is None:
        return None
    return data.mean_costs(prices)


def _cross_validate(
    estimator: Estimator,
    emb: NDArray[np.float32],
    text: Floats,
    outcomes: Floats,
    costs: Floats | None,
    folds: int,
    seed: int,
) -> tuple[CandidateScore, Floats]:
    """The routing metric of ``estimator``'s out-of-fold predictions, and those predictions."""
    order = np.random.default_rng(seed).permutation(len(outcomes))
    parts = np.array_split(order, folds)
    oof = np.zeros_like(outcomes)
    per_fold: list[float] = []
    for k, test in enumerate(parts):
        train = np.concatenate([p for j, p in enumerate(parts) if j != k])
        estimator.fit(emb[train], text[train], outcomes[train], seed)
        oof[test] = estimator.predict(emb[test], text[test])
        per_fold.append(routing_score(oof[test], outcomes[test], costs)[1])
    metric, overall = routing_score(oof, outcomes, costs)
    return CandidateScore(estimator.describe(), metric, overall, per_fold), oof


def routing_score(predicted: Floats, outcomes: Floats, costs: Floats | None) -> tuple[str, float]:
    """``(metric, value)`` that model selection maximises: APGR of the predicted gain for
    two models; for more, AIQ of the λ-sweep cost-quality curve over the range from the
    cheapest to the dearest model (``costs``: mean USD per call of each model); without
    costs, the negative Brier score of the predictions."""
    from llmrouter.learn._decide import gain_score, lambda_sweep
    from llmrouter.learn._metrics import aiq, apgr

    if outcomes.shape[1] == 2:
        strong = int(np.argmax(outcomes.mean(axis=0)))
        weak = 1 - strong
        value = apgr(gain_score(predicted, strong, weak), outcomes[:, weak], outcomes[:, strong])
        return "apgr", float(value if value is not None else 0.0)
    if costs is not None:
        curve = lambda_sweep(predicted, outcomes, costs)
        points = np.column_stack([curve.cost, curve.quality])
        return "aiq", aiq(points, cost_range=(float(costs.min()), float(costs.max())))
    return "neg_brier", -float(np.mean((predicted - outcomes) ** 2))


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("llmrouter", "numpy", "scikit-learn", "sentence-transformers", "torch"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found
