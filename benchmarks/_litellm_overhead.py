"""LiteLLM's Router overhead, for ``overhead.py`` (runs in ``benchmarks/.venv-litellm``).

What it measures
    Wall time per call (``time.perf_counter_ns``) of LiteLLM's ``Router`` and of a plain
    ``litellm`` call, both answering from ``mock_response`` (no HTTP at all):

    * ``litellm.completion``  ``litellm.completion(model="openai/<group>", messages=...,
                              mock_response=<group>)``: the baseline, like the direct model
                              call in ``overhead.py``;
    * ``LiteLLM Router``      ``Router.completion(model=<group>, messages=...,
                              mock_response=<group>)`` over three model groups (``coder``,
                              ``summarizer``, ``chat``), one ``mock_response`` deployment
                              each, the group cycling with the task as in ``overhead.py``.

    LiteLLM-router-added overhead = p50(Router) - p50(litellm.completion). ``acompletion``
    is measured the same way on one asyncio loop. The two are interleaved round-robin (the
    first one alternates), after a warm-up, with the garbage collector disabled while
    timing (collected between chunks).

    No network: answers come from ``mock_response``; ``LITELLM_LOCAL_MODEL_COST_MAP=True``
    keeps LiteLLM from fetching its cost map; telemetry is off; and every socket connect and
    DNS lookup in this process is refused and counted (``network_attempts`` in the output,
    expected empty).

How to run
    Usually through ``python benchmarks/overhead.py --litellm``, which creates the venv
    (``pip install litellm``; LiteLLM is no dependency of llmrouter) and interleaves this
    script's chunks with its own. By hand, once the venv exists::

        benchmarks/.venv-litellm/bin/python benchmarks/_litellm_overhead.py --iterations 1000

    prints one JSON object: p50/p90 per call and the router-added p50, per mode. With
    ``--serve`` it first prints ``{"ready": ...}`` (or ``{"error": ...}``), then reads one
    command a line on stdin -- ``{"mode": "invoke" | "ainvoke", "rounds": n, "timed": bool}``
    -- answers each with ``{"done": n}``, and prints the result object at end of input.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

GROUPS = ("coder", "summarizer", "chat")  # overhead.py's models, cycled like its tasks
MESSAGES = [{"role": "user", "content": "Write quicksort in Python"}]
API_KEY = "sk-mock"  # never sent anywhere: mock_response answers locally
BASELINE = {"invoke": "litellm.completion", "ainvoke": "litellm.acompletion"}
ROUTER = {"invoke": "LiteLLM Router", "ainvoke": "LiteLLM Router"}

network_attempts: list[str] = []


def refuse_network() -> None:
    """Refuse (and record) every outbound connection and DNS lookup from here on."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def blocked(what: str) -> OSError:
        network_attempts.append(what)
        return OSError(f"network access refused by the benchmark: {what}")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family == getattr(socket, "AF_UNIX", None):
            return real_connect(self, address)
        raise blocked(f"connect {address!r}")

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family == getattr(socket, "AF_UNIX", None):
            return real_connect_ex(self, address)
        raise blocked(f"connect {address!r}")

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        raise blocked(f"getaddrinfo {host!r}:{port!r}")

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


