"""llmrouter.learn._decide: decision rules, λ sweeps and calibration on tiny and synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrouter.errors import ConfigurationError
from llmrouter.learn._decide import (
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


def _synthetic(
    seed: int, n: int = 300, m: int = 4, per_prompt: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Models of rising price and skill: model j is likely right on prompts easier than its
    skill; predictions are the real probabilities plus noise."""
    rng = np.random.default_rng(seed)
    skill = np.linspace(0.3, 0.9, m)
    difficulty = rng.random(n)[:, None]
    prob = 1 / (1 + np.exp(-12 * (skill[None, :] - difficulty)))
    outcomes = (rng.random((n, m)) < prob).astype(float)
    predicted = np.clip(prob + rng.normal(0, 0.05, (n, m)), 0, 1)
    prices = np.geomspace(1e-4, 1e-2, m)
    costs = prices * rng.uniform(0.5, 1.5, (n, 1)) if per_prompt else np.tile(prices, (n, 1))
    return predicted, outcomes, costs


def _choice_at(predicted: np.ndarray, costs: np.ndarray, lam: float) -> tuple[int, ...]:
    return tuple(pick_by_lambda(predicted, costs, lam).tolist())


# ------------------------------------------------------------------------------ pick_by_lambda


def test_pick_by_lambda_trades_quality_for_cost() -> None:
    predicted = np.array([[0.9, 0.6, 0.5], [0.8, 0.79, 0.2]])
    costs = np.array([0.01, 0.001, 0.0])
    assert pick_by_lambda(predicted, costs, 0.0).tolist() == [0, 0]
    # λ = 10: 0.01 of quality is worth $0.001; row 1 gives 0.01 for $0.009 less
    assert pick_by_lambda(predicted, costs, 10.0).tolist() == [0, 1]
    assert pick_by_lambda(predicted, costs, 1e6).tolist() == [2, 2]
    assert pick_by_lambda(predicted, costs, 0).dtype == np.intp


def test_pick_by_lambda_ties_go_to_the_cheaper_then_lower_index() -> None:
    costs = np.array([0.3, 0.1, 0.1, 0.2])
    assert pick_by_lambda([[0.5, 0.5, 0.5, 0.5]], costs, 0.0).tolist() == [1]
    assert pick_by_lambda([[0.5, 0.4, 0.5, 0.5]], costs, 0.0).tolist() == [2]
    # a tie only up to rounding: 0.7 - 1.0 * 0.1 == 0.6 in exact arithmetic
    assert pick_by_lambda([[0.7, 0.6]], [0.1, 0.0], 1.0).tolist() == [1]


def test_pick_by_lambda_takes_per_prompt_costs() -> None:
    predicted = [[0.8, 0.7], [0.8, 0.7]]
    costs = [[0.05, 0.0], [0.2, 0.0]]  # the first model is dearer on the second prompt
    assert pick_by_lambda(predicted, costs, 1.0).tolist() == [0, 1]


@pytest.mark.parametrize("lam", [-1.0, math.nan, math.inf, "1"])
def test_pick_by_lambda_refuses_a_bad_lambda(lam: object) -> None:
    with pytest.raises(ConfigurationError, match="lam"):
        pick_by_lambda([[0.5, 0.6]], [0.1, 0.2], lam)  # type: ignore[arg-type]


def test_pick_by_lambda_refuses_mismatched_or_bad_arrays() -> None:
    with pytest.raises(ConfigurationError, match=r"costs must have shape \(1, 2\)"):
        pick_by_lambda([[0.5, 0.6]], [0.1, 0.2, 0.3], 0.0)
    with pytest.raises(ConfigurationError, match="≥ 0"):
        pick_by_lambda([[0.5, 0.6]], [0.1, -0.2], 0.0)
    with pytest.raises(ConfigurationError, match="NaN"):
        pick_by_lambda([[0.5, math.nan]], [0.1, 0.2], 0.0)
    with pytest.raises(ConfigurationError, match="2-D"):
        pick_by_lambda([0.5, 0.6], [0.1, 0.2], 0.0)


