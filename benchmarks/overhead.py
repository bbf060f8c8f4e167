"""Routing overhead: what a `ModelRouter` adds over calling the chosen model directly.

What it measures
    Wall time per call (``time.perf_counter_ns``) of every contender below, each doing
    the same job: read the task, pick the model for it, call it, return its AIMessage.
    All contenders share one instant fake chat model class (no I/O, no thread hops) and
    are called identically -- ``runnable.invoke(prompt, {"metadata": {"task": task}})``
    -- so the only difference is the routing machinery:

    * ``direct model call``    the baseline: the right model, looked up in a dict;
    * ``ModelRouter``          llmrouter, task read from ``config["metadata"]``;
    * ``CostAwareRouter``      llmrouter, cheapest model serving the task (counts tokens,
                               estimates cost, excludes the others with reasons);
    * ``RunnableBranch``       LangChain: ``(condition, model)`` pairs plus a default;
    * ``RunnableLambda``       LangChain: one function that picks the model and calls it.

    Overhead = p50(contender) - p50(direct). The issue's target: ModelRouter's overhead
    is at most half of RunnableBranch's (reported, never asserted). Calls are interleaved
    round-robin (the starting contender rotates each iteration; tasks cycle), after a
    warm-up, with the garbage collector disabled while timing (collected between chunks).
    ``ainvoke`` is measured the same way on one asyncio loop (LangChain's lambdas get an
    ``afunc`` so nothing runs in a thread pool).

How to run
    python benchmarks/overhead.py                      # defaults finish in < 60 s on 2 cores
    python benchmarks/overhead.py --iterations 3000 --json overhead.json

Adding a contender (e.g. a CostAwareRouter): append one ``Contender`` in `contenders()`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import langchain_core
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableBranch, RunnableConfig, RunnableLambda
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import llmrouter
from llmrouter import CostAwareRouter, ModelRouter, ModelSpec

PROMPT = "Write quicksort in Python"
TASK_MODEL = {"code_generation": "coder", "summarize": "summarizer", "chat": "chat"}
TARGET = 0.5  # ModelRouter overhead / RunnableBranch overhead must be at most this
CHUNK = 250  # iterations between gc.collect() and progress refreshes (both untimed)

Kind = Literal["baseline", "ours", "langchain"]
Call = Callable[[str, RunnableConfig], BaseMessage]
ACall = Callable[[str, RunnableConfig], Awaitable[BaseMessage]]


class InstantChat(BaseChatModel):
    """Answers ``AIMessage(reply)`` at once, sync and async (no executor hop)."""

    reply: str = "ok"

    @property
    def _llm_type(self) -> str:
        return "instant"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.reply))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)


@dataclass(frozen=True)
class Contender:
    name: str
    kind: Kind
    invoke: Call
    ainvoke: ACall

    @classmethod
    def of(cls, name: str, kind: Kind, runnable: Runnable[Any, Any]) -> Contender:
        return cls(name, kind, runnable.invoke, runnable.ainvoke)


def _task(config: RunnableConfig) -> str:
    return str(config["metadata"]["task"])


def contenders() -> list[Contender]:
    """Everything that is timed; the first entry is the baseline."""
    models = {name: InstantChat(reply=name) for name in TASK_MODEL.values()}
    by_task = {task: models[name] for task, name in TASK_MODEL.items()}

    router = ModelRouter(
        models=[ModelSpec(name=m, model=models[m], tasks={t}) for t, m in TASK_MODEL.items()],
        default="chat",
    )

    # Every model serves one task, so the cheapest eligible one is that task's model;
    # the router still counts prompt tokens and estimates a cost for it.
    cost_router = CostAwareRouter(
        models=[ModelSpec(name=m, model=models[m], tasks={t}) for t, m in TASK_MODEL.items()],
    )

    def is_(task: str) -> RunnableLambda[str, bool]:
        def cond(_: str, config: RunnableConfig) -> bool:
            return _task(config) == task

        async def acond(_: str, config: RunnableConfig) -> bool:
            return _task(config) == task

        return RunnableLambda(cond, afunc=acond)

    branch: Runnable[str, BaseMessage] = RunnableBranch(
        (is_("code_generation"), models["coder"]),
        (is_("summarize"), models["summarizer"]),
        models["chat"],
    )

    def pick(prompt: str, config: RunnableConfig) -> BaseMessage:
        return by_task[_task(config)].invoke(prompt, config)

    async def apick(prompt: str, config: RunnableConfig) -> BaseMessage:
        return await by_task[_task(config)].ainvoke(prompt, config)

    async def adirect(prompt: str, config: RunnableConfig) -> BaseMessage:
        return await by_task[_task(config)].ainvoke(prompt, config)

    return [
        Contender(
            "direct model call",
            "baseline",
            lambda prompt, config: by_task[_task(config)].invoke(prompt, config),
            adirect,
        ),
        Contender.of("ModelRouter", "ours", router),
        Contender.of("CostAwareRouter", "ours", cost_router),
        Contender.of("RunnableBranch", "langchain", branch),
        Contender.of("RunnableLambda", "langchain", RunnableLambda(pick, afunc=apick)),
    ]


CONFIGS: list[RunnableConfig] = [{"metadata": {"task": t}} for t in TASK_MODEL]


def check(cs: list[Contender]) -> None:
    """Every contender must answer each task with that task's model (sync and async)."""
    for config in CONFIGS:
        want = TASK_MODEL[_task(config)]
        for c in cs:
            got = [c.invoke(PROMPT, config), asyncio.run(_await(c.ainvoke(PROMPT, config)))]
            if any(not isinstance(m, AIMessage) or m.content != want for m in got):
                raise SystemExit(f"{c.name} answered {[m.content for m in got]}, wanted {want!r}")