class Bench:
    """The two contenders, their samples, and a round counter that survives chunks."""

    def __init__(self) -> None:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # read before the import
        os.environ.setdefault("LITELLM_TELEMETRY", "False")  # older releases read this
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        import litellm

        litellm.suppress_debug_info = True
        if hasattr(litellm, "telemetry"):  # removed in recent releases; off where present
            litellm.telemetry = False
        self.litellm = litellm
        self.router = litellm.Router(
            model_list=[
                {
                    "model_name": group,
                    "litellm_params": {
                        "model": f"openai/{group}",
                        "api_key": API_KEY,
                        "mock_response": group,
                    },
                }
                for group in GROUPS
            ]
        )
        self.samples: dict[str, dict[str, list[int]]] = {
            mode: {BASELINE[mode]: [], ROUTER[mode]: []} for mode in BASELINE
        }
        self.index = {mode: 0 for mode in BASELINE}
        self.loop = asyncio.new_event_loop()

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return version("litellm")

    def sync_calls(self) -> dict[str, Callable[[str], Any]]:
        lt, router = self.litellm, self.router
        return {
            BASELINE["invoke"]: lambda g: lt.completion(
                model=f"openai/{g}", messages=MESSAGES, api_key=API_KEY, mock_response=g
            ),
            ROUTER["invoke"]: lambda g: router.completion(
                model=g, messages=MESSAGES, mock_response=g
            ),
        }

    def async_calls(self) -> dict[str, Callable[[str], Awaitable[Any]]]:
        lt, router = self.litellm, self.router
        return {
            BASELINE["ainvoke"]: lambda g: lt.acompletion(
                model=f"openai/{g}", messages=MESSAGES, api_key=API_KEY, mock_response=g
            ),
            ROUTER["ainvoke"]: lambda g: router.acompletion(
                model=g, messages=MESSAGES, mock_response=g
            ),
        }

    def check(self) -> None:
        """Each contender answers with the group's mock response, sync and async."""
        for group in GROUPS:
            answers = [call(group) for call in self.sync_calls().values()]
            answers += [self.loop.run_until_complete(c(group)) for c in self.async_calls().values()]
            got = [a.choices[0].message.content for a in answers]
            if got != [group] * len(got):
                raise RuntimeError(f"LiteLLM answered {got}, wanted {group!r}")

    def run(self, mode: str, rounds: int, timed: bool) -> None:
        """``rounds`` interleaved rounds of ``mode``; samples kept only if ``timed``."""
        gc.collect()
        gc.disable()
        try:
            if mode == "invoke":
                self._sync(rounds, timed)
            else:
                self.loop.run_until_complete(self._async(rounds, timed))
        finally:
            gc.enable()
        gc.collect()

    def _order(self, names: list[str], mode: str) -> list[str]:
        i = self.index[mode]
        return names if i % 2 == 0 else names[::-1]

    def _sync(self, rounds: int, timed: bool) -> None:
        calls, samples = self.sync_calls(), self.samples["invoke"]
        for _ in range(rounds):
            group = GROUPS[self.index["invoke"] % len(GROUPS)]
            for name in self._order(list(calls), "invoke"):
                t0 = time.perf_counter_ns()
                calls[name](group)
                t1 = time.perf_counter_ns()
                if timed:
                    samples[name].append(t1 - t0)
            self.index["invoke"] += 1

    async def _async(self, rounds: int, timed: bool) -> None:
        calls, samples = self.async_calls(), self.samples["ainvoke"]
        for _ in range(rounds):
            group = GROUPS[self.index["ainvoke"] % len(GROUPS)]
            for name in self._order(list(calls), "ainvoke"):
                t0 = time.perf_counter_ns()
                await calls[name](group)
                t1 = time.perf_counter_ns()
                if timed:
                    samples[name].append(t1 - t0)
            self.index["ainvoke"] += 1

    def result(self) -> dict[str, Any]:
        modes: dict[str, Any] = {}
        for mode, by_name in self.samples.items():
            if not all(by_name.values()):
                continue
            rows = {name: stats(data) for name, data in by_name.items()}
            added = rows[ROUTER[mode]]["p50_us"] - rows[BASELINE[mode]]["p50_us"]
            modes[mode] = {"rows": rows, "router_added_us": round(added, 3)}
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        return {
            "litellm": self.version,
            "python": platform.python_version(),
            "network_attempts": network_attempts,
            "modes": modes,
        }


def stats(samples: list[int]) -> dict[str, float]:
    data = sorted(samples)

    def pct(q: float) -> float:  # nearest rank, microseconds
        return data[max(0, math.ceil(q * len(data)) - 1)] / 1000

    return {"p50_us": pct(0.5), "p90_us": pct(0.9), "n": len(data)}


def say(out: TextIO, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=1000, help="timed rounds per mode")
    parser.add_argument("--warmup", type=int, default=100, help="untimed rounds first")
    parser.add_argument("--serve", action="store_true", help="take chunks on stdin (see above)")
    args = parser.parse_args()

    # stdout carries our JSON only: whatever LiteLLM prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr

    refuse_network()
    try:
        bench = Bench()
        bench.check()
    except Exception as exc:  # reported to overhead.py, which then skips LiteLLM
        say(out, {"error": f"{type(exc).__name__}: {exc}", "network_attempts": network_attempts})
        raise SystemExit(1) from None

    if not args.serve:
        for mode in ("invoke", "ainvoke"):
            bench.run(mode, args.warmup, timed=False)
            bench.run(mode, args.iterations, timed=True)
        say(out, bench.result())
        return

    say(out, {"ready": True, "litellm": bench.version})
    for line in sys.stdin:
        if line.strip():
            command = json.loads(line)
            bench.run(command["mode"], int(command["rounds"]), bool(command["timed"]))
            say(out, {"done": command["rounds"]})
    say(out, bench.result())


if __name__ == "__main__":
    main()
