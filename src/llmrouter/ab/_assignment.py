"""Who gets which variant of an A/B experiment: hashing, lanes, shares and ramp schedules.

Everything here is a pure function of the experiment, the key and the shares,
so every process and every restart assigns a user the same variant without
stored state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
from collections.abc import Mapping, Sequence

from llmrouter.errors import ConfigurationError

__all__ = [
    "Lanes",
    "RampSchedule",
    "ScheduleCursor",
    "assignment_point",
    "layout",
    "normalised_weights",
    "ramped_shares",
    "variant_at",
]

Lanes = list[tuple[str, float, float]]
"""``(candidate, low, high)``: the interval ``[low, high)`` of [0, 1) a candidate owns."""


def assignment_point(experiment: str, key: str, salt: str = "") -> float:
    """Where ``key`` falls in [0, 1) for ``experiment``: SHA-256, the same in every process."""
    digest = hashlib.sha256(f"{experiment}\x1f{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def layout(candidates: Sequence[str], shares: Mapping[str, float]) -> Lanes:
    """The interval ``[low, high)`` of [0, 1) each candidate owns; the control owns the rest.

    Candidates are paired into ``ceil(n / 2)`` equal lanes in their fixed order:
    the first of a pair grows from the lane's left edge, the second from its
    right edge, and the control fills the middle. So changing a candidate's share
    moves only the users between its old and new edge, and only between that
    candidate and the control; users never move between two candidates. With one
    or two candidates any shares are possible; with more, the shares of a pair
    must fit in its lane.

    Raises:
        ValueError: if a pair's shares do not fit in their lane.
    """
    lanes = max(1, math.ceil(len(candidates) / 2))
    width = 1.0 / lanes
    out = []
    for lane in range(lanes):
        start, end = lane * width, (lane + 1) * width
        pair = list(candidates[2 * lane : 2 * lane + 2])
        used = sum(shares.get(name, 0.0) for name in pair)
        if used > width + 1e-9:
            raise ValueError(
                f"candidates {pair} share a lane of {width:.1%} of the traffic (with "
                f"{len(candidates)} candidates, pairs of candidates share lanes so that ramps "
                f"never move users between candidates) but their shares add up to {used:.1%}; "
                "lower them or run fewer candidates at once"
            )
        out.append((pair[0], start, start + shares.get(pair[0], 0.0)))
        if len(pair) == 2:
            out.append((pair[1], end - shares.get(pair[1], 0.0), end))
    return out


def variant_at(lanes: Lanes, point: float, control: str) -> str:
    """The candidate whose interval holds ``point``, else the control."""
    for name, low, high in lanes:
        if low <= point < high:
            return name
    return control


def normalised_weights(weights: Mapping[str, float], names: list[str]) -> dict[str, float]:
    """Relative weights -> shares summing to 1, in variant order (missing: 0; none: equal).

    Raises:
        ValueError: unknown names, weights that are negative or not finite, or sum to 0.
    """
    if not weights:
        return {name: 1.0 / len(names) for name in names}
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"weights name unknown variant(s) {unknown}; variants are {names}")
    for name, weight in weights.items():
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weights[{name!r}] must be a finite number >= 0, got {weight!r}")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError(
            f"weights must sum to a positive number, got {dict(weights)}; "
            'e.g. weights={"control": 0.9, "candidate": 0.1}'
        )
    return {name: weights.get(name, 0.0) / total for name in names}


def ramped_shares(
    current: Mapping[str, float],
    changes: Mapping[str, float],
    control: str,
    candidates: list[str],
) -> dict[str, float]:
    """Shares after setting ``changes`` (absolute shares); the control takes the rest.

    Raises:
        ConfigurationError: unknown variant, share outside [0, 1], shares that do
            not add up, or shares that do not fit the lanes (see `layout`).
    """
    names = [control, *candidates]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise ConfigurationError(f"unknown variant(s) {unknown}; variants are {names}")
    for name, share in changes.items():
        if not (isinstance(share, (int, float)) and 0 <= share <= 1):
            raise ConfigurationError(f"share of {name!r} must lie in [0, 1], got {share!r}")
    new = {name: float(changes.get(name, current.get(name, 0.0))) for name in candidates}
    rest = 1.0 - sum(new.values())
    if control in changes:
        if abs(rest - changes[control]) > 1e-9:
            raise ConfigurationError(
                f"shares must sum to 1: control {changes[control]} + candidates "
                f"{sum(new.values())}; name only the candidates to let the control take the rest"
            )
    elif rest < -1e-9:
        raise ConfigurationError(
            f"candidate shares add up to {1 - rest:.3f} > 1; lower them (the control takes "
            "what is left)"
        )
    own = float(changes[control]) if control in changes else max(0.0, rest)
    shares = {control: round(own, 12), **{name: round(v, 12) for name, v in new.items()}}
    try:
        layout(candidates, shares)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    return {name: shares[name] for name in names}


class RampSchedule:
    """Shares to apply at fixed times after ``start``, e.g. a canary that widens daily.

    ``steps`` are ``(after, shares)`` pairs: ``after`` a `datetime.timedelta` or
    seconds, ``shares`` as for `ABRouter.ramp`. ``start`` (a `datetime.datetime`
    or Unix time) defaults to when the router is created; give it explicitly so
    every process and every restart follows the same clock. A rollback stops
    the schedule.

    Examples:
        >>> from datetime import timedelta
        >>> from llmrouter.ab._router import RampSchedule
        >>> schedule = RampSchedule([(timedelta(days=1), {"candidate": 0.25}),
        ...                          (timedelta(days=2), {"candidate": 0.5})])
        >>> [after for after, _ in schedule.steps]
        [86400.0, 172800.0]
    """

    def __init__(
        self,
        steps: Sequence[tuple[dt.timedelta | float, Mapping[str, float]]],
        *,
        start: dt.datetime | float | None = None,
    ) -> None:
        parsed = []
        for after, shares in steps:
            seconds = after.total_seconds() if isinstance(after, dt.timedelta) else float(after)
            if not seconds >= 0:
                raise ConfigurationError(f"RampSchedule step times must be >= 0, got {after!r}")
            parsed.append((seconds, dict(shares)))
        if not parsed:
            raise ConfigurationError("RampSchedule needs at least one (after, shares) step")
        self.steps: list[tuple[float, dict[str, float]]] = sorted(parsed, key=lambda s: s[0])
        """``(seconds after start, shares)``, in time order."""
        self.start: float | None = start.timestamp() if isinstance(start, dt.datetime) else start
        """Unix time of the start, or ``None`` for the router's creation time."""

    def __repr__(self) -> str:
        return f"RampSchedule({self.steps!r}, start={self.start!r})"


class ScheduleCursor:
    """How far one router has followed a `RampSchedule` (the schedule itself is shared)."""

    def __init__(self, schedule: RampSchedule) -> None:
        self.steps = schedule.steps
        self.start = time.time() if schedule.start is None else schedule.start
        self.next = 0
        """Index of the first step not applied yet."""

    def due(self) -> bool:
        """True if the next step's time has come."""
        return self.next < len(self.steps) and time.time() >= self.start + self.steps[self.next][0]

    def advance(self) -> tuple[int, dict[str, float]]:
        """The next step, ``(index, shares)``, marked as applied."""
        index = self.next
        self.next += 1
        return index, self.steps[index][1]

    def stop(self) -> None:
        """Apply no further step (after a rollback)."""
        self.next = len(self.steps)
