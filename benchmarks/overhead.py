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

    Overhead = p50(contender) - p50(direct). The issue's targets: ModelRouter's overhead
    at most 0.35 x RunnableBranch's, CostAwareRouter's at most 0.40 x (reported, never
    asserted). Calls are interleaved round-robin (the starting contender rotates each
    iteration; tasks cycle), after a warm-up, with the garbage collector disabled while
    timing (collected between chunks of 250 rounds). ``ainvoke`` is measured the same way
    on one asyncio loop (LangChain's lambdas get an ``afunc`` so nothing runs in a thread
    pool).

    Optional, LiteLLM (``--litellm``): LiteLLM's ``Router`` over three ``mock_response``
    deployments, whose router-added overhead is p50(``Router.completion``) -
    p50(``litellm.completion``) (``acompletion`` for ``ainvoke``), both with
    ``mock_response`` so no request leaves the process. Target: our router-added p50 at
    most 0.1 x LiteLLM's. LiteLLM is heavy and no dependency of llmrouter, so it lives in
    its own venv, ``benchmarks/.venv-litellm`` (created on the first ``--litellm`` run,
    about a minute; used automatically whenever it exists, unless ``--no-litellm``), and
    runs in a subprocess, ``_litellm_overhead.py``. That process times its calls in chunks
    between ours while this one waits, so both see the same machine load. It refuses and
    counts any network access (expected: none); if LiteLLM cannot be installed or
    started, the script says why and reports the rest.

How to run
    python benchmarks/overhead.py                      # ~20 s on 2 cores (~80 s with LiteLLM)
    python benchmarks/overhead.py --litellm            # + LiteLLM; first run creates its venv
    python benchmarks/overhead.py --iterations 3000 --json overhead.json

Adding a contender (e.g. another router): append one ``Contender`` in `contenders()`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

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
# Our router-added p50 / the reference's must be at most this (the targets).
TARGETS: dict[str, dict[str, float]] = {
    "ModelRouter": {"RunnableBranch": 0.35, "LiteLLM Router": 0.10},
    "CostAwareRouter": {"RunnableBranch": 0.40, "LiteLLM Router": 0.10},
}
DEFAULT_TARGETS = TARGETS["ModelRouter"]  # for contenders added later
CHUNK = 250  # rounds between gc.collect(), progress refreshes and LiteLLM's chunks (untimed)

HERE = Path(__file__).resolve().parent
LITELLM_VENV = HERE / ".venv-litellm"
LITELLM_SCRIPT = HERE / "_litellm_overhead.py"
LITELLM_ROUTER = "LiteLLM Router"

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


# ------------------------------------------------------------------ LiteLLM


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run_quiet(command: list[str]) -> tuple[bool, str]:
    """Run ``command``; (succeeded, the end of its output)."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
    return done.returncode == 0, tail


def litellm_python(console: Console, create: bool) -> tuple[Path | None, str]:
    """The LiteLLM venv's interpreter, creating the venv if asked; else (None, why not)."""
    python = _venv_python(LITELLM_VENV)
    rel = LITELLM_VENV.relative_to(HERE.parent)
    if not create and not python.exists():
        return None, f"no {rel} (pass --litellm to create it)"
    if python.exists():
        found, _ = _run_quiet(
            [str(python), "-c", "import importlib.metadata as m; m.version('litellm')"]
        )
        if found:
            return python, ""
        if not create:
            return None, f"litellm is not installed in {rel} (pass --litellm to install it)"
    console.print(f"[dim]installing litellm into {rel} (once; about a minute) ...[/dim]")
    if not python.exists():
        ok, tail = _run_quiet([sys.executable, "-m", "venv", str(LITELLM_VENV)])
        if not ok:
            return None, f"could not create {rel}:\n{tail}"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    ok, tail = _run_quiet([*pip, "litellm"])
    if not ok:
        return None, f"pip install litellm failed:\n{tail}"
    return python, ""


