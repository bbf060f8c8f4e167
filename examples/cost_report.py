"""Cost report: a CostAwareRouter over a local model and two priced remote models.

Run: python examples/cost_report.py   (offline; needs llmrouter[testing] for llm-katan)

The remote models are an llm-katan echo server started on 127.0.0.1 (or your
server: set OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL). The local model
is a tiny random GPT-2 built on the spot, priced from its hardware cost. A
scripted workload runs through the router -- some requests streamed, some
with a per-call max_cost, all under a daily budget that downgrades -- and the
tracker prints what it cost, by model, task and tag, from reported usage.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from rich.console import Console
from rich.table import Table

from llmrouter import Budget, CostAwareRouter, models, route_of
from llmrouter.cost import compute_prices, track_costs
from llmrouter.testing import build_tiny_chat_model, start_echo_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORKLOAD = [  # prompt, call keywords, tags
    ("Summarize: routers send easy requests to cheap models.", {"task": "summarize"}, ["docs"]),
    ("Write a Python function that merges two sorted lists.", {"task": "code"}, ["ide"]),
    (
        "Review this code for race conditions: " + "lock.acquire(); x += 1; " * 40,
        {"task": "code", "min_quality": 0.9},
        ["ide", "review"],
    ),
    (
        "Summarize: " + "the budget keeps spend in SQLite across restarts. " * 60,
        {"task": "summarize", "max_tokens": 64},
        ["docs"],
    ),
    ("Hi! What can you do?", {"task": "chat", "max_cost": 0.0001}, ["web"]),
    ("Explain exponential backoff in one paragraph.", {"task": "chat"}, ["web"]),
]


@contextlib.contextmanager
def remote_server() -> Iterator[tuple[str, str, str]]:
    """(base_url, api_key, model): yours from the environment, else llm-katan's echo."""
    if os.environ.get("OPENAI_BASE_URL"):
        yield (
            os.environ["OPENAI_BASE_URL"],
            os.environ.get("OPENAI_API_KEY", "EMPTY"),
            os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        )
        return
    with start_echo_server(model="echo") as server:
        yield server.base_url, server.api_key, server.model


def main() -> None:
    console = Console()
    workdir = Path(tempfile.gettempdir()) / "llmrouter-cost-report"
    local = models.huggingface_pipeline(
        str(build_tiny_chat_model(workdir / "local", seed=0)),
        name="local",
        tasks={"chat", "summarize"},
        max_new_tokens=16,
        do_sample=False,
        # a $0.05/hour machine generating 100 tokens/s and reading 5000 tokens/s
        **compute_prices(
            usd_per_hour=0.05, output_tokens_per_second=100, input_tokens_per_second=5000
        ),
    )
    with remote_server() as (base_url, api_key, model):
        small = models.openai_compatible(
            model,
            base_url,
            api_key=api_key,
            name="small-remote",
            input_cost=0.15,
            output_cost=0.60,
            quality={"code": 0.7, "chat": 0.8},
        )
        big = models.openai_compatible(
            model,
            base_url,
            api_key=api_key,
            name="big-remote",
            input_cost=2.50,
            output_cost=10.00,
            quality={"code": 0.95, "chat": 0.95},
        )
        router = CostAwareRouter(
            name="cost-report",
            models=[local, small, big],
            max_tokens=128,
            max_cost=0.01,
            budget=Budget(usd=5.0, per="day", on_exceeded="downgrade"),
            spend_db=workdir / "spend.db",
        )
        decisions = Table(title="Routing decisions (USD)")
        for column in ("task", "model", "mode", "estimate", "actual", "prompt count", "skipped"):
            decisions.add_column(
                column, justify="right" if column in {"estimate", "actual"} else "left"
            )
        with track_costs() as usage:
            for i, (prompt, kwargs, tags) in enumerate(WORKLOAD):
                config: RunnableConfig = {"tags": tags}
                if i % 2:  # every other request streams: the accounting is the same
                    full = None
                    for chunk in router.stream(prompt, config, **kwargs):
                        full = chunk if full is None else full + chunk
                    assert full is not None
                    record = route_of(full)
                else:
                    record = route_of(router.invoke(prompt, config, **kwargs))
                decisions.add_row(
                    record.task,
                    record.model,
                    "stream" if record.streamed else "invoke",
                    f"{record.estimated_cost_usd or 0:.6f}",
                    f"{record.cost_usd or 0:.6f}",
                    record.extra["token_count"],
                    "\n".join(f"{k}: {v}" for k, v in record.extra["excluded"].items()),
                )
    console.print(decisions)
    for by in ("model", "task", "tag"):
        console.print(usage.table(by=by))
    for status in router.budget_status():
        console.print(
            f"budget {status.budget.describe()}: ${status.spent_usd:.6f} spent today, "
            f"kept in {workdir / 'spend.db'} (runs of this script add up)"
        )


if __name__ == "__main__":
    main()
