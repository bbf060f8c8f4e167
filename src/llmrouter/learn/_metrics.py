"""Evaluation of learned routers: RouteLLM and RouterBench metrics, baselines, plots.

Data: ``predicted`` and ``outcomes`` are ``(n prompts, m models)`` arrays (predicted and
real quality in [0, 1]); ``costs`` the same shape (USD per prompt) or ``None``.

Two models (RouteLLM). A router scores each prompt (higher = send to the strong model);
quality(p) is the mean real outcome when the top share p of prompts by score goes to the
strong model and the rest to the weak one. It is taken at p = k/n for k = 0..n, equal
scores sharing their gain evenly (see `share_curve`: deterministic, and the expected value
under a random order of the tied prompts).

- `apgr`: (area under quality(p) over p in [0, 1], by trapezoids over the n + 1 points,
  minus the weak mean) / (strong mean - weak mean). Random routing scores 0.5.
- `cpt`: the smallest share p at which quality(p) ≥ weak mean + x (strong mean -
  weak mean), e.g. x = 0.5 for CPT(50%).

Both are ``None`` when the strong mean is not above the weak mean (no gap to recover).

Any number of models (RouterBench). A router's curve is its (mean cost per prompt, mean
quality) points as its knob sweeps; `convex_hull` keeps the non-decreasing upper hull and
`aiq` is the area under it over a cost range divided by the range's width.

`evaluate` computes all of it for the router and the random, length and oracle
baselines and returns a JSON-ready dict; `render_table` and `plot_curves` show it.

Examples:
    >>> scores = [0.9, 0.1, 0.5, 0.3]  # the router's: prompt 0 is the most worth sending
    >>> weak, strong = [0, 1, 0, 0], [1, 1, 1, 0]
    >>> apgr(scores, weak, strong), cpt(scores, weak, strong, 0.5)
    (0.75, 0.25)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from llmrouter.errors import ConfigurationError, closest
from llmrouter.learn._decide import (
    TIE,
    FloatArray,
    as_costs,
    as_pair,
    gain_score,
    lambda_sweep,
    share_curve,
    thin_index,
)

if TYPE_CHECKING:
    from rich.table import Table

CURVE_POINTS = 101
"""At most this many points per curve in `evaluate`'s output (evenly spaced, both ends)."""

BASELINES = ("random", "length", "oracle")
"""The baselines `evaluate` reports besides each single model."""


# ---------------------------------------------------------------------- two models (RouteLLM)


def apgr(scores: ArrayLike, weak_outcomes: ArrayLike, strong_outcomes: ArrayLike) -> float | None:
    """Average performance gap recovered by routing on ``scores`` (RouteLLM's APGR).

    The area under quality(p), p in [0, 1] (trapezoids over p = k/n), minus the weak
    mean, over the gap strong mean - weak mean. 0.5 for random scores, 1 for a curve
    at the strong mean everywhere, above 1 when mixing beats the strong model. ``None``
    when the strong mean is not above the weak mean.

    Examples:
        >>> apgr([0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 0])  # constant score = random
        0.5
        >>> apgr([3, 2, 1], [0, 0, 0], [1, 0, 0])  # the one gain first
        0.8333333333333334
    """
    return _apgr(share_curve(scores, weak_outcomes, strong_outcomes))


def cpt(
    scores: ArrayLike, weak_outcomes: ArrayLike, strong_outcomes: ArrayLike, x: float
) -> float | None:
    """Call-performance threshold: the smallest share of strong calls recovering ``x`` of the gap.

    The smallest p = k/n with quality(p) ≥ weak mean + x (strong mean - weak mean);
    ``x = 0.5`` is CPT(50%). ``None`` when the strong mean is not above the weak mean
    or nothing reaches the level (only possible for x > 1).

    Examples:
        >>> cpt([0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], 0.5)  # random: linear
        0.5
        >>> cpt([3, 2, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], 0.5)
        0.25
    """
    level = _finite("x", x, "give the share of the gap to recover, e.g. 0.5 or 0.8")
    return _cpt(share_curve(scores, weak_outcomes, strong_outcomes), level)


def _apgr(quality: FloatArray) -> float | None:
    weak, strong = float(quality[0]), float(quality[-1])
    if strong - weak <= TIE:
        return None
    n = quality.size - 1
    area = (quality.sum() - (quality[0] + quality[-1]) / 2) / n
    return float((area - weak) / (strong - weak))


