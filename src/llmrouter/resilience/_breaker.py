"""Circuit breakers: skip a model that keeps failing, then test it with one request.

States: *closed* (requests flow), *open* (the model is skipped until the
cool-down ends), *half-open* (one trial request; success closes the breaker,
failure opens it again). State lives on a `BreakerBoard`: in-process by default
(shared by every router in the process, keyed by model name), or
`SQLiteBreakerBoard` to share it across processes.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmrouter._sqlite import SQLiteDatabase, database_path


@dataclass
class BreakerState:
    """One model's breaker state (plain data, so any board can store it)."""

    state: str = "closed"
    """``closed``, ``open`` or ``half_open``."""
    failures: list[float] = field(default_factory=list)
    """Times of recent failures, within the window."""
    successes: list[float] = field(default_factory=list)
    """Times of recent successes, kept only while there are recent failures (capped)."""
    opened_at: float | None = None
    trial_started: float | None = None
    opens: int = 0
    """How often the breaker has opened (lifetime)."""


class BreakerBoard(ABC):
    """Where breaker states live. Subclass to share them through another store."""

    @abstractmethod
    def update(self, name: str, change: Callable[[BreakerState], bool]) -> bool:
        """Apply ``change`` to ``name``'s state atomically; return its result."""

    @abstractmethod
    def snapshot(self) -> dict[str, BreakerState]:
        """Every known state, by model name."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every state (all breakers closed)."""

    def quiet(self, name: str) -> bool:
        """True if ``name`` is surely closed with no recent failure (a cheap check
        for the common case; boards that cannot tell cheaply say False)."""
        return False


