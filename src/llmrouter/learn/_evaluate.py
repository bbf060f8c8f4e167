"""Evaluating a fitted `QualityPredictor` on held-out routing data (the ``evaluate`` contract)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrouter.errors import DataError

if TYPE_CHECKING:
    from llmrouter.learn._data import OutcomeData
    from llmrouter.learn._predictor import QualityPredictor


def evaluate_predictor(
    predictor: QualityPredictor,
    data: OutcomeData,
    *,
    prices: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Route ``data``'s prompts with ``predictor`` and score the result against baselines.

    Costs come from the data's ``MODEL|cost`` columns, else ``prices`` (USD per call),
    else the mean costs the predictor saw when fitted; two-model data without any
    of them is scored by the share of strong calls. Returns the JSON object that
    ``llmrouter evaluate --json`` prints (see `llmrouter.learn.evaluate`).

    Raises:
        DataError: the data lacks one of the predictor's models.
    """
    from llmrouter.learn._metrics import evaluate

    missing = [m for m in predictor.models if m not in data.models]
    if missing:
        raise DataError(
            f"{data.source} has no outcomes for {missing}, which the predictor routes to"
        )
    columns = [data.models.index(m) for m in predictor.models]
    outcomes = data.outcomes[:, columns]
    costs = None if data.costs is None else data.costs[:, columns]
    if costs is None:
        known = prices if prices is not None else predictor.costs
        if known is not None:
            per_call = np.array([float(known[m]) for m in predictor.models if m in known])
            if len(per_call) == len(predictor.models):
                costs = np.broadcast_to(per_call, outcomes.shape).copy()
    predicted = predictor.predict(data.prompts)
    return evaluate(predicted, outcomes, costs, predictor.models, data.prompts)