# ----------------------------------------------------------------------- pick_cheapest_meeting


def test_pick_cheapest_meeting() -> None:
    predicted = [
        [0.9, 0.7, 0.2],  # models 0 and 1 reach 0.6: 1 is cheaper
        [0.9, 0.8, 0.65],  # all reach it: the cheapest, 2
        [0.4, 0.5, 0.1],  # none reaches it: the best predicted, 1
    ]
    costs = [0.3, 0.2, 0.1]
    assert pick_cheapest_meeting(predicted, costs, 0.6).tolist() == [1, 2, 1]


def test_pick_cheapest_meeting_ties() -> None:
    # equal costs: the higher prediction; equal predictions as a fallback: the cheaper
    assert pick_cheapest_meeting([[0.7, 0.9, 0.8]], [0.1, 0.1, 0.2], 0.6).tolist() == [1]
    assert pick_cheapest_meeting([[0.3, 0.3, 0.1]], [0.2, 0.1, 0.0], 0.6).tolist() == [1]
    assert pick_cheapest_meeting([[0.6, 0.6]], [0.1, 0.1], 0.6).tolist() == [0]


# -------------------------------------------------------------------------------- two models


def test_gain_score_and_pick_strong() -> None:
    predicted = [[0.5, 0.9], [0.8, 0.7], [0.4, 0.6]]
    assert gain_score(predicted, 1, 0) == pytest.approx([0.4, -0.1, 0.2])
    assert gain_score(predicted, 0, 1) == pytest.approx([-0.4, 0.1, -0.2])
    assert pick_strong(predicted, 1, 0, 0.2).tolist() == [True, False, False]  # strictly above
    assert pick_strong(predicted, 1, 0, -1.0).tolist() == [True, True, True]
    with pytest.raises(ConfigurationError, match="different models"):
        gain_score(predicted, 1, 1)
    with pytest.raises(ConfigurationError, match=r"0\.\.1"):
        gain_score(predicted, 2, 0)


def test_share_curve_by_hand_and_ties_averaged() -> None:
    # gains by score order: +1 (score 3), 0 (2), -1 (1)
    assert share_curve([3, 2, 1], [0, 1, 1], [1, 1, 0]) == pytest.approx([2 / 3, 1, 1, 2 / 3])
    # a constant score: the straight line from the weak mean to the strong mean
    line = share_curve(np.zeros(4), [0, 0, 0, 0], [1, 1, 0, 0])
    assert line == pytest.approx([0, 0.125, 0.25, 0.375, 0.5])
    # ties do not depend on the prompts' order
    scores, weak, strong = [1, 1, 0, 1], [0, 1, 0, 0], [1, 0, 1, 1]
    flipped = share_curve(scores[::-1], weak[::-1], strong[::-1])
    assert share_curve(scores, weak, strong) == pytest.approx(flipped)


# -------------------------------------------------------------------------------- λ sweeps


def test_lambda_grid_by_hand() -> None:
    predicted = [[0.9, 0.6], [0.8, 0.79]]
    # row 0 switches at 0.3 / 0.009 = 33.3, row 1 at 0.01 / 0.009 = 1.11
    grid = lambda_grid(predicted, [0.01, 0.001])
    assert grid == pytest.approx([0.0, (0.01 / 0.009 + 0.3 / 0.009) / 2, 2 * 0.3 / 0.009])
    assert [_choice_at(np.array(predicted), np.array([0.01, 0.001]), g) for g in grid] == [
        (0, 0),
        (0, 1),
        (1, 1),
    ]


def test_lambda_grid_without_any_switch() -> None:
    # the cheapest model is also predicted best: one operating point
    assert lambda_grid([[0.9, 0.5]], [0.0, 1.0]).tolist() == [0.0]
    assert lambda_grid([[0.9]], [1.0]).tolist() == [0.0]