def _cpt(quality: FloatArray, x: float) -> float | None:
    weak, strong = float(quality[0]), float(quality[-1])
    if strong - weak <= TIE:
        return None
    reach = quality >= weak + x * (strong - weak) - TIE
    if not reach.any():
        return None
    return float(np.argmax(reach) / (quality.size - 1))


def _finite(name: str, value: float, hint: str) -> float:
    numeric = isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not numeric or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}; {hint}")
    return float(value)


# ----------------------------------------------------------------- any number (RouterBench)


def convex_hull(points: ArrayLike) -> FloatArray:
    """The non-decreasing upper convex hull of (cost, quality) ``points``, by cost.

    Dominated points (as costly or more, and not of higher quality than a cheaper one)
    are dropped, then every point on or under a chord between two others. The result
    has strictly increasing cost and quality and is concave: the best quality reachable
    at each cost by mixing operating points.

    Examples:
        >>> convex_hull([(0, 0.5), (1, 0.6), (2, 0.9), (3, 0.8), (2, 0.7)]).tolist()
        [[0.0, 0.5], [2.0, 0.9]]
    """
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise ConfigurationError(
            f"points must be (cost, quality) pairs, shape (k, 2) with k ≥ 1, got {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ConfigurationError("points contain NaN or infinite values; drop them")
    ordered = array[np.lexsort((-array[:, 1], array[:, 0]))]
    best_before = np.maximum.accumulate(ordered[:, 1])
    frontier = ordered[np.concatenate([[True], ordered[1:, 1] > best_before[:-1]])]
    hull: list[FloatArray] = []
    for point in frontier:
        while len(hull) >= 2 and _turns_left_or_straight(hull[-2], hull[-1], point):
            hull.pop()
        hull.append(point)
    return np.asarray(hull, dtype=np.float64)


def _turns_left_or_straight(a: FloatArray, b: FloatArray, c: FloatArray) -> bool:
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return bool(cross >= 0)


def aiq(points: ArrayLike, cost_range: tuple[float, float] | None = None) -> float:
    """Average improvement in quality (RouterBench's AIQ) of (cost, quality) ``points``.

    The area under the `convex_hull` of the points over ``cost_range`` = (low, high),
    divided by high - low: the hull's mean quality over that range. The hull is
    linear between its vertices, flat to the right of its most expensive vertex (more
    budget can always be left unspent) and 0 to the left of its cheapest one (no
    operating point that cheap). The default range is from the cheapest to the most
    expensive point; pass the same range to compare routers. A zero-width range gives
    the hull's quality at that cost.

    Examples:
        >>> aiq([(0, 0.5), (1, 1.0)])
        0.75
        >>> aiq([(0, 0.5), (1, 1.0)], cost_range=(0, 2))  # flat at 1.0 beyond cost 1
        0.875
        >>> aiq([(1, 1.0)], cost_range=(0, 2))  # nothing below cost 1
        0.5
    """
    hull = convex_hull(points)
    low, high = _cost_range(points, cost_range)
    costs, qualities = hull[:, 0], hull[:, 1]
    if high == low:
        return float(np.interp(low, costs, qualities)) if low >= costs[0] else 0.0
    start = max(low, float(costs[0]))
    if start >= high:
        return 0.0
    inside = costs[(costs > start) & (costs < high)]
    xs = np.concatenate([[start], inside, [high]])
    ys = np.interp(xs, costs, qualities)  # np.interp is flat beyond the last vertex
    area = float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(xs)))
    return area / (high - low)


def _cost_range(points: ArrayLike, cost_range: tuple[float, float] | None) -> tuple[float, float]:
    if cost_range is None:
        costs = np.asarray(points, dtype=np.float64)[:, 0]
        return float(costs.min()), float(costs.max())
    hint = "give (cheapest, most expensive) USD per prompt, e.g. (0.0001, 0.01)"
    if len(cost_range) != 2:
        raise ConfigurationError(f"cost_range must be a pair (low, high), got {cost_range!r}")
    low = _finite("cost_range[0]", cost_range[0], hint)
    high = _finite("cost_range[1]", cost_range[1], hint)
    if high < low:
        raise ConfigurationError(f"cost_range must have low ≤ high, got {cost_range!r}; {hint}")
    return low, high


# ------------------------------------------------------------------------------- evaluation


