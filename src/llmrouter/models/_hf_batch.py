"""Coalescing concurrent generation requests on one local model into batches.

`MicroBatcher` gathers requests from threads (and from ``ainvoke``, which runs
generation in worker threads) for a few milliseconds and runs requests with the
same decoding settings as one pipeline call, bounded by a batch size, a token
budget and the model's context window, without a background thread. Requests with different
output limits or stop sequences share a batch: `Tracker` stops each row at its
own limit and stop sequences, and records what each row generated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import StopStringCriteria

__all__ = ["Generation", "MicroBatcher", "Request", "Tracker", "waiting_pool"]

_WAITERS = 64
"""Threads async callers wait in: enough for many concurrent requests to meet in
one batch (the event loop's default pool has only ``min(32, cpus + 4)``)."""
_MAX_WAITS = 10
"""A leader gathering a batch waits at most this many windows while requests keep
joining (each joining request restarts the window)."""
_MAX_GATHER_S = 0.25
"""The longest a leader waits for announced callers (rendering their prompts)."""
_RECENT_S = 60.0
"""How long the longest batch run is remembered as "one batch" (see `MicroBatcher`)."""
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
    how many tokens it generated (EOS included, padding not), and, for a batched
    request, the rows of its batch, how long it waited for the batch to start and
    how long the batch ran."""

    text: str
    ended: bool
    generated: int | None = None
    batch_size: int = 1
    queued_s: float = 0.0
    run_s: float = 0.0


class Tracker:
    """A stopping criterion that records the sequences generated so far and stops
    each row at its own output limit (``limits``) and stop sequences (``stops``).

    A row that stopped is padded by ``generate`` until every row is done; the
    tracker remembers where each row stopped, so padding never counts as output.
    Setting ``cancel`` (a stream consumer went away) stops every row.
    """

    def __init__(
        self,
        cancel: threading.Event | None = None,
        limits: Sequence[int] | None = None,
        stops: Sequence[StopStringCriteria | None] = (),
    ) -> None:
        self.cancel = cancel
        self.limits = limits
        self.stops = stops
        self.sequences: torch.Tensor | None = None
        self.steps = 0
        self.stopped: dict[int, int] = {}
        """Row -> the step at which this tracker stopped it (its output ends there)."""

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        self.sequences, self.steps = input_ids, self.steps + 1
        rows = input_ids.shape[0]
        done = [self.limits is not None and self.steps >= self.limits[row] for row in range(rows)]
        checked: dict[int, list[bool]] = {}  # each distinct criterion runs once, on every row
        for row, criterion in enumerate(self.stops):
            if criterion is not None and not done[row]:
                if id(criterion) not in checked:
                    checked[id(criterion)] = criterion(input_ids, scores).tolist()
                done[row] = checked[id(criterion)][row]
        for row in range(rows):
            if done[row]:
                self.stopped.setdefault(row, self.steps)
        stop = torch.tensor(done, dtype=torch.bool, device=input_ids.device)
        if self.cancel is not None and self.cancel.is_set():
            stop[:] = True
        return stop

    def _new_tokens(self, row: int) -> list[int]:
        assert self.sequences is not None
        new_tokens: list[int] = self.sequences[row, self.sequences.shape[1] - self.steps :].tolist()
        return new_tokens[: self.stopped.get(row, self.steps)]

    def ended(self, row: int, eos_ids: frozenset[int]) -> bool:
        """True if row ``row`` generated an end-of-sequence token."""
        if self.sequences is None:
            return True  # nothing generated at all
        return any(token in eos_ids for token in self._new_tokens(row))

    def generated(self, row: int, eos_ids: frozenset[int]) -> int:
        """Tokens row ``row`` really generated: up to its first EOS or where the
        tracker stopped it (a finished row of a batch keeps being padded until the
        longest row is done)."""
        if self.sequences is None:
            return 0
        new_tokens = self._new_tokens(row)
        for index, token in enumerate(new_tokens):
            if token in eos_ids:
                return index + 1
        return len(new_tokens)


@dataclass(eq=False)
class Request:
    prompt: str
    kwargs: dict[str, Any]
    """Decoding settings, shared by the whole batch (equal ``key``)."""
    key: Hashable
    adapter: str | None = None
    """The LoRA adapter to run with (part of ``key``: a batch has one adapter)."""
    limit: int | None = None
    """This row's output limit (``max_new_tokens``); ``None``: the settings' own."""
    stop: tuple[str, ...] = ()
    """This row's stop sequences."""
    tokens: int = 0
    """Prompt tokens: a batch stays within the model's window (``MicroBatcher(window=)``)."""
    future: Future[Generation] = field(default_factory=Future)
    arrived: float = 0.0
    started: float = 0.0


class MicroBatcher:
    """Coalesces concurrent requests into one pipeline call, without a background thread.

    The first caller that finds no leader becomes the leader: it waits for others
    to join, runs compatible pending requests together, and repeats until its own
    request is done; then it hands leadership to a waiting caller. The leader
    starts as soon as a batch is full, or when no request has joined for
    ``wait_s`` and no announced caller (`announce`: one still rendering its
    prompt) is on its way; it waits at most ``_MAX_WAITS`` windows for unannounced
    arrivals and ``_MAX_GATHER_S`` for announced ones.

    Once a batch has run, gathering also ends when the oldest pending request
    has waited ``wait_s`` plus one batch: the longest run of the last
    ``_RECENT_S`` seconds. So a request that finds room in the next batch waits
    at most the window plus one batch (the one running when it arrived, or the
    gathering it joined).

    Compatible requests have equal ``key``; a batch also keeps its longest
    prompt plus its largest output limit within ``window`` (a row may not run
    past the model's context window while the longest row finishes).
    """

    def __init__(self, run: Callable[[list[Request]], None], window: int | None = None) -> None:
        self._run = run
        self._window = window
        self._cond = threading.Condition()
        self._pending: list[Request] = []
        self._incoming = 0
        self._leading = False
        self._longest: tuple[float, float] | None = None  # (ended at, run seconds)

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
        self,
        request: Request,
        wait_s: float,
        max_batch: int,
        *,
        announced: bool = False,
        max_tokens: int | None = None,
    ) -> Generation:
        """Run ``request`` in a batch and return its row.

        Args:
            request: The prompt, its decoding settings and its own limit and stops.
            wait_s: The window: how long a leader waits for another request to join.
            max_batch: Most requests in one batch.
            announced: The caller called `announce` before preparing ``request``.
            max_tokens: Most padded tokens in one batch: rows times (longest prompt
                plus largest output limit). A request alone may exceed it.
        """
        request.arrived = time.monotonic()
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
                        group = self._take(max_batch, max_tokens)
                    started = time.monotonic()
                    for member in group:
                        member.started = started
                    self._run(group)
                    with self._cond:
                        self._ran(started)
                        self._cond.notify_all()
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        result = request.future.result()
        return replace(result, queued_s=max(0.0, request.started - request.arrived))

    def _gather(self, wait_s: float, max_batch: int) -> None:
        """Wait until ``max_batch`` requests are pending, or none joined for ``wait_s``
        while no announced caller is on its way (within the caps).

        The quiet window counts from the newest pending request's arrival, so a
        leader taking over after a batch starts at once with the requests that
        arrived during it (they have waited their window already).
        """
        start = time.monotonic()
        with self._cond:
            while len(self._pending) < max_batch:
                now = time.monotonic()
                if self._incoming > 0:
                    until = start + max(_MAX_GATHER_S, wait_s * _MAX_WAITS)
                else:
                    newest = max(r.arrived for r in self._pending)
                    until = min(newest + wait_s, start + wait_s * _MAX_WAITS)
                batch_s = self._one_batch_s(now)
                if batch_s is not None:
                    oldest = min(r.arrived for r in self._pending)
                    until = min(until, oldest + wait_s + batch_s)
                if now >= until:
                    return
                self._cond.wait(until - now)

    def _ran(self, started: float) -> None:
        """Remember a run: the longest of the last ``_RECENT_S`` seconds is one batch."""
        now = time.monotonic()
        run_s = now - started
        longest = self._one_batch_s(now)
        if longest is None or run_s >= longest:
            self._longest = (now, run_s)

    def _one_batch_s(self, now: float) -> float | None:
        if self._longest is None or now - self._longest[0] > _RECENT_S:
            return None
        return self._longest[1]

    def _take(self, max_batch: int, max_tokens: int | None = None) -> list[Request]:
        """The oldest request and the pending ones that can run with it, in order."""
        key = self._pending[0].key
        group: list[Request] = []
        longest = most = 0
        for request in self._pending:
            if request.key != key or len(group) == max_batch:
                continue
            tokens, limit = max(longest, request.tokens), max(most, request.limit or 0)
            if group and self._window is not None and tokens + limit > self._window:
                continue  # the batch's longest row would outrun the window
            if (
                group
                and max_tokens is not None
                and (len(group) + 1) * (tokens + limit) > max_tokens
            ):
                continue  # the padded batch would hold too many tokens
            group.append(request)
            longest, most = tokens, limit
        self._pending = [r for r in self._pending if r not in group]
        return group
