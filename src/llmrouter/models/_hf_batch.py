"""Coalescing concurrent generation requests on one local model into batches.

`MicroBatcher` gathers requests from threads (and from ``ainvoke``, which runs
generation in worker threads) for a few milliseconds and runs requests with the
same generation settings as one pipeline call, bounded by a batch size, without
a background thread. `Tracker` records what a pipeline call generated, per row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["Generation", "MicroBatcher", "Request", "Tracker", "waiting_pool"]

_WAITERS = 64
"""Threads async callers wait in: enough for many concurrent requests to meet in
one batch (the event loop's default pool has only ``min(32, cpus + 4)``)."""
_MAX_WAITS = 10
"""A leader gathering a batch waits at most this many windows while requests keep
joining (each joining request restarts the window)."""
_MAX_GATHER_S = 0.25
"""The longest a leader waits for announced callers (rendering their prompts)."""
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def waiting_pool() -> ThreadPoolExecutor:
    """The thread pool ``ainvoke`` on a local model runs in.

    Its threads mostly wait for a batch (one generation runs at a time per
    model), so it is wider than the event loop's default pool, which would let
    only a few concurrent requests reach the batcher at once.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_WAITERS, thread_name_prefix="llmrouter-local")
        return _POOL


@dataclass(frozen=True)
class Generation:
    """One row of a pipeline call: the raw new text, whether the model emitted EOS,
    and how many tokens it generated (EOS included, padding not)."""

    text: str
    ended: bool
    generated: int | None = None


class Tracker:
    """A stopping criterion that records the sequences generated so far.

    It stops nothing by itself, except when ``cancel`` is set (a stream consumer
    went away), so the generation thread ends promptly.
    """

    def __init__(self, cancel: threading.Event | None = None) -> None:
        self.cancel = cancel
        self.sequences: torch.Tensor | None = None
        self.steps = 0

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        self.sequences, self.steps = input_ids, self.steps + 1
        stop = self.cancel is not None and self.cancel.is_set()
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    def ended(self, row: int, eos_ids: frozenset[int]) -> bool:
        """True if row ``row`` generated an end-of-sequence token."""
        if self.sequences is None:
            return True  # nothing generated at all
        new_tokens = self.sequences[row, self.sequences.shape[1] - self.steps :].tolist()
        return any(token in eos_ids for token in new_tokens)

    def generated(self, row: int, eos_ids: frozenset[int]) -> int:
        """Tokens row ``row`` really generated: up to its first EOS (a finished row
        of a batch keeps being padded until the longest row is done)."""
        if self.sequences is None:
            return 0
        new_tokens = self.sequences[row, self.sequences.shape[1] - self.steps :].tolist()
        for index, token in enumerate(new_tokens):
            if token in eos_ids:
                return index + 1
        return len(new_tokens)


@dataclass(eq=False)
class Request:
    prompt: str
    kwargs: dict[str, Any]
    key: Hashable
    adapter: str | None = None
    """The LoRA adapter to run with (part of ``key``: a batch has one adapter)."""
    future: Future[Generation] = field(default_factory=Future)


class MicroBatcher:
    """Coalesces concurrent requests into one pipeline call, without a background thread.

    The first caller that finds no leader becomes the leader: it waits for others
    to join, runs compatible pending requests together, and repeats until its own
    request is done; then it hands leadership to a waiting caller. The leader
    starts as soon as a batch is full, or when no request has joined for
    ``wait_s`` and no announced caller (`announce`: one still rendering its
    prompt) is on its way; it waits at most ``_MAX_WAITS`` windows for unannounced
    arrivals and ``_MAX_GATHER_S`` for announced ones.
    """

    def __init__(self, run: Callable[[list[Request]], None]) -> None:
        self._run = run
        self._cond = threading.Condition()
        self._pending: list[Request] = []
        self._incoming = 0
        self._leading = False

    def announce(self) -> None:
        """A caller will `submit` soon (it is preparing its request): a gathering leader
        waits for it. Follow with ``submit(..., announced=True)`` or `withdraw`."""
        with self._cond:
            self._incoming += 1

    def withdraw(self) -> None:
        """An announced caller will not submit after all (its request failed early)."""
        with self._cond:
            self._incoming -= 1
            self._cond.notify_all()

    def submit(
        self, request: Request, wait_s: float, max_batch: int, *, announced: bool = False
    ) -> Generation:
        with self._cond:
            self._pending.append(request)
            self._incoming -= int(announced)
            self._cond.notify_all()  # a gathering leader counts arrivals
            while self._leading and not request.future.done():
                self._cond.wait()
            lead = not request.future.done()
            # When no leader runs, every request taken so far is done: ours is pending.
            self._leading = self._leading or lead
            pause = lead and wait_s > 0 and len(self._pending) < max_batch
        if lead:
            try:
                if pause:
                    self._gather(wait_s, max_batch)
                while not request.future.done():
                    with self._cond:
                        group = self._take(max_batch)
                    self._run(group)
                    with self._cond:
                        self._cond.notify_all()
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        return request.future.result()

    def _gather(self, wait_s: float, max_batch: int) -> None:
        """Wait until ``max_batch`` requests are pending, or none joined for ``wait_s``
        while no announced caller is on its way (within the caps)."""
        start = time.monotonic()
        quiet_until = start + wait_s
        with self._cond:
            while len(self._pending) < max_batch:
                now = time.monotonic()
                if self._incoming > 0:
                    until = start + max(_MAX_GATHER_S, wait_s * _MAX_WAITS)
                else:
                    until = min(quiet_until, start + wait_s * _MAX_WAITS)
                if now >= until:
                    return
                seen = len(self._pending)
                self._cond.wait(until - now)
                if len(self._pending) > seen:
                    quiet_until = time.monotonic() + wait_s

    def _take(self, max_batch: int) -> list[Request]:
        key = self._pending[0].key
        group = [r for r in self._pending if r.key == key][:max_batch]
        self._pending = [r for r in self._pending if r not in group]
        return group