def evaluate(
    predicted: ArrayLike,
    outcomes: ArrayLike,
    costs: ArrayLike | None,
    models: Sequence[str],
    prompts: Sequence[str] | None,
    *,
    strong: str | None = None,
    weak: str | None = None,
) -> dict[str, Any]:
    """Metrics of a router's ``predicted`` quality against real ``outcomes``, with baselines.

    Returns plain JSON-ready values (floats, ``None``)::

        {"n": rows,
         "router": {"apgr", "cpt50", "cpt80", "aiq", "curve": [{"cost", "quality"}, ...]},
         "baselines": {"random": {same keys}, "length": {same keys},
                       "oracle": {same keys}, "models": {MODEL: {"quality", "cost"}}}}

    Two models: strong is the model with the higher mean outcome (the second one on a
    tie) unless ``strong`` or ``weak`` names it; the router scores prompts by `gain_score`
    and its curve sweeps the threshold from no strong calls to all. Baselines score
    prompts by a constant
    (random: the exact expectation, a straight line, APGR 0.5), by the prompt's length
    in characters (longer goes strong) and by the real gain (oracle: strong right and
    weak wrong first). apgr, cpt50 (x = 0.5) and cpt80 (x = 0.8) are given.

    More models (``costs`` needed): the router's curve sweeps λ of `pick_by_lambda`
    over every operating point; the oracle sweeps λ on the real outcomes (at λ = 0 the
    cheapest model with the best real outcome; with 0/1 outcomes the cheapest right
    model). Random and length route between the cheapest model and the one of best
    mean quality, as above (random mixtures of single models never beat the hull of
    the single models). apgr, cpt50 and cpt80 are ``None``.

    Curves run from all weak to all strong calls (two models; random and length for
    more models too) or from the largest λ (cheapest) to λ = 0, and keep at most
    `CURVE_POINTS` points (evenly spaced by index, both ends). ``cost`` is the mean USD
    per prompt or, without costs (two models only), the share of strong calls, which then
    is also each model's cost (weak 0, strong 1). aiq uses each entry's full curve over
    the range from the cheapest to the most expensive single model. ``length`` is
    ``None`` without ``prompts``.

    Examples:
        >>> result = evaluate(
        ...     [[0.2, 0.9], [0.8, 0.8], [0.1, 0.3], [0.5, 0.6]],
        ...     [[0, 1], [1, 1], [0, 0], [1, 1]],
        ...     None, ["small", "large"], ["hard one", "easy", "hmm", "ok?"])
        >>> result["router"]["apgr"], result["router"]["cpt50"]
        (0.875, 0.25)
        >>> result["baselines"]["models"]["large"]
        {'quality': 0.75, 'cost': 1.0}
    """
    p, y = as_pair(predicted, outcomes)
    names = _model_names(models, p.shape[1])
    texts = _prompt_texts(prompts, p.shape[0])
    c = None if costs is None else as_costs(costs, p.shape)
    if len(names) == 2:
        return _evaluate_pair(p, y, c, names, texts, strong, weak)
    if strong is not None or weak is not None:
        raise ConfigurationError(
            f"strong=/weak= apply to two-model data only, this has {len(names)} models; "
            "drop them (or evaluate the two models' columns alone)"
        )
    if c is None:
        raise ConfigurationError(
            f"evaluating {len(names)} models needs costs (USD per prompt and model); pass "
            "costs=, or evaluate two models at a time"
        )
    return _evaluate_many(p, y, c, names, texts)


def _model_names(models: Sequence[str], m: int) -> list[str]:
    names = [str(name) for name in models]
    if len(names) != m:
        raise ConfigurationError(
            f"models names {len(names)} models but the arrays have {m} columns; give one "
            "name per column, in order"
        )
    if m < 2 or len(set(names)) != m:
        raise ConfigurationError(f"models must be at least two distinct names, got {names}")
    return names


def _prompt_texts(prompts: Sequence[str] | None, n: int) -> list[str] | None:
    if prompts is None:
        return None
    if isinstance(prompts, str) or len(prompts) != n:
        raise ConfigurationError(
            f"prompts must be a sequence of {n} strings (one per row), or None to skip the "
            "length baseline"
        )
    return [str(text) for text in prompts]


def _pick_pair(
    names: list[str], y: FloatArray, strong: str | None, weak: str | None
) -> tuple[int, int]:
    """Column indices (strong, weak): as named, else strong = higher mean outcome."""
    for label, name in (("strong", strong), ("weak", weak)):
        if name is not None and name not in names:
            near = closest(name, names)
            hint = f" (did you mean {near!r}?)" if near else ""
            raise ConfigurationError(f"{label}={name!r} is not a model{hint}; models: {names}")
    if strong is not None and weak is not None and strong == weak:
        raise ConfigurationError(f"strong and weak must be different models, both are {strong!r}")
    if strong is not None:
        s = names.index(strong)
    elif weak is not None:
        s = 1 - names.index(weak)
    else:
        means = y.mean(axis=0)
        s = 0 if means[0] > means[1] else 1
    return s, 1 - s