class LiteLLMWorker:
    """``_litellm_overhead.py --serve`` in the LiteLLM venv: times chunks when told to."""

    def __init__(self, python: Path) -> None:
        self.log: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in close())
        env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map
            "LITELLM_TELEMETRY": "False",
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [str(python), str(LITELLM_SCRIPT), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )
        self.version = ""
        self.error = ""  # set if it failed after starting; the comparison is then skipped

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.seek(0)
            tail = "\n".join(self.log.read().strip().splitlines()[-8:])
            raise RuntimeError(f"exited with code {self.process.returncode}:\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(str(answer["error"]))
        return answer

    def ready(self) -> None:
        """Wait until LiteLLM is imported and has answered once per model group."""
        self.version = str(self._read()["litellm"])

    def run(self, mode: str, rounds: int, timed: bool) -> None:
        """Time ``rounds`` rounds of ``mode`` there; this process waits meanwhile."""
        if rounds <= 0 or self.error:
            return
        assert self.process.stdin is not None
        command = {"mode": mode, "rounds": rounds, "timed": timed}
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
            self._read()
        except (OSError, RuntimeError) as exc:
            self.error = f"LiteLLM failed during the run: {exc}"

    def result(self) -> dict[str, Any] | None:
        """Its numbers (see _litellm_overhead.py), or None if it failed (see `error`)."""
        answer = None
        if not self.error:
            assert self.process.stdin is not None
            try:
                self.process.stdin.close()
                answer = self._read()
            except (OSError, RuntimeError) as exc:
                self.error = f"LiteLLM failed at the end: {exc}"
        self.close()
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin and not self.process.stdin.closed:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# ------------------------------------------------------------------- timing


Samples = dict[str, list[int]]


def _order(cs: list[Contender], i: int) -> list[Contender]:
    k = i % len(cs)
    return cs[k:] + cs[:k]


def time_sync(cs: list[Contender], rounds: range, warmup: int, samples: Samples) -> None:
    for i in rounds:
        config = CONFIGS[i % len(CONFIGS)]
        for c in _order(cs, i):
            t0 = time.perf_counter_ns()
            c.invoke(PROMPT, config)
            t1 = time.perf_counter_ns()
            if i >= warmup:
                samples[c.name].append(t1 - t0)


async def time_async(cs: list[Contender], rounds: range, warmup: int, samples: Samples) -> None:
    for i in rounds:
        config = CONFIGS[i % len(CONFIGS)]
        for c in _order(cs, i):
            t0 = time.perf_counter_ns()
            await c.ainvoke(PROMPT, config)
            t1 = time.perf_counter_ns()
            if i >= warmup:
                samples[c.name].append(t1 - t0)


def measure(
    mode: str,
    cs: list[Contender],
    args: argparse.Namespace,
    worker: LiteLLMWorker | None,
    tick: Callable[[int], None],
) -> Samples:
    """Our rounds in chunks of CHUNK (gc off inside), LiteLLM's chunks in between."""
    samples: Samples = {c.name: [] for c in cs}
    rounds = args.warmup + args.iterations
    starts = range(0, rounds, CHUNK)
    # LiteLLM's timed rounds, spread evenly over our chunks; its warm-up goes first.
    total = args.litellm_iterations
    shares = [(j + 1) * total // len(starts) - j * total // len(starts) for j in range(len(starts))]
    if worker:
        worker.run(mode, args.litellm_warmup, timed=False)
    loop = asyncio.new_event_loop() if mode == "ainvoke" else None
    try:
        for start, share in zip(starts, shares, strict=True):
            chunk = range(start, min(start + CHUNK, rounds))
            gc.collect()
            gc.disable()
            try:
                if loop is None:
                    time_sync(cs, chunk, args.warmup, samples)
                else:
                    loop.run_until_complete(time_async(cs, chunk, args.warmup, samples))
            finally:
                gc.enable()
            gc.collect()
            if worker:
                worker.run(mode, share, timed=True)
            tick(len(chunk))
    finally:
        if loop is not None:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    return samples


# ------------------------------------------------------------------ results


def pct(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in microseconds."""
    return sorted_ns[max(0, math.ceil(q * len(sorted_ns)) - 1)] / 1000


def summarize(
    cs: list[Contender], samples: Samples, litellm: dict[str, Any] | None
) -> dict[str, Any]:
    """Rows, overhead ratios and target checks; ``litellm`` is that worker's mode result."""
    rows: dict[str, dict[str, float]] = {}
    for c in cs:
        data = sorted(samples[c.name])
        rows[c.name] = {"p50_us": pct(data, 0.5), "p90_us": pct(data, 0.9)}
    base = rows[cs[0].name]["p50_us"]
    for row in rows.values():
        row["overhead_us"] = round(row["p50_us"] - base, 3)
    references = [c.name for c in cs if c.kind == "langchain"]
    litellm_rows: dict[str, dict[str, float]] = {}
    if litellm is not None:
        # litellm.(a)completion first, then LiteLLM's Router
        lbase = next(iter(litellm["rows"].values()))["p50_us"]
        for name, row in litellm["rows"].items():
            litellm_rows[name] = {
                "p50_us": row["p50_us"],
                "p90_us": row["p90_us"],
                "overhead_us": round(row["p50_us"] - lbase, 3),
            }
        references.append(LITELLM_ROUTER)
    every = {**rows, **litellm_rows}
    ratios: dict[str, float | None] = {}  # None: the reference adds no measurable overhead
    for o in cs:
        if o.kind == "ours":
            for r in references:
                ref = every[r]["overhead_us"]
                ratios[f"{o.name} / {r}"] = rows[o.name]["overhead_us"] / ref if ref > 0 else None
    targets = []
    for o in cs:
        if o.kind == "ours":
            for ref, target in TARGETS.get(o.name, DEFAULT_TARGETS).items():
                ratio = ratios.get(f"{o.name} / {ref}")
                targets.append(
                    {
                        "contender": o.name,
                        "reference": ref,
                        "target": target,
                        "ratio": ratio,
                        "met": None if ref not in every else ratio is not None and ratio <= target,
                    }
                )
    return {
        "rows": rows,
        "litellm_rows": litellm_rows,
        "overhead_ratios": ratios,
        "targets": targets,
    }


def show(console: Console, title: str, result: dict[str, Any], litellm_note: str) -> None:
    table = Table(title=title)
    for col in ("contender", "p50 µs", "p90 µs", "overhead µs"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    keys = ("p50_us", "p90_us", "overhead_us")
    for name, row in result["rows"].items():
        table.add_row(name, *(f"{row[k]:.1f}" for k in keys))
    if result["litellm_rows"]:
        table.add_section()
        for name, row in result["litellm_rows"].items():
            table.add_row(name, *(f"{row[k]:.1f}" for k in keys))
    console.print(table)
    if result["litellm_rows"]:
        console.print(
            f"  [dim]LiteLLM rows: {litellm_note}; their overhead is over "
            f"{next(iter(result['litellm_rows']))}'s p50[/dim]"
        )
    for label, ratio in result["overhead_ratios"].items():
        shown = "n/a" if ratio is None else f"{ratio:.2f}"
        console.print(f"  overhead ratio {label}: [bold]{shown}[/bold]")
    for t in result["targets"]:
        label = f"{t['contender']} overhead <= {t['target']:.2f} x {t['reference']}'s"
        if t["met"] is None:
            verdict = "[yellow]skipped[/yellow] (no LiteLLM numbers; see above)"
        else:
            shown = "n/a" if t["ratio"] is None else f"{t['ratio']:.3f}"
            verdict = f"{shown}, " + ("[green]MET[/green]" if t["met"] else "[red]NOT MET[/red]")
        console.print(f"  target: {label}: {verdict}")
    console.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=4000, help="timed rounds per mode")
    parser.add_argument("--warmup", type=int, default=400, help="untimed rounds first")
    parser.add_argument("--no-async", action="store_true", help="skip the ainvoke run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers")
    use = parser.add_mutually_exclusive_group()
    use.add_argument(
        "--litellm",
        action="store_true",
        help="compare with LiteLLM's Router (creates benchmarks/.venv-litellm if missing)",
    )
    use.add_argument(
        "--no-litellm", action="store_true", help="skip LiteLLM even if its venv exists"
    )
    parser.add_argument(
        "--litellm-iterations", type=int, default=1000, help="LiteLLM's timed rounds per mode"
    )
    parser.add_argument(
        "--litellm-warmup", type=int, default=100, help="LiteLLM's untimed rounds first"
    )
    args = parser.parse_args()

    console = Console()
    worker: LiteLLMWorker | None = None
    why_not = "off (--no-litellm)"
    if not args.no_litellm:
        python, why_not = litellm_python(console, create=args.litellm)
        if python is not None:
            worker = LiteLLMWorker(python)  # imports LiteLLM while we check ours
    cs = contenders()
    check(cs)
    if worker is not None:
        try:
            worker.ready()
        except RuntimeError as exc:
            why_not = f"LiteLLM did not start: {exc}"
            worker.close()
            worker = None
    if worker is None:
        console.print(f"[yellow]LiteLLM comparison skipped:[/yellow] {why_not}")

    modes = ["invoke"] if args.no_async else ["invoke", "ainvoke"]
    all_samples: dict[str, Samples] = {}
    rounds = args.warmup + args.iterations
    extra = " + LiteLLM" if worker else ""
    with Progress(console=console, auto_refresh=False, transient=True) as progress:
        for mode in modes:
            bar = progress.add_task(f"{mode} x {len(cs)} contenders{extra}", total=rounds)

            def tick(n: int, bar: Any = bar) -> None:
                progress.update(bar, advance=n, refresh=True)

            all_samples[mode] = measure(mode, cs, args, worker, tick)
    litellm: dict[str, Any] | None = None
    if worker is not None:
        litellm = worker.result()
    if worker is not None and litellm is None:
        why_not = worker.error
        console.print(f"[yellow]LiteLLM comparison skipped:[/yellow] {why_not}")
    if litellm is not None:
        why_not = (
            f"litellm {litellm['litellm']} (own venv and process, mock_response), "
            f"{args.litellm_iterations} timed rounds (+{args.litellm_warmup} warm-up)"
        )
        if litellm["network_attempts"]:
            console.print(f"[red]LiteLLM tried the network:[/red] {litellm['network_attempts']}")
    results = {
        mode: summarize(cs, all_samples[mode], litellm["modes"].get(mode) if litellm else None)
        for mode in modes
    }

    console.print(
        f"[dim]{args.iterations} timed rounds (+{args.warmup} warm-up) per mode; gc disabled "
        f"while timing; python {platform.python_version()}, langchain-core "
        f"{langchain_core.__version__}, llmrouter {llmrouter.__version__}[/dim]"
    )
    for mode in modes:
        show(console, f"Routing overhead: {mode}", results[mode], why_not)
    if args.json:
        meta = {"iterations": args.iterations, "warmup": args.warmup, "gc": "disabled"}
        lite = {"used": litellm is not None, "note": why_not}
        if litellm is not None:
            lite |= {k: litellm[k] for k in ("litellm", "network_attempts")}
            lite |= {"iterations": args.litellm_iterations, "warmup": args.litellm_warmup}
        payload = {"settings": meta, "litellm": lite, **results}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