class MemoryBreakerBoard(BreakerBoard):
    """In-process states behind one lock (the default board)."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (MemoryBreakerBoard, ())  # in-process states stay in their process

    def update(self, name: str, change: Callable[[BreakerState], bool]) -> bool:
        with self._lock:
            return change(self._states.setdefault(name, BreakerState()))

    def snapshot(self) -> dict[str, BreakerState]:
        with self._lock:
            return {k: BreakerState(**asdict(v)) for k, v in self._states.items()}

    def quiet(self, name: str) -> bool:
        state = self._states.get(name)  # a dict read needs no lock
        return state is None or (state.state == "closed" and not state.failures)

    def reset(self) -> None:
        with self._lock:
            self._states.clear()


_SCHEMA = "CREATE TABLE IF NOT EXISTS breakers (name TEXT PRIMARY KEY, state TEXT)"


class SQLiteBreakerBoard(BreakerBoard):
    """States in a SQLite file, so several processes share one view of each model.

    Examples:
        >>> import tempfile, os
        >>> board = SQLiteBreakerBoard(os.path.join(tempfile.mkdtemp(), "breakers.db"))
        >>> CircuitBreaker(board=board, failure_threshold=1).record_failure("m")
        >>> board.snapshot()["m"].state
        'open'
    """

    def __init__(self, path: str | Path) -> None:
        self.path = database_path(path, "SQLiteBreakerBoard path")
        self._db = SQLiteDatabase(self.path, _SCHEMA)

    def __reduce__(self) -> tuple[Any, ...]:
        return (SQLiteBreakerBoard, (self.path,))  # the copy opens the same file

    def update(self, name: str, change: Callable[[BreakerState], bool]) -> bool:
        with self._db.transaction() as db:
            row = db.execute("SELECT state FROM breakers WHERE name = ?", (name,)).fetchone()
            state = BreakerState(**json.loads(row[0])) if row else BreakerState()
            result = change(state)
            db.execute(
                "INSERT OR REPLACE INTO breakers (name, state) VALUES (?, ?)",
                (name, json.dumps(asdict(state))),
            )
        return result

    def snapshot(self) -> dict[str, BreakerState]:
        rows = self._db.fetch("SELECT name, state FROM breakers")
        return {name: BreakerState(**json.loads(state)) for name, state in rows}

    def reset(self) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM breakers")

    def close(self) -> None:
        """Close the database connections."""
        self._db.close()


_MAX_SUCCESSES = 1000
"""Successes remembered per model: enough to tell any ratio down to 0.5%."""

DEFAULT_BOARD: BreakerBoard = MemoryBreakerBoard()
"""The process-wide board every `CircuitBreaker` uses unless given another."""


@dataclass(frozen=True)
class CircuitBreaker:
    """Open after ``failure_threshold`` failures within ``window`` seconds, if they
    are at least ``min_failure_ratio`` of the requests answered in that time; stay
    open ``cooldown`` seconds; then let one trial request through (half-open).

    The ratio keeps a busy but merely degraded model in service: at 100 requests a
    second, 0.2% of failures would otherwise open the breaker every 30 s.

    Only failures that say something about the model count (connection errors,
    timeouts, 429/5xx, 401/403/404), not a request's own fault (400, context
    length).

    Examples:
        >>> breaker = CircuitBreaker(failure_threshold=2, window=60, cooldown=30,
        ...                          board=MemoryBreakerBoard())
        >>> breaker.record_failure("m", now=0.0); breaker.allow("m", now=1.0)
        True
        >>> breaker.record_failure("m", now=1.0); breaker.allow("m", now=2.0)
        False
        >>> breaker.allow("m", now=31.0), breaker.allow("m", now=31.5)  # one trial
        (True, False)
        >>> breaker.record_success("m", now=32.0); breaker.state("m")
        'closed'
    """

    failure_threshold: int = 5
    window: float = 30.0
    cooldown: float = 15.0
    min_failure_ratio: float = 0.5
    board: BreakerBoard = field(default=DEFAULT_BOARD, compare=False)

    def __post_init__(self) -> None:
        if (
            self.failure_threshold < 1
            or self.window <= 0
            or self.cooldown <= 0
            or not 0 < self.min_failure_ratio <= 1
        ):
            raise ValueError(
                "CircuitBreaker needs failure_threshold >= 1, window > 0, cooldown > 0 "
                "and 0 < min_failure_ratio <= 1"
            )

    def allow(self, name: str, *, now: float | None = None) -> bool:
        """May a request go to ``name`` now? (In half-open: only the one trial.)"""
        if self.board.quiet(name):
            return True
        at = time.time() if now is None else now

        def change(st: BreakerState) -> bool:
            if (
                st.state == "open"
                and st.opened_at is not None
                and at - st.opened_at >= self.cooldown
            ):
                st.state, st.trial_started = "half_open", None
            if st.state == "half_open":
                # one trial at a time; a trial that never reported expires after a cool-down
                if st.trial_started is None or at - st.trial_started >= self.cooldown:
                    st.trial_started = at
                    return True
                return False
            return st.state == "closed"

        return self.board.update(name, change)

    def record_success(self, name: str, *, now: float | None = None) -> None:
        """A request to ``name`` succeeded: a half-open breaker closes."""
        if self.board.quiet(name):
            return
        at = time.time() if now is None else now

        def change(st: BreakerState) -> bool:
            if st.state == "half_open":  # an open breaker waits out its cool-down
                st.state, st.failures, st.opened_at, st.trial_started = "closed", [], None, None
                st.successes = []
            elif st.failures:  # only the ratio needs them: kept while failures are recent
                st.successes = [t for t in st.successes[-_MAX_SUCCESSES:] if at - t < self.window]
                st.successes.append(at)
            return True

        self.board.update(name, change)

    def record_failure(self, name: str, *, now: float | None = None) -> None:
        """A request to ``name`` failed in a way that counts against the model."""
        at = time.time() if now is None else now

        def change(st: BreakerState) -> bool:
            if st.state == "half_open":
                st.state, st.opened_at, st.trial_started = "open", at, None
                st.opens += 1
                return True
            st.failures = [t for t in st.failures if at - t < self.window] + [at]
            st.successes = [t for t in st.successes if at - t < self.window]
            failed = len(st.failures)
            if (
                st.state == "closed"
                and failed >= self.failure_threshold
                and failed >= self.min_failure_ratio * (failed + len(st.successes))
            ):
                st.state, st.opened_at, st.failures, st.successes = "open", at, [], []
                st.opens += 1
            return True

        self.board.update(name, change)

    def state(self, name: str) -> str:
        """``closed``, ``open`` or ``half_open`` (as last recorded)."""
        snap = self.board.snapshot().get(name)
        return snap.state if snap else "closed"

    def health(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """State, recent failures and time left open, per model name."""
        now, snap = time.time(), self.board.snapshot()
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            st = snap.get(name, BreakerState())
            left = 0.0
            if st.state == "open" and st.opened_at is not None:
                left = max(self.cooldown - (now - st.opened_at), 0.0)
            recent = [t for t in st.failures if now - t < self.window]
            out[name] = {
                "state": st.state,
                "recent_failures": len(recent),
                "open_for_s": round(left, 3),
                "opens": st.opens,
            }
        return out