@pytest.mark.parametrize("per_prompt", [False, True])
def test_lambda_grid_meets_every_operating_point_once(per_prompt: bool) -> None:
    predicted, _, costs = _synthetic(1, n=40, m=4, per_prompt=per_prompt)
    predicted = predicted.round(1)  # many exact ties
    grid = lambda_grid(predicted, costs)
    assert grid[0] == 0 and np.all(np.diff(grid) > 0)
    on_grid = [_choice_at(predicted, costs, lam) for lam in grid]
    assert len(set(on_grid)) == len(grid)  # each point once
    dense = np.concatenate([[0.0], np.geomspace(grid[-1] * 1e-6, grid[-1] * 10, 2000)])
    assert {_choice_at(predicted, costs, lam) for lam in dense} <= set(on_grid)
    assert on_grid[-1] == tuple(np.argmin(costs, axis=1).tolist())  # everything cheapest
    thinned = lambda_grid(predicted, costs, points=5)
    assert thinned.size == 5 and thinned[0] == grid[0] and thinned[-1] == grid[-1]
    with pytest.raises(ConfigurationError, match="points"):
        lambda_grid(predicted, costs, points=1)


def test_lambda_sweep_matches_routing_at_each_lambda() -> None:
    predicted, outcomes, costs = _synthetic(2, n=60, per_prompt=True)
    sweep = lambda_sweep(predicted, outcomes, costs)
    assert np.array_equal(sweep.lambdas, lambda_grid(predicted, costs))
    rows = np.arange(len(predicted))
    for lam, cost, quality in zip(sweep.lambdas, sweep.cost, sweep.quality, strict=True):
        chosen = pick_by_lambda(predicted, costs, lam)
        assert costs[rows, chosen].mean() == pytest.approx(cost, rel=1e-9)
        assert outcomes[rows, chosen].mean() == pytest.approx(quality, abs=1e-12)
    assert sweep.cost[-1] == pytest.approx(costs.min(axis=1).mean())
    with pytest.raises(ConfigurationError, match="same order"):
        lambda_sweep(predicted, outcomes[:, :2], costs)


# ------------------------------------------------------------------------- calibrate_lambda


def _routed(predicted: np.ndarray, outcomes: np.ndarray, costs: np.ndarray, lam: float):
    chosen = pick_by_lambda(predicted, costs, lam)
    rows = np.arange(len(predicted))
    return float(outcomes[rows, chosen].mean()), float(costs[rows, chosen].mean())


def test_calibrate_lambda_reaches_a_quality_at_the_lowest_cost() -> None:
    predicted, outcomes, costs = _synthetic(3)
    best_model = outcomes.mean(axis=0).max()
    target = best_model - 0.02
    lam = calibrate_lambda(predicted, outcomes, costs, quality=target)
    quality, cost = _routed(predicted, outcomes, costs, lam)
    assert quality >= target
    assert cost < costs[:, outcomes.mean(axis=0).argmax()].mean()  # cheaper than the best model
    for other in np.geomspace(1e-2, 1e5, 400):  # no λ is cheaper at that quality
        q, c = _routed(predicted, outcomes, costs, other)
        assert not (q >= target and c < cost - 1e-15)


def test_calibrate_lambda_spends_a_budget_on_the_best_quality() -> None:
    predicted, outcomes, costs = _synthetic(4)
    budget = 1000 * costs.mean(axis=0)[1]  # what the second-cheapest model costs
    lam = calibrate_lambda(predicted, outcomes, costs, budget_per_1k=budget)
    quality, cost = _routed(predicted, outcomes, costs, lam)
    assert 1000 * cost <= budget + 1e-12
    assert quality > outcomes[:, 1].mean()  # routing beats the model it costs as much as
    for other in np.geomspace(1e-2, 1e5, 400):
        q, c = _routed(predicted, outcomes, costs, other)
        assert not (1000 * c <= budget and q > quality + 1e-12)


def test_calibrate_lambda_needs_exactly_one_target_and_costs() -> None:
    predicted, outcomes, costs = _synthetic(5, n=20)
    with pytest.raises(ConfigurationError, match="exactly one target"):
        calibrate_lambda(predicted, outcomes, costs)
    with pytest.raises(ConfigurationError, match="exactly one target"):
        calibrate_lambda(predicted, outcomes, costs, quality=0.5, budget_per_1k=1.0)
    with pytest.raises(ConfigurationError, match="needs costs"):
        calibrate_lambda(predicted, outcomes, None, quality=0.5)


