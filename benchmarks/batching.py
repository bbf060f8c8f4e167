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
    8 (the default) and 32, ``--batch-sizes``; the last two cases use the largest):

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
                      ``max_tokens=12, stop=["e", "a"]``), which the adapter batches
                      apart (one group at a time).

    (a, b, c) Throughput: requests/s = 32 / the round's wall time. A repeat runs every
        case's two rounds; the order of the cases rotates and which round goes first
        alternates from repeat to repeat; one untimed warm-up repeat first (it also
        starts the threads). Reported: median requests/s of each round over the
        repeats (default 7), concurrent / sequential of the medians, and the middle
        half (25th-75th percentile) of the ratios paired repeat by repeat (the noise),
        and the pipeline calls a concurrent round made (``chat.pipeline_calls`` before
        and after; median and range). Target: concurrent / sequential >= 3.
    (d) Latency of each request of a concurrent round, from its call to its answer:
        p50 and max (medians over the repeats of each round's p50 and max; ``worst``:
        the largest of all). Bound = the window + one batch, where one batch is the
        median time of one pipeline call on the 32 prompts at once
        (``chat.hf_pipeline.pipeline(prompts, batch_size=32, ...)``, the adapter's
        pipeline called directly, timed once per repeat). Target: max <= bound
        ("max wait <= window + one batch: yes/no", and in how many rounds).
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

            async def one(prompt: str, kw: dict[str, Any]) -> tuple[str, int]:
                t0 = time.perf_counter_ns()
                answer = await chat.ainvoke(prompt, **kw)
                return str(answer.content), time.perf_counter_ns() - t0

            async def run() -> tuple[int, list[tuple[str, int]]]:
                t0 = time.perf_counter_ns()
                got = await asyncio.gather(*(one(p, kw) for p, kw in reqs))
                return time.perf_counter_ns() - t0, got

            wall, got = self.loops[case.wide_loop].run_until_complete(run())
        else:
            barrier = threading.Barrier(len(reqs) + 1, timeout=120)

            def call(prompt: str, kw: dict[str, Any]) -> tuple[str, int]:
                barrier.wait()
                t0 = time.perf_counter_ns()
                answer = chat.invoke(prompt, **kw)
                return str(answer.content), time.perf_counter_ns() - t0

            futures = [self.pool.submit(call, p, kw) for p, kw in reqs]
            barrier.wait()
            t0 = time.perf_counter_ns()
            got = [f.result() for f in futures]
            wall = time.perf_counter_ns() - t0
        return Round(wall, [t for t, _ in got], [ns for _, ns in got], _calls(chat) - before)


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
        max_ms = statistics.median(maxes)
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
                "latency_max_ms": max_ms,
                "latency_worst_ms": max(maxes),
                "within_bound": None if bound_ms is None else max_ms <= bound_ms,
                "rounds_within_bound": None
                if bound_ms is None
                else sum(m <= bound_ms for m in maxes),
                "mismatches": mismatches[case.name],
                "answers_compared": args.requests * args.repeats,
                "alone_drift": drift[case.name],
                "samples": {"seq_rps": seq, "con_rps": con, "max_ms": maxes, "p50_ms": p50s},
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
    title = f"Latency of each request of a concurrent round and answers (window {window:g} ms"
    title += ")" if one is None else f", one batch of {args.requests} {one:.1f} ms)"
    table = Table(title=title)
    cols = ("case", "p50 ms", "max ms", "worst ms", "max <= bound", "mismatches", "alone drift")
    for col in cols:
        table.add_column(col, justify="left" if col == "case" else "right")
    for r in rows:
        within = "n/a"
        if r["within_bound"] is not None:
            yes = "yes" if r["within_bound"] else "no"
            within = f"{yes} ({r['rounds_within_bound']}/{args.repeats})"
        table.add_row(
            r["case"],
            f"{r['latency_p50_ms']:.1f}",
            f"{r['latency_max_ms']:.1f}",
            f"{r['latency_worst_ms']:.1f}",
            within,
            f"{r['mismatches']}/{r['answers_compared']}",
            str(r["alone_drift"]),
        )
    console.print(table)
    bound_text = "n/a (no hf_pipeline)" if bound is None else f"{bound:.1f} ms"
    console.print(
        f"  [dim]p50, max: medians over the repeats of each round's; worst: of all rounds; "
        f"bound = window + one batch = {bound_text}; (rounds within it); mismatches: "
        f"concurrent answers that differ from the same request alone[/dim]"
    )
    console.print()
    for r in rows:
        if r["mixed"]:
            continue
        label = f"{r['case']}: conc/seq req/s >= {THROUGHPUT_TARGET:g}"
        console.print(f"  target: {label}: {r['ratio']:.2f}, {verdict(r['met'])}")
    for r in rows:
        if r["within_bound"] is None or r["mixed"]:
            continue
        yes = "yes" if r["within_bound"] else "no"
        console.print(
            f"  {r['case']}: max wait <= window + one batch: {yes} "
            f"({r['latency_max_ms']:.1f} vs {bound:.1f} ms)"
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
