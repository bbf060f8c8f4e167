"""Decision rules of learned routers: which model each prompt goes to.

A learned router predicts, for each prompt, each model's expected outcome: a quality
in [0, 1] such as P(correct). These functions turn that ``(n prompts, m models)``
matrix into choices, and calibrate the rule's single knob on validation data.

Any number of models, with costs (USD per prompt, shape ``(m,)`` or ``(n, m)``):

- `pick_by_lambda`: per prompt the model maximising ``predicted - lam * cost``.
  ``lam = 0`` takes the best predicted quality whatever it costs; a large ``lam``
  the cheapest model. `lambda_grid` lists one λ per distinct set of choices,
  `lambda_sweep` adds the real mean cost and quality of each, and
  `calibrate_lambda` picks the λ that meets a quality target or a budget.
- `pick_cheapest_meeting`: per prompt the cheapest model predicted to reach a quality.

Two models (a weak and a strong one), by a score (higher = send to strong):

- `gain_score`: the strong model's predicted gain over the weak one.
- `pick_strong`: True where the score is above a threshold.
- `share_curve`: the mean of a per-prompt value (outcome, cost) when the top-k
  scores go to the strong model, for k = 0..n.
- `calibrate_threshold`: the threshold for a share of strong calls or a mean quality.

Ties: utilities closer than `TIE` count as equal and go to the cheaper model
(then the lower model index). numpy only.

Examples:
    >>> import numpy as np
    >>> predicted = np.array([[0.9, 0.6], [0.8, 0.79]])
    >>> costs = np.array([0.01, 0.001])  # USD per prompt of each model
    >>> pick_by_lambda(predicted, costs, 0.0).tolist()  # best predicted quality
    [0, 0]
    >>> pick_by_lambda(predicted, costs, 10.0).tolist()  # 0.01 of quality is worth $0.001
    [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from llmrouter.errors import ConfigurationError

FloatArray: TypeAlias = NDArray[np.float64]
IndexArray: TypeAlias = NDArray[np.intp]
BoolArray: TypeAlias = NDArray[np.bool_]

TIE = 1e-12
"""Utilities, qualities and costs closer than this count as equal."""

SAME_LAMBDA = 1e-9
"""Switch λs closer than this (relative) count as one, so no λ of the grid sits on a tie."""


# --------------------------------------------------------------------------- validation


def as_matrix(name: str, values: ArrayLike) -> FloatArray:
    """``values`` as a finite float64 ``(n, m)`` array with n ≥ 1 and m ≥ 1.

    Examples:
        >>> as_matrix("predicted", [[0.5, 1]]).dtype
        dtype('float64')
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ConfigurationError(
            f"{name} must be a 2-D array (n prompts, m models) with at least one row and "
            f"column, got shape {array.shape}; pass one row per prompt, one column per model"
        )
    if not np.isfinite(array).all():
        raise ConfigurationError(f"{name} contains NaN or infinite values; drop or fill them")
    return array


