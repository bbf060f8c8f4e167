"""Routing data: prompts with each model's outcome (and optionally its cost) per row.

A file is CSV (``.csv``, ``.tsv``) or JSON Lines (``.jsonl``, ``.ndjson``) with

* a ``prompt`` column (the text the router sees);
* one outcome column per model, named after the model: booleans (``True``/
  ``False``, ``yes``/``no``, ``1``/``0``) for correct/wrong, or numbers (a judge's
  rating, a score). Values already in [0, 1] are kept; other numbers are mapped
  to [0, 1] by a ``score_range`` (given, or the lowest and highest value seen);
* optionally a ``MODEL|cost`` column per model: what that call cost, in USD.

A row with an empty outcome or cost (a model that was not run on that prompt) is
left out and counted in `OutcomeData.dropped`; a value that is there but is no
outcome (``"maybe"``) is an error.

Other text columns (``subject``, ``*_response``) are ignored. A column counts
as a model when every value parses as an outcome; name the models explicitly
(``models=[...]``) to be strict about it.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmrouter.errors import DataError, closest

COST_SUFFIX = "|cost"
"""A column named ``MODEL|cost`` holds what each call to MODEL cost, in USD."""

_TRUE = {"true", "yes", "y", "t", "correct"}
_FALSE = {"false", "no", "n", "f", "wrong", "incorrect"}
_NOT_MODELS = {"id", "idx", "index", "row", "question_id", "turn", "sample_id", "label"}
"""Numeric columns that are never a model's outcomes (unless named in ``models=``)."""


@dataclass(frozen=True)
class OutcomeData:
    """Prompts and, per model, what each prompt got: an outcome in [0, 1] and a cost.

    Examples:
        >>> data = OutcomeData.from_rows(
        ...     [{"prompt": "2+2?", "small": True, "large": True},
        ...      {"prompt": "Prove it.", "small": False, "large": True}])
        >>> data.models, data.outcomes.tolist()
        (['small', 'large'], [[1.0, 1.0], [0.0, 1.0]])
    """

    prompts: list[str]
    models: list[str]
    outcomes: NDArray[np.float64]
    """Shape (prompts, models), each in [0, 1]."""
    costs: NDArray[np.float64] | None = None
    """Shape (prompts, models): USD per call, when the data has ``MODEL|cost`` columns."""
    source: str = "<rows>"
    score_range: tuple[float, float] | None = None
    """The raw outcome range mapped to [0, 1] (``None``: outcomes were already in it)."""
    ignored: list[str] = field(default_factory=list)
    """Columns that were neither the prompt, a model nor a cost."""
    dropped: list[int] = field(default_factory=list)
    """Rows (1-based, as in the file) left out for an empty outcome or cost."""

    @property
    def n(self) -> int:
        return len(self.prompts)

    def subset(self, rows: Sequence[int] | NDArray[np.intp]) -> OutcomeData:
        """The same data for ``rows`` only (e.g. one cross-validation fold)."""
        index = np.asarray(rows, dtype=np.intp)
        return OutcomeData(
            prompts=[self.prompts[i] for i in index],
            models=list(self.models),
            outcomes=self.outcomes[index],
            costs=None if self.costs is None else self.costs[index],
            source=self.source,
            score_range=self.score_range,
            ignored=list(self.ignored),
        )

    def mean_costs(self, prices: Mapping[str, float] | None = None) -> NDArray[np.float64]:
        """Mean USD per call of each model: from the data's costs, else ``prices``."""
        if self.costs is not None:
            return np.asarray(self.costs.mean(axis=0), dtype=np.float64)
        if prices is None:
            raise DataError(
                f"{self.source} has no MODEL|cost columns: give each model's price per "
                "call (--prices, or the ModelSpecs' prices)"
            )
        missing = [m for m in self.models if m not in prices]
        if missing:
            raise DataError(f"no price for {missing}: give one per model {self.models}")
        return np.array([float(prices[m]) for m in self.models], dtype=np.float64)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        *,
        models: Sequence[str] | None = None,
        prompt_column: str = "prompt",
        score_range: tuple[float, float] | None = None,
        source: str = "<rows>",
    ) -> OutcomeData:
        """Parse records (dicts, one per prompt) as described in the module docstring."""
        table = list(rows)
        if not table:
            raise DataError(f"{source} has no rows")
        columns = list(dict.fromkeys(key for row in table for key in row))
        if prompt_column not in columns:
            hint = closest(prompt_column, columns)
            raise DataError(
                f"{source} has no {prompt_column!r} column"
                + (f" (did you mean {hint!r}?)" if hint else f"; its columns are {columns}")
                + ": name the prompt column with prompt_column= / --prompt-column"
            )
        chosen, ignored = _model_columns(table, columns, prompt_column, models, source)
        needed = [*chosen, *(m + COST_SUFFIX for m in chosen if m + COST_SUFFIX in columns)]
        numbered = [(i + 1, row) for i, row in enumerate(table)]  # rows as in the file
        kept = [(i, row) for i, row in numbered if not any(_empty(row.get(c)) for c in needed)]
        dropped = sorted({i for i, _ in numbered} - {i for i, _ in kept})
        if not kept:
            raise DataError(f"{source}: every row lacks an outcome or cost of {chosen}")
        prompts = _prompts(kept, prompt_column, source)
        raw = np.array(
            [[_outcome(row.get(m), m, i, source) for m in chosen] for i, row in kept],
            dtype=np.float64,
        )
        outcomes, scale = _normalise(raw, score_range, source)
        costs = _costs(kept, columns, chosen, source)
        ignored = [c for c in ignored if not (c.endswith(COST_SUFFIX) and costs is not None)]
        return cls(prompts, chosen, outcomes, costs, source, scale, ignored, dropped)


