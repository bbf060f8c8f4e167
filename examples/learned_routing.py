"""Learned routing: fit a quality predictor on MMLU outcomes and route with it.

Run: python examples/learned_routing.py [--rows 1500] [--share 0.3]
     (offline; needs llmrouter[learn,testing]; reads ../shared/data/routellm/mmlu_dev.csv)

1. Fits a `QualityPredictor` on the first ``--rows`` prompts of RouteLLM's MMLU
   data, where each row records whether Mixtral-8x7B and GPT-4 answered correctly.
   Embeddings are cached, so a second run skips that step.
2. Builds a `CostAwareRouter` over two "models" named after those columns: llm-katan
   echo servers on 127.0.0.1, priced like the real ones. The router sends about
   ``--share`` of the requests to GPT-4. Set OPENAI_BASE_URL / OPENAI_API_KEY to
   route to real endpoints instead.
3. Routes held-out MMLU questions and prints, for each, the predicted quality per
   model, the model chosen, and whether that model really got it right.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from llmrouter import CostAwareRouter, models, route_of
from llmrouter.learn import QualityPredictor, read_outcomes
from llmrouter.testing import start_echo_server

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm" / "mmlu_dev.csv"
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
PRICES = {WEAK: (0.6, 0.6), STRONG: (10.0, 30.0)}  # USD per 1M input / output tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rows", type=int, default=1500, help="training prompts")
    parser.add_argument("--share", type=float, default=0.3, help="share of calls to GPT-4")
    parser.add_argument("--show", type=int, default=12, help="held-out prompts to route")
    args = parser.parse_args()
    console = Console()

    data = read_outcomes(args.data, models=[WEAK, STRONG])
    order = np.random.default_rng(0).permutation(data.n)  # the file is sorted by subject
    train, heldout = data.subset(order[: args.rows]), data.subset(order[args.rows :])
    with console.status(f"fitting on {train.n} prompts (embedding them the first time)..."):
        predictor = QualityPredictor.fit(train, folds=3, seed=0)
    cv = predictor.info["cross_validation"]
    best = max(c["mean"] for c in cv["candidates"])
    console.print(f"chosen: {cv['selected']}, cross-validated APGR {best:.3f}")

    with start_echo_server(["--log-level", "warning"]) as server:
        specs = [
            models.openai_compatible(
                os.environ.get("OPENAI_MODEL", server.model),
                base_url=os.environ.get("OPENAI_BASE_URL", server.base_url),
                api_key=os.environ.get("OPENAI_API_KEY", server.api_key),
                name=name,
                input_cost=PRICES[name][0],
                output_cost=PRICES[name][1],
                max_tokens=16,
            )
            for name in (WEAK, STRONG)
        ]
        router = CostAwareRouter(models=specs, predictor=predictor, strong_share=args.share)
        table = Table(title=f"{args.show} held-out MMLU questions, ~{args.share:.0%} to GPT-4")
        for column in ("question", "P(Mixtral right)", "P(GPT-4 right)", "routed to", "right?"):
            table.add_column(column, overflow="fold")
        strong_calls = right = 0
        for i in range(args.show):
            record = route_of(router.invoke(heldout.prompts[i]))
            predicted = record.extra["learned"]["predicted_quality"]
            chosen = [WEAK, STRONG].index(str(record.model))
            ok = bool(heldout.outcomes[i, chosen])
            strong_calls, right = strong_calls + chosen, right + ok
            table.add_row(
                heldout.prompts[i].splitlines()[0][:60],
                f"{predicted[WEAK]:.2f}",
                f"{predicted[STRONG]:.2f}",
                "GPT-4" if chosen else "Mixtral",
                "yes" if ok else "no",
            )
    console.print(table)
    console.print(
        f"{strong_calls}/{args.show} calls to GPT-4, {right}/{args.show} answered right "
        f"(last record's reason: {record.reason})"
    )


if __name__ == "__main__":
    main()
