"""llmrouter.learn._metrics: RouteLLM and RouterBench metrics by hand, evaluate's JSON, plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from llmrouter.errors import ConfigurationError
from llmrouter.learn._metrics import (
    CURVE_POINTS,
    aiq,
    apgr,
    convex_hull,
    cpt,
    evaluate,
    plot_curves,
    render_table,
)

# weak mean 3/6, strong mean 4/6; real gains +1, +1, 0, -1, 0, 0
WEAK = [0, 0, 1, 1, 0, 1]
STRONG = [1, 1, 1, 0, 0, 1]
GAIN = [s - w for s, w in zip(STRONG, WEAK, strict=True)]

ENTRY_KEYS = {"apgr", "cpt50", "cpt80", "aiq", "curve"}


# ------------------------------------------------------------------------------ APGR and CPT


def test_apgr_and_cpt_of_the_oracle_by_hand() -> None:
    # by score: the two gains, three ties of no gain (averaged), the loss; in sixths the
    # quality at k = 0..6 is 3, 4, 5, 5, 5, 5, 4: area (31/6 - 7/12) / 6 = 55/72
    assert apgr(GAIN, WEAK, STRONG) == pytest.approx((55 / 72 - 1 / 2) / (1 / 6))  # 19/12
    assert cpt(GAIN, WEAK, STRONG, 0.5) == pytest.approx(1 / 6)
    assert cpt(GAIN, WEAK, STRONG, 0.8) == pytest.approx(1 / 6)
    assert cpt(GAIN, WEAK, STRONG, 1.0) == pytest.approx(1 / 6)  # the strong mean at once
    assert cpt(GAIN, WEAK, STRONG, 2.0) == pytest.approx(2 / 6)  # 5/6 = weak + 2 gaps
    assert cpt(GAIN, WEAK, STRONG, 2.1) is None


def test_reversed_scores_do_worse_than_random() -> None:
    reversed_ = apgr([-g for g in GAIN], WEAK, STRONG)
    assert reversed_ is not None and reversed_ < 0.5
    assert cpt([-g for g in GAIN], WEAK, STRONG, 0.5) == pytest.approx(1.0)


def test_a_constant_score_is_exactly_random() -> None:
    assert apgr(np.zeros(6), WEAK, STRONG) == pytest.approx(0.5)
    assert cpt(np.zeros(6), WEAK, STRONG, 0.5) == pytest.approx(3 / 6)  # linear: k ≥ 3
    assert cpt(np.zeros(6), WEAK, STRONG, 0.8) == pytest.approx(5 / 6)  # k ≥ 4.8


def test_random_scores_average_one_half() -> None:
    rng = np.random.default_rng(0)
    weak = (rng.random(60) < 0.4).astype(float)
    strong = (rng.random(60) < 0.7).astype(float)
    values = [apgr(rng.random(60), weak, strong) for _ in range(400)]
    assert np.mean([v for v in values if v is not None]) == pytest.approx(0.5, abs=0.03)
    assert apgr(strong - weak, weak, strong) > 0.9  # the oracle is far above


def test_no_gap_gives_none() -> None:
    assert apgr([1, 2], [1, 0], [0, 1]) is None  # equal means
    assert apgr([1, 2], [1, 1], [0, 1]) is None  # strong worse
    assert cpt([1, 2], [1, 1], [0, 1], 0.5) is None
    with pytest.raises(ConfigurationError, match="x must be a finite number"):
        cpt([1, 2], [0, 0], [1, 1], math.nan)
    with pytest.raises(ConfigurationError, match="length 2"):
        apgr([1, 2], [0, 0, 1], [1, 1])


# --------------------------------------------------------------------------- hull and AIQ


def test_convex_hull_drops_dominated_and_inner_points() -> None:
    points = [
        (0.0, 0.4),
        (0.0, 0.5),  # same cost, better: replaces (0, 0.4)
        (1.0, 0.6),  # under the chord (0, 0.5)-(2, 0.9)
        (1.0, 0.7),  # on the chord: dropped too
        (2.0, 0.9),
        (3.0, 0.8),  # dearer and worse than (2, 0.9)
        (4.0, 0.9),  # dearer and no better
        (5.0, 1.0),
    ]
    hull = convex_hull(points)
    assert hull.tolist() == [[0.0, 0.5], [2.0, 0.9], [5.0, 1.0]]
    assert convex_hull([(3.0, 0.2)]).tolist() == [[3.0, 0.2]]
    with pytest.raises(ConfigurationError, match="shape"):
        convex_hull([1.0, 2.0])


def test_aiq_by_hand() -> None:
    points = [(0.0, 0.5), (2.0, 0.9), (5.0, 1.0), (1.0, 0.6)]
    # trapezoids under the hull: 2 * 0.7 + 3 * 0.95 = 4.25 over a width of 5
    assert aiq(points) == pytest.approx(4.25 / 5)
    # flat at 1.0 to the right of cost 5
    assert aiq(points, cost_range=(0.0, 10.0)) == pytest.approx((4.25 + 5.0) / 10)
    # nothing to the left of cost 0: counts 0
    assert aiq(points, cost_range=(-5.0, 5.0)) == pytest.approx(4.25 / 10)
    # a part of the range: interpolated at its ends (0.7 at 1, 0.95 at 3.5)
    assert aiq(points, cost_range=(1.0, 3.5)) == pytest.approx(
        ((0.7 + 0.9) / 2 * 1 + (0.9 + 0.95) / 2 * 1.5) / 2.5
    )
    assert aiq(points, cost_range=(1.0, 1.0)) == pytest.approx(0.7)
    assert aiq([(0.0, 0.5), (1.0, 0.5)]) == pytest.approx(0.5)  # dominated: flat
    with pytest.raises(ConfigurationError, match="low ≤ high"):
        aiq(points, cost_range=(2.0, 1.0))


def test_aiq_ranks_a_better_frontier_higher() -> None:
    line = [(0.0, 0.5), (1.0, 0.9)]
    bowed = [(0.0, 0.5), (0.2, 0.85), (1.0, 0.9)]
    assert aiq(bowed) > aiq(line)


# ------------------------------------------------------------------------------- evaluate


def _assert_plain_json(value: Any) -> None:
    """Only dict, list, str, int, float and None; no numpy scalars."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            _assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain_json(item)
    else:
        assert value is None or type(value) in (str, int, float), (value, type(value))