def read_outcomes(
    path: str | Path,
    *,
    models: Sequence[str] | None = None,
    prompt_column: str = "prompt",
    score_range: tuple[float, float] | None = None,
) -> OutcomeData:
    """Read a routing-data file (CSV, TSV or JSON Lines; see the module docstring).

    Raises:
        DataError: the file is missing or unreadable, or a column or value is
            unusable (the message names the row and column, and what to do).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"no routing-data file at {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        rows = _read_jsonl(path)
    elif suffix in {".csv", ".tsv", ".txt"}:
        rows = _read_csv(path, "\t" if suffix == ".tsv" else ",")
    else:
        raise DataError(f"{path.name}: unknown format {suffix!r}; use .csv, .tsv or .jsonl")
    return OutcomeData.from_rows(
        rows,
        models=models,
        prompt_column=prompt_column,
        score_range=score_range,
        source=path.name,
    )


# --------------------------------------------------------------------- reading


def _read_csv(path: Path, delimiter: str) -> list[dict[str, Any]]:
    csv.field_size_limit(2**31 - 1)  # few-shot prompts exceed the 128 KiB default
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path.name} line {number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path.name} line {number}: expected a JSON object per line")
            rows.append(row)
    return rows


def _prompts(rows: list[tuple[int, Mapping[str, Any]]], column: str, source: str) -> list[str]:
    prompts = [(i, row.get(column)) for i, row in rows]
    empty = [i for i, p in prompts if not isinstance(p, str) or not p.strip()]
    if empty:
        shown = ", ".join(map(str, empty[:5])) + (" ..." if len(empty) > 5 else "")
        raise DataError(
            f"{source}: {len(empty)} row(s) have an empty {column!r} (rows {shown}); "
            "drop them or fill in the prompt"
        )
    return [str(p) for _, p in prompts]


def _model_columns(
    table: list[Mapping[str, Any]],
    columns: list[str],
    prompt_column: str,
    models: Sequence[str] | None,
    source: str,
) -> tuple[list[str], list[str]]:
    """(model columns, ignored columns)."""
    others = [c for c in columns if c != prompt_column]
    if models is not None:
        missing = [m for m in models if m not in columns]
        if missing:
            hints = {m: closest(m, others) for m in missing}
            raise DataError(
                f"{source} has no outcome column for {missing}"
                + "".join(f"; {m!r}: did you mean {h!r}?" for m, h in hints.items() if h)
            )
        chosen = list(dict.fromkeys(models))
    else:
        chosen = [
            c
            for c in others
            if not c.endswith(COST_SUFFIX)
            and c.lower() not in _NOT_MODELS
            and _looks_like_outcomes(table, c)
        ]
    if len(chosen) < 2:
        raise DataError(
            f"{source}: routing needs outcomes of at least two models, found "
            f"{chosen or 'none'} (columns: {columns}); add one outcome column per model "
            "(True/False or a score), named after the model"
        )
    return chosen, [c for c in others if c not in chosen]


def _looks_like_outcomes(table: list[Mapping[str, Any]], column: str) -> bool:
    """Most values given parse as outcomes (a stray bad value is then reported, not skipped)."""
    values = [v for v in (row.get(column) for row in table[:200]) if not _empty(v)]
    parsed = sum(_parse(v) is not None for v in values)
    return bool(values) and parsed > len(values) / 2


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _parse(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _outcome(value: Any, model: str, row: int, source: str) -> float:
    parsed = _parse(value)
    if parsed is None:
        raise DataError(
            f"{source} row {row}, column {model!r}: {value!r} is not an outcome; outcomes "
            "are True/False or a finite number (fix it, or leave it empty to drop the row)"
        )
    return parsed


def _normalise(
    raw: NDArray[np.float64], score_range: tuple[float, float] | None, source: str
) -> tuple[NDArray[np.float64], tuple[float, float] | None]:
    if score_range is None:
        if raw.min() >= 0.0 and raw.max() <= 1.0:
            return raw, None
        score_range = (float(raw.min()), float(raw.max()))
    low, high = float(score_range[0]), float(score_range[1])
    if not high > low:
        raise DataError(f"{source}: score range {score_range} is empty; give (lowest, highest)")
    if raw.min() < low or raw.max() > high:
        raise DataError(
            f"{source}: outcomes span {raw.min():g}..{raw.max():g}, outside the score "
            f"range {low:g}..{high:g}; widen the range"
        )
    return (raw - low) / (high - low), (low, high)


def _costs(
    rows: list[tuple[int, Mapping[str, Any]]], columns: list[str], models: list[str], source: str
) -> NDArray[np.float64] | None:
    present = [m for m in models if m + COST_SUFFIX in columns]
    if not present:
        return None
    missing = [m for m in models if m not in present]
    if missing:
        raise DataError(
            f"{source} has cost columns for {present} but not for {missing}: add "
            f"{[m + COST_SUFFIX for m in missing]} or drop every cost column"
        )
    costs = np.empty((len(rows), len(models)), dtype=np.float64)
    for r, (i, row) in enumerate(rows):
        for j, model in enumerate(models):
            value = _parse(row.get(model + COST_SUFFIX))
            if value is None or value < 0:
                raise DataError(
                    f"{source} row {i}, column {model + COST_SUFFIX!r}: "
                    f"{row.get(model + COST_SUFFIX)!r} is not a cost; give USD >= 0"
                )
            costs[r, j] = value
    return costs