def test_calibrate_lambda_says_what_is_reachable() -> None:
    predicted = [[0.9, 0.6], [0.8, 0.79]]
    outcomes = [[1, 0], [0, 1]]
    costs = [0.01, 0.001]  # the operating points reach quality 0.5, 1.0 and 0.5
    with pytest.raises(ConfigurationError, match=r"best reachable is 1\.0000 .*\$5\.5000"):
        calibrate_lambda(predicted, outcomes, costs, quality=1.01)
    with pytest.raises(ConfigurationError, match=r"cheapest reachable is \$1\.0000"):
        calibrate_lambda(predicted, outcomes, costs, budget_per_1k=0.5)
    with pytest.raises(ConfigurationError, match="budget_per_1k"):
        calibrate_lambda(predicted, outcomes, costs, budget_per_1k=-1.0)


# ---------------------------------------------------------------------- calibrate_threshold


def test_calibrate_threshold_hits_a_share() -> None:
    scores = np.random.default_rng(6).normal(size=1000)
    for share in (0.0, 0.1, 0.3, 0.75, 1.0):
        threshold = calibrate_threshold(scores, share)
        assert (scores > threshold).sum() == round(share * 1000)
    assert calibrate_threshold(scores, 0.0) == math.inf
    assert calibrate_threshold(scores, 1.0) == -math.inf
    assert calibrate_threshold([0.1, 0.5, 0.3, 0.9], share=0.5) == pytest.approx(0.4)


def test_calibrate_threshold_with_tied_scores_takes_the_nearest_share() -> None:
    scores = [0.9, 0.5, 0.5, 0.5, 0.1]  # achievable shares: 0, 0.2, 0.8, 1
    assert (np.array(scores) > calibrate_threshold(scores, 0.4)).sum() == 1
    assert (np.array(scores) > calibrate_threshold(scores, 0.6)).sum() == 4
    assert (np.array(scores) > calibrate_threshold(scores, 0.5)).sum() == 1  # halfway: fewer


def test_calibrate_threshold_reaches_a_quality_with_the_fewest_strong_calls() -> None:
    rng = np.random.default_rng(7)
    n = 400
    weak = (rng.random(n) < 0.5).astype(float)
    strong = np.maximum(weak, (rng.random(n) < 0.6).astype(float))
    scores = (strong - weak) + rng.normal(0, 0.7, n)  # an informative but noisy score
    target = weak.mean() + 0.6 * (strong.mean() - weak.mean())
    threshold = calibrate_threshold(
        scores, quality=target, weak_outcomes=weak, strong_outcomes=strong
    )
    goes_strong = scores > threshold
    assert np.where(goes_strong, strong, weak).mean() >= target
    fewer = np.sort(scores)[::-1][goes_strong.sum() - 1]  # one strong call less
    assert np.where(scores > fewer, strong, weak).mean() < target


def test_calibrate_threshold_errors() -> None:
    scores, weak, strong = [0.8, 0.2], [0, 0], [1, 0]
    with pytest.raises(ConfigurationError, match="exactly one target"):
        calibrate_threshold(scores)
    with pytest.raises(ConfigurationError, match="exactly one target"):
        calibrate_threshold(scores, 0.5, quality=0.5, weak_outcomes=weak, strong_outcomes=strong)
    with pytest.raises(ConfigurationError, match="weak_outcomes= and strong_outcomes="):
        calibrate_threshold(scores, quality=0.5)
    with pytest.raises(ConfigurationError, match=r"best reachable is 0\.5000 \(with 50\.0%"):
        calibrate_threshold(scores, quality=0.9, weak_outcomes=weak, strong_outcomes=strong)
    with pytest.raises(ConfigurationError, match="share"):
        calibrate_threshold(scores, 1.5)