def as_pair(predicted: ArrayLike, outcomes: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``predicted`` and ``outcomes`` as matrices of the same ``(n, m)`` shape."""
    p = as_matrix("predicted", predicted)
    y = as_matrix("outcomes", outcomes)
    if y.shape != p.shape:
        raise ConfigurationError(
            f"outcomes has shape {y.shape} but predicted has {p.shape}; give both per prompt "
            "and model, in the same order"
        )
    return p, y


def as_costs(costs: ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    """``costs`` (shape ``(m,)`` or ``(n, m)``, USD ≥ 0) broadcast to ``shape`` ``(n, m)``.

    Examples:
        >>> as_costs([0.1, 0.2], (3, 2)).shape
        (3, 2)
    """
    array = np.asarray(costs, dtype=np.float64)
    if array.shape not in (shape, shape[1:]):
        raise ConfigurationError(
            f"costs must have shape {shape} (per prompt and model) or {shape[1:]} (per model), "
            f"got {array.shape}; give one column per model, in the order of the predictions"
        )
    if not np.isfinite(array).all() or (array < 0).any():
        raise ConfigurationError("costs must be finite and ≥ 0 (USD); drop or fill bad values")
    return np.broadcast_to(array, shape).astype(np.float64)


def as_vector(name: str, values: ArrayLike, n: int | None = None) -> FloatArray:
    """``values`` as a finite float64 1-D array (of length ``n`` when given, else ≥ 1).

    Examples:
        >>> as_vector("scores", [1, 2]).tolist()
        [1.0, 2.0]
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or (n is not None and array.size != n):
        want = f"length {n}" if n is not None else "at least one value"
        raise ConfigurationError(
            f"{name} must be a 1-D array of {want} (one value per prompt), got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ConfigurationError(f"{name} contains NaN or infinite values; drop or fill them")
    return array


def _check_number(name: str, value: float, low: float, high: float, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigurationError(f"{name} must be a number, got {value!r}; {hint}")
    number = float(value)
    if not (np.isfinite(number) and low <= number <= high):
        where = (
            f"between {low:g} and {high:g}" if np.isfinite(low + high) else f"finite and ≥ {low:g}"
        )
        where = "finite" if np.isinf(low) else where
        raise ConfigurationError(f"{name} must be {where}, got {value!r}; {hint}")
    return number


def _model_index(name: str, index: int, m: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < m:
        raise ConfigurationError(
            f"{name} must be a model column index in 0..{m - 1}, got {index!r}"
        )
    return int(index)


# ------------------------------------------------------------------------ any number of models


def pick_by_lambda(predicted: ArrayLike, costs: ArrayLike, lam: float) -> IndexArray:
    """Per prompt the model maximising ``predicted - lam * cost``.

    ``predicted`` is ``(n, m)``; ``costs`` ``(m,)`` or ``(n, m)`` USD; ``lam`` ≥ 0 is the
    quality one USD is worth. Ties (within `TIE`) go to the cheaper model, then to the
    lower index.

    Examples:
        >>> pick_by_lambda([[0.5, 0.5, 0.4]], [0.2, 0.1, 0.0], 0.0).tolist()  # tie: cheaper
        [1]
        >>> pick_by_lambda([[0.7, 0.6]], [0.1, 0.0], 1.0).tolist()  # 0.7 - 0.1 ties 0.6
        [1]
    """
    p = as_matrix("predicted", predicted)
    c = as_costs(costs, p.shape)
    lam = _check_number("lam", lam, 0.0, np.inf, "use 0 for best quality, larger to save")
    return _argmax_cheapest(p - lam * c, c)


def _argmax_cheapest(utility: FloatArray, costs: FloatArray) -> IndexArray:
    """Per row the index of the highest utility; ties to the cheaper, then lower index."""
    best = utility.max(axis=1, keepdims=True)
    tied = utility >= best - TIE
    return np.asarray(np.where(tied, costs, np.inf).argmin(axis=1), dtype=np.intp)


def pick_cheapest_meeting(predicted: ArrayLike, costs: ArrayLike, target: float) -> IndexArray:
    """Per prompt the cheapest model whose predicted quality is ≥ ``target``.

    Equal costs go to the higher predicted quality, then the lower index. A prompt that
    no model is predicted to reach ``target`` on goes to its best predicted model
    (ties to the cheaper).

    Examples:
        >>> predicted = [[0.9, 0.7, 0.2], [0.4, 0.3, 0.1]]
        >>> pick_cheapest_meeting(predicted, [0.3, 0.2, 0.1], 0.6).tolist()
        [1, 0]
    """
    p = as_matrix("predicted", predicted)
    c = as_costs(costs, p.shape)
    target = _check_number("target", target, -np.inf, np.inf, "give a quality such as 0.7")
    meets = p >= target - TIE
    cheapest = np.where(meets, c, np.inf).min(axis=1, keepdims=True)
    candidates = meets & (c <= cheapest + TIE)
    chosen = np.where(candidates, p, -np.inf).argmax(axis=1)
    fallback = _argmax_cheapest(p, c)
    return np.asarray(np.where(meets.any(axis=1), chosen, fallback), dtype=np.intp)


@dataclass(frozen=True, eq=False)
class LambdaSweep:
    """The distinct operating points of `pick_by_lambda` on data with known outcomes.

    Entry ``i`` of each array belongs to the same operating point; λ is ascending, so
    the first point is the best predicted quality and the last the cheapest choices.
    """

    lambdas: FloatArray
    """One λ per operating point: 0, then the midpoints between consecutive switch λs,
    then twice the last switch λ (choices are constant between switches)."""
    cost: FloatArray
    """Mean cost per prompt (USD) of the choices."""
    quality: FloatArray
    """Mean real outcome of the choices."""


def lambda_grid(predicted: ArrayLike, costs: ArrayLike, points: int | None = None) -> FloatArray:
    """The λs of every distinct set of `pick_by_lambda` choices, ascending.

    As λ grows each prompt switches to ever cheaper models at exact λs (where two
    models' ``predicted - lam * cost`` cross). The grid is 0 (best predicted quality),
    the midpoint of each pair of consecutive switch λs and twice the last one (every
    prompt on its cheapest model), so a sweep meets each operating point once and
    never sits on a tie. ``points`` keeps at most that many, evenly spaced by index,
    always with both ends.

    Examples:
        >>> predicted = [[0.9, 0.6], [0.8, 0.79]]
        >>> lambda_grid(predicted, [0.01, 0.001]).round(2).tolist()  # switches: λ 1.11, 33.33
        [0.0, 17.22, 66.67]
    """
    p = as_matrix("predicted", predicted)
    c = as_costs(costs, p.shape)
    _, lams, *_ = _switches(p, c)
    lams = np.sort(lams)
    grid = _representatives(lams[_group_ends(lams)])
    if points is None:
        return grid
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ConfigurationError(f"points must be an integer ≥ 2 (or None for all), got {points!r}")
    return grid[thin_index(grid.size, points)]


def lambda_sweep(predicted: ArrayLike, outcomes: ArrayLike, costs: ArrayLike) -> LambdaSweep:
    """Every distinct operating point of `pick_by_lambda`, with its real mean cost and quality.

    Exact and fast: the switches of each prompt are found once, then accumulated in λ
    order (no re-routing per λ).

    Examples:
        >>> sweep = lambda_sweep([[0.9, 0.6], [0.8, 0.79]], [[1, 0], [0, 1]], [0.01, 0.001])
        >>> sweep.quality.tolist(), sweep.cost.round(4).tolist()
        ([0.5, 1.0, 0.5], [0.01, 0.0055, 0.001])
    """
    p, y = as_pair(predicted, outcomes)
    c = as_costs(costs, p.shape)
    start, lams, rows, src, dst = _switches(p, c)
    order = np.argsort(lams, kind="stable")
    lams, rows, src, dst = lams[order], rows[order], src[order], dst[order]
    ends = _group_ends(lams)
    n = p.shape[0]
    everyone = np.arange(n)

    def means(values: FloatArray) -> FloatArray:
        steps = np.cumsum(values[rows, dst] - values[rows, src])
        totals = values[everyone, start].sum() + np.concatenate([[0.0], steps[ends]])
        return np.asarray(totals / n, dtype=np.float64)

    grid = _representatives(lams[ends])
    return LambdaSweep(lambdas=grid, cost=means(c), quality=means(y))


def _switches(
    p: FloatArray, c: FloatArray
) -> tuple[IndexArray, FloatArray, IndexArray, IndexArray, IndexArray]:
    """The choice of each prompt at λ = 0, and every switch as λ grows: (λ, row, from, to).

    Walks the upper envelope of the lines ``p_j - λ c_j`` of all rows at once: the
    current model is left for the cheaper model whose line crosses it first (the
    cheapest one among simultaneous crossings). Cost falls at each step, so at most
    m - 1 steps.
    """
    n, m = p.shape
    everyone = np.arange(n)
    current = _argmax_cheapest(p, c)
    start = current.copy()
    now = np.zeros(n)
    found: list[tuple[FloatArray, IndexArray, IndexArray, IndexArray]] = []
    for _ in range(m - 1):
        p_now = p[everyone, current][:, None]
        c_now = c[everyone, current][:, None]
        cheaper = c < c_now - TIE
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where(cheaper, (p_now - p) / (c_now - c), np.inf)
        cross = np.maximum(cross, now[:, None])
        first = cross.min(axis=1)
        moving = np.isfinite(first)
        if not moving.any():
            break
        tied = cheaper & (cross <= (first + TIE * np.maximum(1.0, first))[:, None])
        target = np.asarray(np.where(tied, c, np.inf).argmin(axis=1), dtype=np.intp)
        found.append((first[moving], everyone[moving], current[moving], target[moving]))
        current = np.where(moving, target, current)
        now = np.where(moving, first, now)
    if not found:
        empty = np.zeros(0, dtype=np.intp)
        return start, np.zeros(0), empty, empty, empty
    lams, rows, src, dst = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return start, lams, rows, src, dst


def _group_ends(values: FloatArray) -> IndexArray:
    """The index of the last entry of each run of equal values in sorted ``values``.

    Values within a relative `SAME_LAMBDA` are equal: the same crossing computed from
    different rows can differ in the last bits.
    """
    if values.size == 0:
        return np.zeros(0, dtype=np.intp)
    apart = np.diff(values) > SAME_LAMBDA * np.abs(values[1:])
    return np.append(np.flatnonzero(apart), values.size - 1).astype(np.intp)


def _representatives(switches: FloatArray) -> FloatArray:
    """One λ inside each interval between sorted switch λs: 0, midpoints, twice the last."""
    if switches.size == 0:
        return np.zeros(1)
    last = switches[-1] * 2 if switches[-1] > 0 else 1.0
    middle = (switches[:-1] + switches[1:]) / 2
    return np.concatenate([[0.0], middle, [last]]).astype(np.float64)


def thin_index(size: int, limit: int) -> IndexArray:
    """At most ``limit`` indices into ``size`` items, evenly spaced, with both ends.

    Examples:
        >>> thin_index(11, 3).tolist()
        [0, 5, 10]
    """
    if size <= limit:
        return np.arange(size, dtype=np.intp)
    return np.unique(np.round(np.linspace(0, size - 1, limit)).astype(np.intp))


def calibrate_lambda(
    predicted: ArrayLike,
    outcomes: ArrayLike,
    costs: ArrayLike | None,
    *,
    quality: float | None = None,
    budget_per_1k: float | None = None,
) -> float:
    """The λ for `pick_by_lambda` that meets one target on validation data.

    - ``quality``: the cheapest operating point whose mean real outcome is ≥ ``quality``
      (equal costs: the higher quality).
    - ``budget_per_1k``: the highest mean real outcome whose mean cost per 1,000
      requests is ≤ ``budget_per_1k`` USD (equal qualities: the cheaper).

    Real quality need not rise with cost, so every operating point of `lambda_sweep` is
    considered; the λ returned is that point's entry of `lambda_grid` (inside its
    interval, not on a tie).

    Raises:
        ConfigurationError: unless exactly one target is given, without costs, or when
            the target cannot be met (the message gives the best reachable value).

    Examples:
        >>> predicted = [[0.9, 0.6], [0.8, 0.79]]
        >>> outcomes = [[1, 0], [1, 1]]
        >>> round(calibrate_lambda(predicted, outcomes, [0.01, 0.001], quality=1.0), 2)
        17.22
        >>> round(calibrate_lambda(predicted, outcomes, [0.01, 0.001], budget_per_1k=1.0), 2)
        66.67
    """
    if (quality is None) == (budget_per_1k is None):
        raise ConfigurationError(
            "calibrate_lambda needs exactly one target: quality=<mean real quality, e.g. 0.8> "
            "or budget_per_1k=<USD per 1,000 requests>"
        )
    if costs is None:
        raise ConfigurationError(
            "calibrate_lambda needs costs (USD per prompt and model); without costs, for two "
            "models, use calibrate_threshold(gain_score(...), share=...) instead"
        )
    sweep = lambda_sweep(predicted, outcomes, costs)
    if quality is not None:
        target = _check_number("quality", quality, -np.inf, np.inf, "e.g. quality=0.8")
        return float(sweep.lambdas[_cheapest_reaching(sweep, target)])
    assert budget_per_1k is not None
    budget = _check_number("budget_per_1k", budget_per_1k, 0.0, np.inf, "USD, e.g. 2.5")
    return float(sweep.lambdas[_best_within(sweep, budget)])


def _cheapest_reaching(sweep: LambdaSweep, target: float) -> int:
    reach = sweep.quality >= target - TIE
    if not reach.any():
        best = int(np.argmax(sweep.quality))
        raise ConfigurationError(
            f"no λ reaches mean quality {target:g} on this data: the best reachable is "
            f"{sweep.quality[best]:.4f} (at ${sweep.cost[best] * 1000:.4f} per 1,000 "
            "requests); lower quality= or add a stronger model"
        )
    order = np.lexsort((-sweep.quality, sweep.cost))
    return int(order[reach[order]][0])


def _best_within(sweep: LambdaSweep, budget: float) -> int:
    per_1k = sweep.cost * 1000
    fits = per_1k <= budget + TIE
    if not fits.any():
        raise ConfigurationError(
            f"no λ stays within ${budget:g} per 1,000 requests on this data: the cheapest "
            f"reachable is ${per_1k.min():.4f} per 1,000 requests; raise budget_per_1k= "
            "or add a cheaper model"
        )
    order = np.lexsort((sweep.cost, -sweep.quality))
    return int(order[fits[order]][0])


# -------------------------------------------------------------------------------- two models


def gain_score(predicted: ArrayLike, strong: int, weak: int) -> FloatArray:
    """The strong model's predicted gain per prompt: ``predicted[:, strong] - predicted[:, weak]``.

    Examples:
        >>> gain_score([[0.5, 0.9], [0.8, 0.7]], strong=1, weak=0).round(2).tolist()
        [0.4, -0.1]
    """
    p = as_matrix("predicted", predicted)
    m = p.shape[1]
    s, w = _model_index("strong", strong, m), _model_index("weak", weak, m)
    if s == w:
        raise ConfigurationError(f"strong and weak must be different models, both are {s}")
    return np.asarray(p[:, s] - p[:, w], dtype=np.float64)


def pick_strong(predicted: ArrayLike, strong: int, weak: int, threshold: float) -> BoolArray:
    """True where the strong model's predicted gain (`gain_score`) is > ``threshold``.

    Examples:
        >>> pick_strong([[0.5, 0.9], [0.8, 0.7]], strong=1, weak=0, threshold=0.0).tolist()
        [True, False]
    """
    limit = _check_number("threshold", threshold, -np.inf, np.inf, "see calibrate_threshold")
    return np.asarray(gain_score(predicted, strong, weak) > limit, dtype=np.bool_)


def share_curve(scores: ArrayLike, weak_values: ArrayLike, strong_values: ArrayLike) -> FloatArray:
    """Mean per-prompt value when the k highest-scoring prompts go strong, for k = 0..n.

    Entry k is the mean of ``strong_values`` over the top-k prompts by score and of
    ``weak_values`` over the rest (values are outcomes for quality, USD for cost).
    Ties in score are broken deterministically by averaging: within a block of equal
    scores, taking j of its t prompts adds j/t of the block's total gain (the expected
    value under a random order). So a constant score gives the straight line from the
    weak mean to the strong mean, and entries at block boundaries are exact.

    Examples:
        >>> share_curve([3, 2, 1], [0, 0, 1], [1, 0, 0]).round(3).tolist()
        [0.333, 0.667, 0.667, 0.333]
        >>> share_curve([0, 0], [0, 0], [1, 0]).tolist()  # tied: averaged
        [0.0, 0.25, 0.5]
    """
    s = as_vector("scores", scores)
    weak = as_vector("weak values", weak_values, s.size)
    strong = as_vector("strong values", strong_values, s.size)
    order = np.argsort(-s, kind="stable")
    gains = (strong - weak)[order]
    block = np.concatenate([[0], np.cumsum(np.diff(s[order]) != 0)])
    averaged = (np.bincount(block, weights=gains) / np.bincount(block))[block]
    steps = np.concatenate([[0.0], np.cumsum(averaged)])
    return np.asarray((weak.sum() + steps) / s.size, dtype=np.float64)


def calibrate_threshold(
    scores: ArrayLike,
    share: float | None = None,
    *,
    quality: float | None = None,
    weak_outcomes: ArrayLike | None = None,
    strong_outcomes: ArrayLike | None = None,
) -> float:
    """The threshold on validation ``scores`` (strong where score > threshold) for one target.

    - ``share``: the share of strong calls, in [0, 1]. Equal scores cannot be split, so
      the achievable share nearest to it is used (halfway: the smaller share).
    - ``quality`` (with ``weak_outcomes`` and ``strong_outcomes``): the fewest strong
      calls whose mean real outcome is ≥ ``quality``.

    The threshold is halfway between the last strong and the first weak score;
    ``inf`` means no strong calls and ``-inf`` all strong calls.

    Raises:
        ConfigurationError: unless exactly one target is given, or when the quality
            cannot be reached (the message gives the best reachable one).

    Examples:
        >>> calibrate_threshold([0.1, 0.5, 0.3, 0.9], share=0.5)
        0.4
        >>> calibrate_threshold(
        ...     [0.1, 0.5, 0.3, 0.9], quality=1.0,
        ...     weak_outcomes=[1, 0, 1, 0], strong_outcomes=[1, 1, 1, 1])
        0.4
    """
    if (share is None) == (quality is None):
        raise ConfigurationError(
            "calibrate_threshold needs exactly one target: share=<share of strong calls, "
            "e.g. 0.3> or quality=<mean real quality> with weak_outcomes= and strong_outcomes="
        )
    s = as_vector("scores", scores)
    ordered = np.sort(s)[::-1]
    counts = np.concatenate([[0], np.flatnonzero(np.diff(ordered) != 0) + 1, [s.size]])
    if share is not None:
        wanted = _check_number("share", share, 0.0, 1.0, "e.g. share=0.3 for 30% strong calls")
        count = counts[np.argmin(np.abs(counts - wanted * s.size))]
    else:
        assert quality is not None
        count = _fewest_reaching(s, counts, quality, weak_outcomes, strong_outcomes)
    return _threshold_at(ordered, int(count))


def _fewest_reaching(
    scores: FloatArray,
    counts: IndexArray,
    quality: float,
    weak_outcomes: ArrayLike | None,
    strong_outcomes: ArrayLike | None,
) -> int:
    if weak_outcomes is None or strong_outcomes is None:
        raise ConfigurationError(
            "calibrate_threshold(quality=...) needs the real outcomes: pass weak_outcomes= and "
            "strong_outcomes= (one value per prompt, in the order of scores)"
        )
    target = _check_number("quality", quality, -np.inf, np.inf, "e.g. quality=0.8")
    curve = share_curve(scores, weak_outcomes, strong_outcomes)[counts]
    reach = curve >= target - TIE
    if not reach.any():
        best = int(np.argmax(curve))
        raise ConfigurationError(
            f"no threshold reaches mean quality {target:g} on this data: the best reachable "
            f"is {curve[best]:.4f} (with {counts[best] / scores.size:.1%} strong calls); lower "
            "quality= or use a stronger model"
        )
    return int(counts[np.argmax(reach)])


def _threshold_at(ordered: FloatArray, count: int) -> float:
    """A threshold with exactly ``count`` of the descending ``ordered`` scores above it."""
    if count == 0:
        return float("inf")
    if count == ordered.size:
        return float("-inf")
    above, below = float(ordered[count - 1]), float(ordered[count])
    middle = (above + below) / 2
    return middle if below <= middle < above else below
