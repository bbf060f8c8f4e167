"""Batching: 32 concurrent requests to a local model against 32 sequential ones.

What it measures
    One tiny random GPT-2 (``llmrouter.testing.build_tiny_chat_model``, written to a
    temporary directory, or ``--model-dir``) behind ``llmrouter.models.huggingface_pipeline``
    with greedy decoding (``do_sample=False``) and ``max_new_tokens=16`` (``--max-new-tokens``).
    The adapter coalesces concurrent calls into one pipeline call: the first caller
    leads, waits ``batch_wait_ms`` (the window; the adapter's default unless
    ``--batch-wait-ms``) for others to join, and runs at most ``max_batch_size``
    requests with the same generation settings together. Every spec shares one loaded
    pipeline. The 32 prompts (``--requests``) are distinct and of different lengths
    (1 to 23 words after a ``Request i:`` prefix), so batches are left-padded.

    Cases, each a pair of rounds of the same 32 requests (``bN``: ``max_batch_size=N``,
    8 and 32 (the default), ``--batch-sizes``; the last two cases use the largest):

    * ``async bN``    sequential: ``await chat.ainvoke(p)`` one after another;
                      concurrent: ``asyncio.gather`` of 32 ``ainvoke``;
    * ``async b32, wide loop``  the same on a loop whose default executor has one
                      thread per request (``loop.set_default_executor``). ``ainvoke``
                      runs the generation in the loop's default executor, which asyncio
                      sizes ``min(32, cpus + 4)`` (6 threads on 2 cores): at most that
                      many requests reach the batcher at once;
    * ``threads bN``  sequential: ``chat.invoke(p)`` one after another; concurrent: 32
                      threads of a ``ThreadPoolExecutor`` call ``invoke`` at once (a
                      barrier releases them together);
    * ``threads b32, mixed x4``  like ``threads``, but the requests carry 4 kinds of
                      per-call settings in turn (none; ``max_tokens=8``; ``stop=["o"]``;
                      ``max_tokens=12, stop=["e", "a"]``). The adapter runs them in one
                      batch (up to the largest limit), each row stopping at its own limit
                      and stop sequences.

    (a, b, c) Throughput: requests/s = 32 / the round's wall time. A repeat runs every
        case's two rounds; the order of the cases rotates and which round goes first
        alternates from repeat to repeat; one untimed warm-up repeat first (it also
        starts the threads). Reported: median requests/s of each round over the
        repeats (default 7), concurrent / sequential of the medians, and the middle
        half (25th-75th percentile) of the ratios paired repeat by repeat (the noise),
        and the pipeline calls a concurrent round made (``chat.pipeline_calls`` before
        and after; median and range). Target: concurrent / sequential >= 3.
    (d) Waiting and latency of each request of a concurrent round. ``wait``: from the
        request reaching the batcher to the start of the pipeline call that serves it
        (the reply's ``response_metadata["batch"]["queued_ms"]``); ``latency``: from
        the call to the answer (its own batch and LangChain's per-call work
        included). p50 and max are medians over the repeats of each round's p50 and
        max; ``worst``: the largest of all. Bound, per round = the window + one
        batch, the longest pipeline call of that round (the replies'
        ``response_metadata["batch"]["run_ms"]``). Target: max wait <= bound in
        every round ("max wait <= window + one batch", and in how many rounds).
        It can hold only where the 32 requests fit one batch (``max_batch_size``
        32): with ``max_batch_size=8`` the last 8 wait for the 3 batches ahead of
        them. For comparison, ``bare``: one pipeline call on the 32 prompts at
        once (``chat.hf_pipeline.pipeline(prompts, batch_size=32, ...)``, the
        adapter's pipeline called directly, timed once per repeat; median), and
        how many rounds' max wait stayed within the window + that.
    (e) Correctness: with greedy decoding a request should get the same text in a
        batch as alone. Every concurrent answer is compared with the same request's
        answer in the sequential round of that repeat (a request alone in its
        pipeline call); ``mismatches`` counts the differing answers over all repeats.
        ``alone drift`` counts sequential answers that differ from the first
        sequential answer to the same request (should be 0).

    Timing uses ``time.perf_counter_ns`` with the garbage collector disabled during a
    round (collected before it, untimed). Nothing is asserted.

How to run
    python benchmarks/batching.py                      # 1-2.5 min on 2 cores
    python benchmarks/batching.py --repeats 21 --json batching.json   # steadier
    python benchmarks/batching.py --batch-sizes 32 --repeats 3        # quicker
    python benchmarks/batching.py --batch-wait-ms 10 --max-new-tokens 32

Needs ``torch`` and ``transformers`` (``llmrouter[huggingface]``); no download.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import langchain_core
from langchain_core.language_models import BaseChatModel
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import llmrouter
from llmrouter.models import huggingface_pipeline
from llmrouter.testing import build_tiny_chat_model

THROUGHPUT_TARGET = 3.0  # concurrent / sequential requests/s
SENTENCE = (
    "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing "
    "matches near the old river bank at dawn"
)
MIXED: tuple[dict[str, Any], ...] = (
    {},
    {"max_tokens": 8},
    {"stop": ["o"]},
    {"max_tokens": 12, "stop": ["e", "a"]},
)

Request = tuple[str, dict[str, Any]]  # prompt, per-call keywords


def prompts(count: int) -> list[str]:
    """Distinct prompts of 1 to 23 words (plus a prefix), so batches need padding."""
    vocab, out = SENTENCE.split(), []
    for i in range(count):
        words = [vocab[(i + j) % len(vocab)] for j in range(1 + (i * 5) % 23)]
        out.append(f"Request {i}: " + " ".join(words))
    return out


@dataclass(frozen=True)
class Case:
    name: str
    style: str  # "async" or "threads"
    max_batch: int
    mixed: bool = False
    wide_loop: bool = False  # async: the loop's default executor has one thread a request

    def requests(self, texts: list[str]) -> list[Request]:
        if not self.mixed:
            return [(p, {}) for p in texts]
        return [(p, MIXED[i % len(MIXED)]) for i, p in enumerate(texts)]


def cases(sizes: list[int]) -> list[Case]:
    big = max(sizes)
    out = [Case(f"async b{b}", "async", b) for b in sizes]
    out.append(Case(f"async b{big}, wide loop", "async", big, wide_loop=True))
    out += [Case(f"threads b{b}", "threads", b) for b in sizes]
    out.append(Case(f"threads b{big}, mixed x{len(MIXED)}", "threads", big, mixed=True))
    return out


@dataclass
class Round:
    wall_ns: int
    texts: list[str]
    latencies_ns: list[int] | None = None  # concurrent rounds only
    calls: int = 0  # pipeline calls the round made
    waits_ms: list[float] | None = None  # concurrent rounds: each request's queue wait
    runs_ms: list[float] | None = None  # concurrent rounds: each request's batch run time


def timed(run: Callable[[], Round]) -> Round:
    gc.collect()
    gc.disable()
    try:
        return run()
    finally:
        gc.enable()


class Runner:
    """Runs the sequential and concurrent rounds of a case on its chat model."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.loops = {False: asyncio.new_event_loop(), True: asyncio.new_event_loop()}
        self.loops[True].set_default_executor(ThreadPoolExecutor(count, "loop-wide"))
        self.pool = ThreadPoolExecutor(count, "callers")

    def close(self) -> None:
        self.pool.shutdown()
        for loop in self.loops.values():
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def sequential(self, case: Case, chat: BaseChatModel, reqs: list[Request]) -> Round:
        before = _calls(chat)
        if case.style == "async":

            async def run() -> tuple[int, list[str]]:
                t0 = time.perf_counter_ns()
                texts = [str((await chat.ainvoke(p, **kw)).content) for p, kw in reqs]
                return time.perf_counter_ns() - t0, texts

            wall, texts = self.loops[case.wide_loop].run_until_complete(run())
        else:
            t0 = time.perf_counter_ns()
            texts = [str(chat.invoke(p, **kw).content) for p, kw in reqs]
            wall = time.perf_counter_ns() - t0
        return Round(wall, texts, calls=_calls(chat) - before)

    def concurrent(self, case: Case, chat: BaseChatModel, reqs: list[Request]) -> Round:
        before = _calls(chat)
        if case.style == "async":

            async def one(prompt: str, kw: dict[str, Any]) -> tuple[Any, int]:
                t0 = time.perf_counter_ns()
                answer = await chat.ainvoke(prompt, **kw)
                return answer, time.perf_counter_ns() - t0

            async def run() -> tuple[int, list[tuple[Any, int]]]:
                t0 = time.perf_counter_ns()
                got = await asyncio.gather(*(one(p, kw) for p, kw in reqs))
                return time.perf_counter_ns() - t0, got

            wall, got = self.loops[case.wide_loop].run_until_complete(run())
        else:
            barrier = threading.Barrier(len(reqs) + 1, timeout=120)

            def call(prompt: str, kw: dict[str, Any]) -> tuple[Any, int]:
                barrier.wait()
                t0 = time.perf_counter_ns()
                answer = chat.invoke(prompt, **kw)
                return answer, time.perf_counter_ns() - t0

            futures = [self.pool.submit(call, p, kw) for p, kw in reqs]
            barrier.wait()
            t0 = time.perf_counter_ns()
            got = [f.result() for f in futures]
            wall = time.perf_counter_ns() - t0
        texts = [str(answer.content) for answer, _ in got]
        batches = [a.response_metadata["batch"] for a, _ in got]
        waits = [float(b["queued_ms"]) for b in batches]
        runs = [float(b["run_ms"]) for b in batches]
        return Round(wall, texts, [ns for _, ns in got], _calls(chat) - before, waits, runs)