async def _await(result: Awaitable[BaseMessage]) -> BaseMessage:
    return await result


Samples = dict[str, list[int]]


def _order(cs: list[Contender], i: int) -> list[Contender]:
    k = i % len(cs)
    return cs[k:] + cs[:k]


def time_sync(
    cs: list[Contender], iterations: int, warmup: int, tick: Callable[[], None]
) -> Samples:
    samples: Samples = {c.name: [] for c in cs}
    for i in range(warmup + iterations):
        config = CONFIGS[i % len(CONFIGS)]
        for c in _order(cs, i):
            t0 = time.perf_counter_ns()
            c.invoke(PROMPT, config)
            t1 = time.perf_counter_ns()
            if i >= warmup:
                samples[c.name].append(t1 - t0)
        if i % CHUNK == CHUNK - 1:
            tick()
    return samples


async def time_async(
    cs: list[Contender], iterations: int, warmup: int, tick: Callable[[], None]
) -> Samples:
    samples: Samples = {c.name: [] for c in cs}
    for i in range(warmup + iterations):
        config = CONFIGS[i % len(CONFIGS)]
        for c in _order(cs, i):
            t0 = time.perf_counter_ns()
            await c.ainvoke(PROMPT, config)
            t1 = time.perf_counter_ns()
            if i >= warmup:
                samples[c.name].append(t1 - t0)
        if i % CHUNK == CHUNK - 1:
            tick()
    return samples


def pct(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in microseconds."""
    return sorted_ns[max(0, math.ceil(q * len(sorted_ns)) - 1)] / 1000


def summarize(cs: list[Contender], samples: Samples) -> dict[str, Any]:
    rows: dict[str, dict[str, float]] = {}
    for c in cs:
        data = sorted(samples[c.name])
        rows[c.name] = {"p50_us": pct(data, 0.5), "p90_us": pct(data, 0.9)}
    base = rows[cs[0].name]["p50_us"]
    for row in rows.values():
        row["overhead_us"] = round(row["p50_us"] - base, 3)
    ratios: dict[str, float | None] = {  # None: the reference adds no measurable overhead
        f"{o.name} / {r.name}": rows[o.name]["overhead_us"] / rows[r.name]["overhead_us"]
        if rows[r.name]["overhead_us"] > 0
        else None
        for o in cs
        if o.kind == "ours"
        for r in cs
        if r.kind == "langchain"
    }
    met = {}
    for o in cs:
        if o.kind == "ours":
            ratio = ratios[f"{o.name} / RunnableBranch"]
            met[o.name] = ratio is not None and ratio <= TARGET
    return {"rows": rows, "overhead_ratios": ratios, "target_met": met}


def show(console: Console, title: str, result: dict[str, Any]) -> None:
    table = Table(title=title)
    for col in ("contender", "p50 µs", "p90 µs", "overhead µs"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    for name, row in result["rows"].items():
        table.add_row(name, *(f"{row[k]:.1f}" for k in ("p50_us", "p90_us", "overhead_us")))
    console.print(table)
    for label, ratio in result["overhead_ratios"].items():
        shown = "n/a" if ratio is None else f"{ratio:.2f}"
        console.print(f"  overhead ratio {label}: [bold]{shown}[/bold]")
    for name, ok in result["target_met"].items():
        met = "[green]MET[/green]" if ok else "[red]NOT MET[/red]"
        console.print(f"  target: {name} overhead <= {TARGET} x RunnableBranch's: {met}")
    console.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=4000, help="timed rounds per mode")
    parser.add_argument("--warmup", type=int, default=400, help="untimed rounds first")
    parser.add_argument("--no-async", action="store_true", help="skip the ainvoke run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers")
    args = parser.parse_args()

    console = Console()
    cs = contenders()
    check(cs)
    modes = ["invoke"] if args.no_async else ["invoke", "ainvoke"]
    results: dict[str, Any] = {}
    rounds = args.warmup + args.iterations
    with Progress(console=console, auto_refresh=False, transient=True) as progress:
        for mode in modes:
            bar = progress.add_task(f"{mode} x {len(cs)} contenders", total=rounds)

            def tick(bar: Any = bar) -> None:
                gc.collect()  # untimed; the collector is off while calls are timed
                progress.update(bar, advance=CHUNK, refresh=True)

            gc.collect()
            gc.disable()
            try:
                if mode == "invoke":
                    samples = time_sync(cs, args.iterations, args.warmup, tick)
                else:
                    samples = asyncio.run(time_async(cs, args.iterations, args.warmup, tick))
            finally:
                gc.enable()
            progress.update(bar, completed=rounds, refresh=True)
            results[mode] = summarize(cs, samples)

    console.print(
        f"[dim]{args.iterations} timed rounds (+{args.warmup} warm-up) per mode; gc disabled "
        f"while timing; python {platform.python_version()}, langchain-core "
        f"{langchain_core.__version__}, llmrouter {llmrouter.__version__}[/dim]"
    )
    for mode in modes:
        show(console, f"Routing overhead: {mode}", results[mode])
    if args.json:
        meta = {"iterations": args.iterations, "warmup": args.warmup, "gc": "disabled"}
        args.json.write_text(json.dumps({"settings": meta, **results}, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