def _evaluate_pair(
    p: FloatArray,
    y: FloatArray,
    c: FloatArray | None,
    names: list[str],
    texts: list[str] | None,
    strong: str | None,
    weak: str | None,
) -> dict[str, Any]:
    s, w = _pick_pair(names, y, strong, weak)
    n = p.shape[0]
    if c is None:
        c = np.zeros_like(y)
        c[:, s] = 1.0  # cost = share of strong calls
    pair = (y[:, w], y[:, s], c[:, w], c[:, s])
    span = _cost_span(c)
    entries = {
        "router": _share_entry(gain_score(p, s, w), *pair, span),
        "random": _share_entry(np.zeros(n), *pair, span),
        "length": None if texts is None else _share_entry(_lengths(texts), *pair, span),
        "oracle": _share_entry(y[:, s] - y[:, w], *pair, span),
    }
    return _result(n, entries, _single_models(names, y, c))


def _evaluate_many(
    p: FloatArray, y: FloatArray, c: FloatArray, names: list[str], texts: list[str] | None
) -> dict[str, Any]:
    n = p.shape[0]
    quality, cost = y.mean(axis=0), c.mean(axis=0)
    cheap = int(np.lexsort((-quality, cost))[0])
    best = int(np.lexsort((cost, -quality))[0])
    pair = (y[:, cheap], y[:, best], c[:, cheap], c[:, best])
    span = _cost_span(c)
    entries = {
        "router": _sweep_entry(p, y, c, span),
        "random": _share_entry(np.zeros(n), *pair, span, pair_metrics=False),
        "length": None
        if texts is None
        else _share_entry(_lengths(texts), *pair, span, pair_metrics=False),
        "oracle": _sweep_entry(y, y, c, span),
    }
    return _result(n, entries, _single_models(names, y, c))


def _lengths(texts: list[str]) -> FloatArray:
    return np.array([len(text) for text in texts], dtype=np.float64)


def _cost_span(c: FloatArray) -> tuple[float, float]:
    """From the cheapest to the most expensive single model (mean cost per prompt)."""
    means = c.mean(axis=0)
    return float(means.min()), float(means.max())


def _share_entry(
    scores: FloatArray,
    weak_outcomes: FloatArray,
    strong_outcomes: FloatArray,
    weak_costs: FloatArray,
    strong_costs: FloatArray,
    span: tuple[float, float],
    *,
    pair_metrics: bool = True,
) -> dict[str, Any]:
    """The entry of a score that sends its top share to the strong model, share 0 → 1."""
    quality = share_curve(scores, weak_outcomes, strong_outcomes)
    cost = share_curve(scores, weak_costs, strong_costs)
    return {
        "apgr": _apgr(quality) if pair_metrics else None,
        "cpt50": _cpt(quality, 0.5) if pair_metrics else None,
        "cpt80": _cpt(quality, 0.8) if pair_metrics else None,
        **_curve_entry(cost, quality, span),
    }


def _sweep_entry(
    p: FloatArray, y: FloatArray, c: FloatArray, span: tuple[float, float]
) -> dict[str, Any]:
    """The entry of `pick_by_lambda` on ``p``, from the largest λ (cheapest) to λ = 0."""
    sweep = lambda_sweep(p, y, c)
    curve = _curve_entry(sweep.cost[::-1], sweep.quality[::-1], span)
    return {"apgr": None, "cpt50": None, "cpt80": None, **curve}


def _curve_entry(
    cost: FloatArray, quality: FloatArray, span: tuple[float, float]
) -> dict[str, Any]:
    keep = thin_index(cost.size, CURVE_POINTS)
    return {
        "aiq": aiq(np.column_stack([cost, quality]), cost_range=span),
        "curve": [{"cost": float(cost[i]), "quality": float(quality[i])} for i in keep.tolist()],
    }


def _single_models(names: list[str], y: FloatArray, c: FloatArray) -> dict[str, Any]:
    return {
        name: {"quality": float(y[:, j].mean()), "cost": float(c[:, j].mean())}
        for j, name in enumerate(names)
    }


