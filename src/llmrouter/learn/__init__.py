"""Learned routing: predict from a prompt how well each model will do, and route on it.

Fit a `QualityPredictor` on prompts with each model's real outcomes (``llmrouter
fit DATA --out DIR``), check it on held-out prompts (``llmrouter evaluate DIR
DATA``), and give it to a router.
"""

from llmrouter.learn._data import COST_SUFFIX, OutcomeData, read_outcomes
from llmrouter.learn._decide import (
    LambdaSweep,
    calibrate_lambda,
    calibrate_threshold,
    gain_score,
    lambda_grid,
    lambda_sweep,
    pick_by_lambda,
    pick_cheapest_meeting,
    pick_strong,
    share_curve,
)
from llmrouter.learn._embeddings import LocalEmbeddings
from llmrouter.learn._estimators import (
    BlendEstimator,
    Estimator,
    KNNEstimator,
    LogisticEstimator,
)
from llmrouter.learn._evaluate import evaluate_predictor
from llmrouter.learn._features import (
    DEFAULT_EMBEDDING_MODEL,
    TEXT_FEATURES,
    PromptEncoder,
    default_cache_dir,
    text_features,
)
from llmrouter.learn._metrics import (
    aiq,
    apgr,
    convex_hull,
    cpt,
    evaluate,
    plot_curves,
    render_table,
)
from llmrouter.learn._predictor import (
    CandidateScore,
    QualityPredictor,
    default_candidates,
    routing_score,
)

__all__ = [
    "COST_SUFFIX",
    "DEFAULT_EMBEDDING_MODEL",
    "TEXT_FEATURES",
    "BlendEstimator",
    "CandidateScore",
    "Estimator",
    "KNNEstimator",
    "LambdaSweep",
    "LocalEmbeddings",
    "LogisticEstimator",
    "OutcomeData",
    "PromptEncoder",
    "QualityPredictor",
    "aiq",
    "apgr",
    "calibrate_lambda",
    "calibrate_threshold",
    "convex_hull",
    "cpt",
    "default_cache_dir",
    "default_candidates",
    "evaluate",
    "evaluate_predictor",
    "gain_score",
    "lambda_grid",
    "lambda_sweep",
    "pick_by_lambda",
    "pick_cheapest_meeting",
    "pick_strong",
    "plot_curves",
    "read_outcomes",
    "render_table",
    "routing_score",
    "share_curve",
    "text_features",
]
