"""``llmrouter fit`` and ``llmrouter evaluate``: learned routing from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from llmrouter._cli_output import fail
from llmrouter.errors import ConfigurationError

_DATA_HELP = "CSV/TSV/JSONL: a prompt column, one outcome column per model, optional MODEL|cost."

PromptColumn = Annotated[str, typer.Option(help="The prompt column.")]
ScoreRange = Annotated[
    tuple[float, float] | None,
    typer.Option(help="Lowest and highest raw score, mapped to 0..1 (e.g. 1 10)."),
]
Prices = Annotated[
    Path | None,
    typer.Option(help="JSON {model: USD per call}, for data without MODEL|cost columns."),
]


def fit_command(
    data: Annotated[Path, typer.Argument(help=_DATA_HELP)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to save the predictor in.")],
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated model columns (default: every outcome column)."),
    ] = None,
    prompt_column: PromptColumn = "prompt",
    score_range: ScoreRange = None,
    prices: Prices = None,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for folds and estimators.")] = 0,
    embedding_model: Annotated[
        str, typer.Option(help="Sentence-transformers model (default: packaged MiniLM).")
    ] = "all-MiniLM-L6-v2",
    cache: Annotated[bool, typer.Option(help="Cache embeddings on disk.")] = True,
    quantize: Annotated[
        str,
        typer.Option(
            help="int8 (default): embed with int8 weights (faster per prediction, "
            "embeddings a little different); none: float32. Saved with the predictor."
        ),
    ] = "int8",
) -> None:
    """Fit a quality predictor on prompts with each model's outcomes, and save it."""
    from llmrouter.learn._features import PromptEncoder
    from llmrouter.learn._predictor import QualityPredictor

    console = Console(stderr=True)
    table = _read(data, models, prompt_column, score_range)
    if table.dropped:
        console.print(f"[yellow]{len(table.dropped)} row(s) with an empty outcome or cost left out")
    if quantize not in ("int8", "none"):
        raise fail(f"--quantize {quantize}: use int8 or none")
    encoder = _guard(
        lambda: PromptEncoder(
            embedding_model, cache=cache, quantize="int8" if quantize == "int8" else None
        )
    )
    predictor = _guard(
        lambda: QualityPredictor.fit(
            table,
            encoder=encoder,
            folds=folds,
            seed=seed,
            prices=_prices(prices),
            progress=True,
            on_step=lambda step: console.print(f"[dim]{step}"),
        )
    )
    predictor.save(out)
    cv = predictor.info["cross_validation"]
    result = Table(title=f"{table.source}: {table.n} prompts, {len(table.models)} models")
    for column in ("estimator", f"cross-validated {cv['metric']}", "per fold"):
        result.add_column(column)
    for cand in cv["candidates"]:
        mark = " (chosen)" if cand["estimator"] == cv["selected"] else ""
        folds_text = " ".join(f"{v:.3f}" for v in cand["folds"])
        result.add_row(cand["estimator"] + mark, f"{cand['mean']:.3f}", folds_text)
    Console().print(result)
    Console().print(f"saved to {out} ({predictor.info['fit_seconds']} s)")


def evaluate_command(
    predictor_dir: Annotated[Path, typer.Argument(help="A directory made by `llmrouter fit`.")],
    data: Annotated[Path, typer.Argument(help="Held-out data in the same format. " + _DATA_HELP)],
    plot: Annotated[Path | None, typer.Option(help="Write the cost-quality curves (PNG).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    prompt_column: PromptColumn = "prompt",
    score_range: ScoreRange = None,
    prices: Prices = None,
) -> None:
    """Route held-out prompts with a fitted predictor; compare with baselines."""
    from llmrouter.learn._evaluate import evaluate_predictor
    from llmrouter.learn._metrics import plot_curves, render_table
    from llmrouter.learn._predictor import QualityPredictor

    predictor = _guard(lambda: QualityPredictor.load(predictor_dir))
    table = _read(data, ",".join(predictor.models), prompt_column, score_range)
    result = _guard(lambda: evaluate_predictor(predictor, table, prices=_prices(prices)))
    if plot is not None:
        plot_curves(result, plot)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    Console().print(render_table(result))
    if plot is not None:
        Console().print(f"plot: {plot}")


def _read(
    data: Path, models: str | None, prompt_column: str, score_range: tuple[float, float] | None
) -> Any:
    from llmrouter.learn._data import read_outcomes

    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    return _guard(
        lambda: read_outcomes(
            data, models=names, prompt_column=prompt_column, score_range=score_range
        )
    )


def _prices(path: Path | None) -> dict[str, float] | None:
    if path is None:
        return None
    try:
        prices = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise fail(f"--prices {path}: {exc}; give a JSON object {{model: USD per call}}") from None
    if not isinstance(prices, dict) or not all(
        isinstance(v, (int, float)) and v >= 0 for v in prices.values()
    ):
        raise fail(f"--prices {path}: give a JSON object {{model: USD per call >= 0}}")
    return {str(k): float(v) for k, v in prices.items()}


def _guard(action: Any) -> Any:
    """Run ``action``; a `ConfigurationError` becomes a one-line message and exit code 2."""
    try:
        return action()
    except ConfigurationError as exc:
        raise fail(str(exc)) from None