def _result(n: int, entries: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    baselines = {name: entries[name] for name in BASELINES}
    return {"n": n, "router": entries["router"], "baselines": {**baselines, "models": models}}


# --------------------------------------------------------------------------------- display


def render_table(result: dict[str, Any]) -> Table:
    """`evaluate`'s ``result`` as a rich table: one row per router, baseline and model.

    Columns: APGR, CPT(50%), CPT(80%), AIQ, and the best quality on the curve with the
    cheapest cost (or share of strong calls) reaching it; for single models their quality
    and cost. ``-`` where a value is ``None``.

    Examples:
        >>> result = evaluate([[0.2, 0.9], [0.8, 0.8]], [[0, 1], [1, 1]], None,
        ...                   ["small", "large"], None)
        >>> table = render_table(result)
        >>> table.row_count, [column.header for column in table.columns][:3]
        (5, ['', 'APGR', 'CPT(50%)'])
    """
    from rich import box
    from rich.table import Table

    share = _cost_is_share(result)
    table = Table(title=f"Router evaluation on {result['n']} prompts", box=box.SIMPLE_HEAD)
    table.add_column("")
    spend = "at share" if share else "at cost"
    for header in ("APGR", "CPT(50%)", "CPT(80%)", "AIQ", "best quality", spend):
        table.add_column(header, justify="right")
    rows = {"router": result["router"], **{b: result["baselines"][b] for b in BASELINES}}
    for name, entry in rows.items():
        if entry is None:
            continue
        top = max(entry["curve"], key=lambda point: (point["quality"], -point["cost"]))
        table.add_row(
            name,
            _fmt(entry["apgr"], "{:.3f}"),
            _fmt(entry["cpt50"], "{:.1%}"),
            _fmt(entry["cpt80"], "{:.1%}"),
            _fmt(entry["aiq"], "{:.3f}"),
            _fmt(top["quality"], "{:.3f}"),
            _cost_text(top["cost"], share),
        )
    for name, single in result["baselines"]["models"].items():
        table.add_row(
            name,
            "-",
            "-",
            "-",
            "-",
            _fmt(single["quality"], "{:.3f}"),
            _cost_text(single["cost"], share),
        )
    return table


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _cost_text(value: float, share: bool) -> str:
    return f"{value:.1%}" if share else f"${value:.6f}"


def _cost_is_share(result: dict[str, Any]) -> bool:
    """True when costs are shares of strong calls: two models costing exactly 0 and 1."""
    costs = sorted(single["cost"] for single in result["baselines"]["models"].values())
    return costs == [0.0, 1.0]


def plot_curves(result: dict[str, Any], path: str | Path) -> Path:
    """Draw `evaluate`'s ``result`` into the PNG ``path``: quality against cost.

    The router's and the baselines' curves as lines, each single model as a labelled
    point. The x axis is USD per prompt, or the share of strong calls for two models
    without costs. Uses matplotlib's Agg backend (no display). Returns the path.

    Examples:
        >>> import tempfile
        >>> result = evaluate([[0.2, 0.9], [0.8, 0.8]], [[0, 1], [1, 1]], None,
        ...                   ["small", "large"], None)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     plot_curves(result, Path(folder) / "curves.png").stat().st_size > 0
        True
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is in the ab extra
        raise ImportError("plot_curves needs matplotlib: pip install matplotlib") from exc
    path = Path(path)
    fig = Figure(figsize=(8, 6), layout="constrained")  # no pyplot: no GUI, no global state
    ax = fig.subplots()
    styles = {"router": "-", "random": "--", "length": ":", "oracle": "-."}
    rows = {"router": result["router"], **{b: result["baselines"][b] for b in BASELINES}}
    for name, entry in rows.items():
        if entry is None:
            continue
        xs = [point["cost"] for point in entry["curve"]]
        ys = [point["quality"] for point in entry["curve"]]
        label = f"{name} (AIQ {entry['aiq']:.3f})"
        ax.plot(
            xs,
            ys,
            styles[name],
            marker="." if len(xs) < 3 else None,
            label=label,
            linewidth=2.5 if name == "router" else 1.5,
        )
    for name, single in result["baselines"]["models"].items():
        ax.scatter([single["cost"]], [single["quality"]], color="black", zorder=3)
        ax.annotate(
            name, (single["cost"], single["quality"]), textcoords="offset points", xytext=(5, 5)
        )
    share = _cost_is_share(result)
    ax.set_xlabel("share of strong calls" if share else "cost (USD per prompt)")
    ax.set_ylabel("quality (mean real outcome)")
    ax.set_title(f"Quality against cost on {result['n']} prompts")
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