def _calls(chat: BaseChatModel) -> int:
    return int(chat.pipeline_calls)  # type: ignore[attr-defined]


def one_batch_ns(chat: BaseChatModel, texts: list[str], max_new_tokens: int) -> int | None:
    """One pipeline call on every prompt at once, the adapter's pipeline called directly
    (``None`` if this adapter has no ``hf_pipeline``)."""
    try:
        pipe = chat.hf_pipeline.pipeline  # type: ignore[attr-defined]
    except AttributeError:
        return None
    tokenizer = pipe.tokenizer
    templated = bool(getattr(tokenizer, "chat_template", None))
    rendered = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        if templated
        else f"user: {p}\nassistant:"
        for p in texts
    ]

    def run() -> Round:
        t0 = time.perf_counter_ns()
        pipe(
            rendered,
            batch_size=len(rendered),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            return_full_text=False,
            add_special_tokens=not templated,
        )
        return Round(time.perf_counter_ns() - t0, [])

    return timed(run).wall_ns


def measure(
    args: argparse.Namespace, path: str, tick: Callable[[], None]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    texts = prompts(args.requests)
    extra = {} if args.batch_wait_ms is None else {"batch_wait_ms": args.batch_wait_ms}
    chats: dict[int, BaseChatModel] = {}
    for size in sorted(set(args.batch_sizes)):
        spec = huggingface_pipeline(
            path,
            name=f"tiny-b{size}",
            max_new_tokens=args.max_new_tokens,
            do_sample=False,
            max_batch_size=size,
            **extra,
        )
        chats[size] = spec.chat_model
        chats[size].warm_up()  # type: ignore[attr-defined]
    any_chat = next(iter(chats.values()))
    window_ms = float(any_chat.batch_wait_ms)  # type: ignore[attr-defined]
    all_cases = cases(args.batch_sizes)
    samples: dict[str, dict[str, list[Any]]] = {
        c.name: {"seq": [], "con": [], "seq_calls": [], "con_calls": []} for c in all_cases
    }
    mismatches = dict.fromkeys(samples, 0)
    drift = dict.fromkeys(samples, 0)
    first_alone: dict[tuple[str, str], str] = {}
    batch_ns: list[int] = []
    runner = Runner(args.requests)
    try:
        for repeat in range(-1, args.repeats):  # -1: warm-up
            shift = repeat % len(all_cases)
            order = all_cases[shift:] + all_cases[:shift]
            for case in order:
                chat, reqs = chats[case.max_batch], case.requests(texts)
                kinds = ("seq", "con") if repeat % 2 == 0 else ("con", "seq")
                got: dict[str, Round] = {}
                for kind in kinds:
                    run = runner.sequential if kind == "seq" else runner.concurrent
                    got[kind] = timed(functools.partial(run, case, chat, reqs))
                tick()
                if repeat < 0:
                    continue
                s = samples[case.name]
                for kind, rnd in got.items():
                    s[kind].append(rnd)
                    s[f"{kind}_calls"].append(rnd.calls)
                alone, batched = got["seq"].texts, got["con"].texts
                mismatches[case.name] += sum(a != b for a, b in zip(alone, batched, strict=True))
                for (prompt, kw), text in zip(reqs, alone, strict=True):
                    key = (prompt, json.dumps(kw, sort_keys=True))
                    drift[case.name] += first_alone.setdefault(key, text) != text
            one = one_batch_ns(chats[max(chats)], texts, args.max_new_tokens)
            if one is not None and repeat >= 0:
                batch_ns.append(one)
    finally:
        runner.close()

    one_batch_ms = statistics.median(batch_ns) / 1e6 if batch_ns else None
    bound_ms = None if one_batch_ms is None else window_ms + one_batch_ms
    rows = []
    for case in all_cases:
        s = samples[case.name]
        seq = [args.requests / (r.wall_ns / 1e9) for r in s["seq"]]
        con = [args.requests / (r.wall_ns / 1e9) for r in s["con"]]
        paired = [c / q for c, q in zip(con, seq, strict=True)]
        ratio = statistics.median(con) / statistics.median(seq)
        quart = statistics.quantiles(paired, n=4) if len(paired) > 1 else [ratio] * 3
        p50s = [statistics.median(r.latencies_ns) / 1e6 for r in s["con"]]
        maxes = [max(r.latencies_ns) / 1e6 for r in s["con"]]
        wait_p50s = [statistics.median(r.waits_ms) for r in s["con"]]
        waits = [max(r.waits_ms) for r in s["con"]]
        wait_ms = statistics.median(waits)
        bounds = [window_ms + max(r.runs_ms) for r in s["con"]]  # the round's longest batch
        within = [w <= b for w, b in zip(waits, bounds, strict=True)]
        rows.append(
            {
                "case": case.name,
                "style": case.style,
                "max_batch_size": case.max_batch,
                "mixed": case.mixed,
                "wide_loop": case.wide_loop,
                "seq_rps": statistics.median(seq),
                "con_rps": statistics.median(con),
                "ratio": ratio,
                "paired_p25": quart[0],
                "paired_p75": quart[2],
                "met": ratio >= THROUGHPUT_TARGET,
                "con_calls": s["con_calls"],
                "seq_calls": s["seq_calls"],
                "latency_p50_ms": statistics.median(p50s),
                "latency_max_ms": statistics.median(maxes),
                "latency_worst_ms": max(maxes),
                "wait_p50_ms": statistics.median(wait_p50s),
                "wait_max_ms": wait_ms,
                "wait_worst_ms": max(waits),
                "bound_ms": statistics.median(bounds),
                "within_bound": all(within),
                "rounds_within_bound": sum(within),
                "rounds_within_bare": None
                if bound_ms is None
                else sum(w <= bound_ms for w in waits),
                "mismatches": mismatches[case.name],
                "answers_compared": args.requests * args.repeats,
                "alone_drift": drift[case.name],
                "samples": {
                    "seq_rps": seq,
                    "con_rps": con,
                    "max_ms": maxes,
                    "p50_ms": p50s,
                    "wait_max_ms": waits,
                    "wait_p50_ms": wait_p50s,
                    "bound_ms": bounds,
                },
            }
        )
    reference = {
        "window_ms": window_ms,
        "one_batch_ms": one_batch_ms,
        "bound_ms": bound_ms,
        "one_batch_samples_ms": [ns / 1e6 for ns in batch_ns],
    }
    return rows, reference


# ------------------------------------------------------------------ output


def verdict(met: bool) -> str:
    return "[green]MET[/green]" if met else "[red]NOT MET[/red]"


def show(
    console: Console, rows: list[dict[str, Any]], ref: dict[str, Any], args: argparse.Namespace
) -> None:
    table = Table(title=f"Throughput: {args.requests} ainvoke/invoke requests a round")
    for col in ("case", "seq req/s", "conc req/s", "conc/seq", "middle half", "pipeline calls"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for r in rows:
        calls = r["con_calls"]
        spread = f"{min(calls)}-{max(calls)}" if min(calls) != max(calls) else ""
        table.add_row(
            r["case"],
            f"{r['seq_rps']:.1f}",
            f"{r['con_rps']:.1f}",
            f"{r['ratio']:.2f}",
            f"{r['paired_p25']:.2f}-{r['paired_p75']:.2f}",
            f"{statistics.median(calls):g}" + (f" ({spread})" if spread else ""),
        )
    console.print(table)
    seq_calls = sorted({c for r in rows for c in r["seq_calls"]})
    console.print(
        f"  [dim]medians over {args.repeats} repeats; middle half: of conc/seq paired repeat "
        f"by repeat; pipeline calls: chat.pipeline_calls after - before a concurrent round "
        f"(median, range); sequential rounds made {seq_calls} calls[/dim]"
    )
    console.print()

    window, one, bound = ref["window_ms"], ref["one_batch_ms"], ref["bound_ms"]
    title = f"Wait and latency of each request of a concurrent round (window {window:g} ms"
    title += ")" if one is None else f", one batch of {args.requests} {one:.1f} ms)"
    table = Table(title=title)
    cols = (
        "case",
        "wait p50",
        "wait max",
        "wait worst",
        "bound",
        "max wait <= bound",
        "<= bare",
        "latency p50",
        "latency max",
        "mismatches",
        "alone drift",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "case" else "right")
    for r in rows:
        yes = "yes" if r["within_bound"] else "no"
        bare = "n/a" if r["rounds_within_bare"] is None else f"{r['rounds_within_bare']}"
        table.add_row(
            r["case"],
            f"{r['wait_p50_ms']:.1f}",
            f"{r['wait_max_ms']:.1f}",
            f"{r['wait_worst_ms']:.1f}",
            f"{r['bound_ms']:.1f}",
            f"{yes} ({r['rounds_within_bound']}/{args.repeats})",
            f"{bare}/{args.repeats}",
            f"{r['latency_p50_ms']:.1f}",
            f"{r['latency_max_ms']:.1f}",
            f"{r['mismatches']}/{r['answers_compared']}",
            str(r["alone_drift"]),
        )
    console.print(table)
    bare_text = "n/a (no hf_pipeline)" if bound is None else f"{bound:.1f} ms"
    console.print(
        f"  [dim]ms; wait: reaching the batcher to its batch starting; latency: call to "
        f"answer; p50, max: medians over the repeats of each round's; worst: of all rounds; "
        f"bound = window + the round's longest batch (median shown; rounds within it); "
        f"<= bare: rounds whose max wait <= window + one bare batch of "
        f"{args.requests} = {bare_text}; mismatches: concurrent answers that differ from "
        f"the same request alone[/dim]"
    )
    console.print()
    for r in rows:
        label = f"{r['case']}: conc/seq req/s >= {THROUGHPUT_TARGET:g}"
        console.print(f"  target: {label}: {r['ratio']:.2f}, {verdict(r['met'])}")
    for r in rows:
        ahead = -(-args.requests // r["max_batch_size"]) - 1
        why = f" ({ahead} batches of {r['max_batch_size']} ahead of the last)" if ahead else ""
        console.print(
            f"  target: {r['case']}: max wait <= window + one batch in every round: "
            f"{r['rounds_within_bound']}/{args.repeats}, {verdict(r['within_bound'])}{why}"
        )
    total = sum(r["mismatches"] for r in rows)
    compared = sum(r["answers_compared"] for r in rows)
    console.print(f"  same answer batched as alone: {compared - total}/{compared}")
    console.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (+1 warm-up)")
    parser.add_argument("--requests", type=int, default=32, help="requests a round")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="generation default")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[8, 32], help="max_batch_size values"
    )
    parser.add_argument(
        "--batch-wait-ms", type=float, default=None, help="the window (default: the adapter's)"
    )
    parser.add_argument("--model-dir", type=Path, help="build/reuse the tiny model here")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers")
    args = parser.parse_args()

    console = Console()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="llmrouter-batching-") as tmp:
        path = str(build_tiny_chat_model(args.model_dir or Path(tmp) / "tiny"))
        with Progress(console=console, auto_refresh=False, transient=True) as progress:
            bar = progress.add_task(
                "rounds", total=(args.repeats + 1) * len(cases(args.batch_sizes))
            )
            rows, ref = measure(args, path, lambda: progress.update(bar, advance=1, refresh=True))

    import torch
    import transformers

    console.print(
        f"[dim]tiny random GPT-2, greedy, max_new_tokens={args.max_new_tokens}; gc disabled "
        f"while timing; {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}, 1-min "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, langchain-core {langchain_core.__version__}, "
        f"llmrouter {llmrouter.__version__}[/dim]"
    )
    show(console, rows, ref, args)
    if args.json:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        payload = {"settings": settings, "reference": ref, "cases": rows}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