def _two_models(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    difficulty = rng.random(n)
    outcomes = np.column_stack([difficulty < 0.4, difficulty < 0.8]).astype(float)
    skill = np.array([0.4, 0.8])
    predicted = 1 / (1 + np.exp(-10 * (skill - difficulty[:, None])))
    predicted += rng.normal(0, 0.05, (n, 2))
    prompts = ["x" * int(5 + 100 * d + rng.integers(0, 30)) for d in difficulty]
    return predicted, outcomes, prompts


def _check_shape(result: dict[str, Any], models: list[str], n: int) -> None:
    assert set(result) == {"n", "router", "baselines"} and result["n"] == n
    assert set(result["router"]) == ENTRY_KEYS
    assert set(result["baselines"]) == {"random", "length", "oracle", "models"}
    for name in ("random", "length", "oracle"):
        assert set(result["baselines"][name]) == ENTRY_KEYS
    assert list(result["baselines"]["models"]) == models
    for single in result["baselines"]["models"].values():
        assert set(single) == {"quality", "cost"}
    for entry in [result["router"], *(result["baselines"][k] for k in ("random", "length"))]:
        assert 2 <= len(entry["curve"]) <= CURVE_POINTS
        assert all(set(point) == {"cost", "quality"} for point in entry["curve"])
    _assert_plain_json(result)
    json.dumps(result, allow_nan=False)


def test_evaluate_two_models_without_costs() -> None:
    predicted, outcomes, prompts = _two_models()
    result = evaluate(predicted, outcomes, None, ["small", "large"], prompts)
    _check_shape(result, ["small", "large"], 300)
    router, base = result["router"], result["baselines"]
    assert base["models"]["small"] == {"quality": outcomes[:, 0].mean(), "cost": 0.0}
    assert base["models"]["large"] == {"quality": outcomes[:, 1].mean(), "cost": 1.0}
    # curves run from all weak (share 0) to all strong (share 1), endpoints kept
    assert router["curve"][0] == {"cost": 0.0, "quality": pytest.approx(outcomes[:, 0].mean())}
    assert router["curve"][-1] == {"cost": 1.0, "quality": pytest.approx(outcomes[:, 1].mean())}
    assert len(router["curve"]) == CURVE_POINTS
    assert base["random"]["apgr"] == pytest.approx(0.5)
    assert base["random"]["cpt50"] == pytest.approx(0.5, abs=1 / 300)
    # an informative predictor beats random and length, and the oracle beats it
    assert base["oracle"]["apgr"] > router["apgr"] > 0.6 > base["random"]["apgr"]
    assert router["cpt50"] < base["random"]["cpt50"]
    assert router["aiq"] > base["random"]["aiq"]
    assert 0.5 < base["length"]["apgr"] < router["apgr"]  # length correlates with difficulty


def test_evaluate_two_models_strong_and_costs() -> None:
    predicted, outcomes, _ = _two_models(1, n=50)
    costs = np.tile([0.001, 0.01], (50, 1))
    result = evaluate(predicted, outcomes, costs, ["small", "large"], None)
    assert result["baselines"]["length"] is None
    assert result["baselines"]["models"]["large"]["cost"] == pytest.approx(0.01)
    assert result["router"]["curve"][0]["cost"] == pytest.approx(0.001)
    assert result["router"]["curve"][-1]["cost"] == pytest.approx(0.01)
    assert len(result["router"]["curve"]) == 51
    json.dumps(result, allow_nan=False)
    # naming the worse model strong flips the gap: no APGR
    flipped = evaluate(predicted, outcomes, costs, ["small", "large"], None, strong="small")
    assert flipped["router"]["apgr"] is None and flipped["router"]["cpt50"] is None
    same = evaluate(predicted, outcomes, costs, ["small", "large"], None, weak="small")
    assert same["router"] == result["router"]


def test_evaluate_many_models() -> None:
    rng = np.random.default_rng(2)
    n, skill = 200, np.array([0.3, 0.6, 0.9])
    difficulty = rng.random(n)[:, None]
    outcomes = (difficulty < skill).astype(float)
    predicted = np.clip(skill - difficulty + 0.5 + rng.normal(0, 0.05, (n, 3)), 0, 1)
    costs = np.tile([0.0001, 0.001, 0.01], (n, 1))
    models = ["tiny", "mid", "big"]
    prompts = ["y" * int(200 * d) for d in difficulty[:, 0]]
    result = evaluate(predicted, outcomes, costs, models, prompts)
    _check_shape(result, models, n)
    router, base = result["router"], result["baselines"]
    for entry in (router, base["random"], base["length"], base["oracle"]):
        assert entry["apgr"] is entry["cpt50"] is entry["cpt80"] is None
    # router: from everything on the cheapest model to the best predicted model
    assert router["curve"][0] == {
        "cost": pytest.approx(0.0001),
        "quality": pytest.approx(0.3, abs=0.1),
    }
    assert router["curve"][-1]["quality"] > 0.8
    # random: the mixtures of the cheapest and the best model
    assert base["random"]["curve"][0]["cost"] == pytest.approx(0.0001)
    assert base["random"]["curve"][-1]["cost"] == pytest.approx(0.01)
    # the oracle's best point: the cheapest right model per prompt
    cheapest_right = np.where(outcomes.any(axis=1), outcomes.argmax(axis=1), 0)
    assert base["oracle"]["curve"][-1]["cost"] == pytest.approx(costs[0, cheapest_right].mean())
    assert base["oracle"]["aiq"] >= router["aiq"] > base["random"]["aiq"]
    assert router["aiq"] == pytest.approx(
        aiq([(p["cost"], p["quality"]) for p in router["curve"]], (0.0001, 0.01)), abs=0.02
    )


def test_evaluate_errors() -> None:
    predicted, outcomes, prompts = _two_models(3, n=10)
    three = np.column_stack([predicted, predicted[:, :1]])
    with pytest.raises(ConfigurationError, match="one name per column"):
        evaluate(predicted, outcomes, None, ["a", "b", "c"], prompts)
    with pytest.raises(ConfigurationError, match="needs costs"):
        evaluate(three, np.column_stack([outcomes, outcomes[:, :1]]), None, ["a", "b", "c"], None)
    with pytest.raises(ConfigurationError, match="two-model data only"):
        evaluate(three, three, np.ones(3), ["a", "b", "c"], None, strong="a")
    with pytest.raises(ConfigurationError, match="did you mean 'large'"):
        evaluate(predicted, outcomes, None, ["small", "large"], prompts, strong="lareg")
    with pytest.raises(ConfigurationError, match="10 strings"):
        evaluate(predicted, outcomes, None, ["small", "large"], prompts[:3])
    with pytest.raises(ConfigurationError, match="same order"):
        evaluate(predicted, outcomes[:5], None, ["small", "large"], prompts)


# ------------------------------------------------------------------------------- display


def test_plot_curves_writes_png(tmp_path: Path) -> None:
    predicted, outcomes, prompts = _two_models(4, n=40)
    two = evaluate(predicted, outcomes, None, ["small", "large"], prompts)
    path = plot_curves(two, tmp_path / "sub" / "two.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    costs = np.tile([0.1, 0.2, 0.3], (40, 1))
    many = evaluate(
        np.column_stack([predicted, predicted[:, 1]]),
        np.column_stack([outcomes, outcomes[:, 1]]),
        costs,
        ["a", "b", "c"],
        None,
    )
    assert plot_curves(many, str(tmp_path / "many.png")).stat().st_size > 5000


def test_render_table() -> None:
    predicted, outcomes, prompts = _two_models(5, n=40)
    result = evaluate(predicted, outcomes, None, ["small", "large"], prompts)
    table = render_table(result)
    assert table.row_count == 6  # router, random, length, oracle, two models
    console = Console(width=120, record=True, color_system=None)
    console.print(table)
    text = console.export_text()
    for word in ("router", "random", "length", "oracle", "small", "large", "APGR", "share"):
        assert word in text
    assert f"{result['router']['apgr']:.3f}" in text
    result["baselines"]["length"] = None
    assert render_table(result).row_count == 5
