"""A migration experiment: from a paid model to a local one, with evidence.

Run: python examples/ab_migration.py [--out DIR] [--users N]

Offline: two tiny random chat models stand in for the paid model ("control",
priced like gpt-4o-mini) and the local open model ("candidate", free). Their
answers are noise, so user feedback is simulated (a thumbs-up rate per
variant); everything else -- assignment, fallbacks, latency, tokens, cost,
storage, statistics -- is real.

1. shadow: the control answers everyone; the candidate runs on a copy in the
   background, and both answers are stored side by side;
2. canary: 10% of users get the candidate, with a guard that rolls it back if
   its error rate or latency goes bad;
3. ramp to 50%: users already on the candidate stay there;
4. report: per-variant table, significance tests, and a plot (PNG).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
from pathlib import Path

from rich.console import Console

from llmrouter import ABRouter, CanaryGuard, models, route_of
from llmrouter.testing import build_tiny_chat_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXPERIMENT = "migrate-to-local"
PROMPTS = [
    "Summarize: routers send easy questions to small models.",
    "What is the capital of France?",
    "Write a function that adds two numbers.",
    "Translate to German: good morning.",
    "Explain photosynthesis in one sentence.",
]
THUMBS_UP = {"control": 0.80, "candidate": 0.76}
"""Simulated share of satisfied users per variant (the tiny models answer noise)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="directory for the DB and plot")
    parser.add_argument("--users", type=int, default=200, help="users in the ramped phase")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="llmrouter-ab-"))
    out.mkdir(parents=True, exist_ok=True)
    console = Console(width=140)

    workdir = Path(tempfile.gettempdir()) / "llmrouter-ab-example"
    paid = models.huggingface_pipeline(
        str(build_tiny_chat_model(workdir / "paid", seed=0)),
        name="paid-api",
        input_cost=0.15,
        output_cost=0.60,  # USD per million tokens
        max_new_tokens=8,
    )
    local = models.huggingface_pipeline(
        str(build_tiny_chat_model(workdir / "local", seed=1)), name="local-open", max_new_tokens=8
    )
    store = f"sqlite:///{out / 'experiments.db'}"
    variants = {"control": paid, "candidate": local}

    # 1. shadow: nobody is served by the candidate yet
    with ABRouter(variants=variants, experiment=EXPERIMENT, mode="shadow", store=store) as ab:
        for i in range(10):
            ab.invoke(PROMPTS[i % len(PROMPTS)], user=f"user-{i}")
        ab.wait_shadows(timeout=60)
        pairs = [r for r in ab.store.records(EXPERIMENT) if r.shadow][:2]
    console.rule("1. shadow: both answers, side by side")
    for pair in pairs:
        console.print(f"prompt:    {pair.prompt!r}")
        console.print(f"control:   {pair.reference_output!r}")
        console.print(f"candidate: {pair.output!r}  ({(pair.latency_s or 0) * 1000:.0f} ms)")

    # 2. canary at 10%, guarded; 3. ramp to 50%
    ab = ABRouter(
        variants=variants,
        weights={"control": 0.9, "candidate": 0.1},
        experiment=EXPERIMENT,
        mode="canary",
        guard=CanaryGuard(max_error_rate=0.1, max_p95_latency_s=5.0, min_requests=10),
        store=store,
    )
    judge = random.Random(42)

    def serve(users: range) -> None:
        for i in users:
            msg = ab.invoke(PROMPTS[i % len(PROMPTS)], user=f"user-{i}")
            variant = route_of(msg).extra["variant"]
            ab.record_feedback(msg, score=int(judge.random() < THUMBS_UP[variant]))

    serve(range(100))
    console.rule("2. canary at 10%")
    console.print(f"shares {ab.weights}, rolled back: {sorted(ab.rolled_back) or 'none'}")
    on_candidate = {f"user-{i}" for i in range(100) if ab.variant_for(f"user-{i}") == "candidate"}
    ab.ramp(candidate=0.5)
    assert all(ab.variant_for(user) == "candidate" for user in on_candidate)  # they stay
    serve(range(100, 100 + args.users))
    console.rule("3. ramped to 50%")
    console.print(f"shares {ab.weights}; the {len(on_candidate)} canary users kept their variant")

    report = ab.report(feedback_effect=0.2, error_effect=0.05)
    console.rule("4. report")
    console.print(report)
    path = report.plot(out / "ab.png")
    console.print(f"plot: {path}\nstore: {store}")
    ab.close()


if __name__ == "__main__":
    main()
