"""One process-wide registry of loaded local models, with a memory budget.

Every local backend (text generation, captioning, speech, images, embeddings)
loads through `ModelRegistry.get` or `ModelRegistry.using`: one load per
(kind, model, settings), shared by every adapter and router in the process.
With a budget (bytes and/or a count of models), the least recently used idle
models are unloaded when a load or a release goes over it, and load again on
their next use. A model in use (inside `using`) is never unloaded under a
caller; it goes when released, if the budget still asks for it.

The budget starts from ``LLMROUTER_MODEL_MEMORY`` (``"6GiB"``, ``"500MB"``,
bytes) and ``LLMROUTER_MAX_MODELS`` when they are set; `set_memory_budget`
changes it.
"""

from __future__ import annotations

import gc
import os
import re
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from llmrouter.errors import ConfigurationError
from llmrouter.models._memory import model_bytes

__all__ = [
    "LoadedModel",
    "ModelRegistry",
    "loaded_models",
    "parse_bytes",
    "registry",
    "set_memory_budget",
    "unload_models",
]

T = TypeVar("T")

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(value: int | str) -> int:
    """A memory size in bytes, from an integer or a text such as ``"6GiB"`` or ``"500 MB"``.

    Raises:
        ConfigurationError: not a size >= 0 with a known unit.

    Examples:
        >>> parse_bytes("1.5 GiB"), parse_bytes("500MB"), parse_bytes(1024)
        (1610612736, 500000000, 1024)
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    unit = match.group(2).lower() if match else ""
    if match is None or isinstance(value, bool) or unit not in _UNITS:
        raise ConfigurationError(
            f"memory size {value!r} is not understood: give bytes (an integer) or a "
            "number with a unit such as '500MB', '6GiB' (units: B, KB, MB, GB, TB, "
            "KiB, MiB, GiB, TiB)"
        )
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class LoadedModel:
    """One model in the registry, as `loaded_models` lists it."""

    name: str
    """``kind:model_id``, e.g. ``text-generation:Qwen/Qwen2.5-0.5B-Instruct``."""
    bytes: int
    """Tensor memory it holds (weights and buffers, shared storage counted once)."""
    in_use: int
    """Calls running on it now."""
    idle_s: float
    """Seconds since it was last used."""
    loads: int
    """Times it was loaded in this process (more than 1: unloaded and loaded again)."""


@dataclass(eq=False)
class _Entry:
    name: str
    value: Any
    bytes: int
    last_used: float = field(default_factory=time.monotonic)
    in_use: int = 0


class ModelRegistry:
    """Loaded models by key, least recently used first, within a memory budget.

    Examples:
        >>> reg = ModelRegistry(max_models=1)
        >>> reg.get("demo", "a", (), lambda: "model A")
        'model A'
        >>> reg.get("demo", "b", (), lambda: "model B")  # over the budget: "a" goes
        'model B'
        >>> [m.name for m in reg.loaded()]
        ['demo:b']
    """

    def __init__(self, max_bytes: int | str | None = None, max_models: int | None = None):
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._loads: dict[Hashable, int] = {}
        self._max_bytes: int | None = None
        self._max_models: int | None = None
        self.set_budget(max_bytes, max_models)

    # ------------------------------------------------------------------ budget

    @property
    def budget(self) -> tuple[int | None, int | None]:
        """``(max_bytes, max_models)``; ``None`` is no limit."""
        return self._max_bytes, self._max_models

    def set_budget(
        self, max_bytes: int | str | None = None, max_models: int | None = None
    ) -> list[str]:
        """Set the budget (``None``: no limit) and unload what no longer fits.

        Returns the names of the models unloaded now.

        Raises:
            ConfigurationError: a size that is not understood, or ``max_models < 1``.
        """
        limit = None if max_bytes is None else parse_bytes(max_bytes)
        if max_models is not None and (
            isinstance(max_models, bool) or not isinstance(max_models, int) or max_models < 1
        ):
            raise ConfigurationError(f"max_models must be an integer >= 1, got {max_models!r}")
        with self._lock:
            self._max_bytes, self._max_models = limit, max_models
            gone = self._evict(room=0)
        return _release_memory(gone)

    # ------------------------------------------------------------------ loading

    def get(
        self,
        kind: str,
        model_id: str,
        settings: Hashable,
        load: Callable[[], T],
        *,
        estimate: int | Callable[[], int] = 0,
    ) -> T:
        """The loaded model for (kind, model id, settings), calling ``load`` only when
        it is not loaded. ``estimate``: bytes it will take (its weight files), or a
        function computing them when a load is due, so that room is made before
        loading rather than after."""
        entry = self._acquire(kind, model_id, settings, load, estimate, lease=False)
        return entry.value  # type: ignore[no-any-return]

    @contextmanager
    def using(
        self,
        kind: str,
        model_id: str,
        settings: Hashable,
        load: Callable[[], T],
        *,
        estimate: int | Callable[[], int] = 0,
    ) -> Iterator[T]:
        """Like `get`, and the model is not unloaded before the ``with`` block ends."""
        entry = self._acquire(kind, model_id, settings, load, estimate, lease=True)
        try:
            yield entry.value
        finally:
            with self._lock:
                entry.in_use -= 1
                entry.last_used = time.monotonic()
                gone = self._evict(room=0)
            _release_memory(gone)

    def is_loaded(self, kind: str, model_id: str, settings: Hashable) -> bool:
        """True if that model is loaded now (does not count as a use)."""
        with self._lock:
            return (kind, model_id, settings) in self._entries

    def refresh(self, kind: str, model_id: str, settings: Hashable) -> None:
        """Count a loaded model's bytes again (it grew: e.g. an adapter was added) and
        unload others if the budget asks for it."""
        with self._lock:
            entry = self._entries.get((kind, model_id, settings))
            if entry is None:
                return
            entry.bytes = model_bytes(entry.value)
            gone = self._evict(room=0)
        _release_memory(gone)

    def peek(self, kind: str, model_id: str, settings: Hashable) -> Any | None:
        """The loaded model, or ``None``; does not load it or count as a use."""
        with self._lock:
            entry = self._entries.get((kind, model_id, settings))
            return None if entry is None else entry.value

    def _acquire(
        self,
        kind: str,
        model_id: str,
        settings: Hashable,
        load: Callable[[], Any],
        estimate: int | Callable[[], int],
        *,
        lease: bool,
    ) -> _Entry:
        key = (kind, model_id, settings)
        with self._lock:
            entry = self._hit(key, lease)
            if entry is not None:
                return entry
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:  # per key: loading one model does not block loading another
            with self._lock:
                entry = self._hit(key, lease)
            if entry is not None:
                return entry
            room = estimate() if callable(estimate) else estimate
            with self._lock:
                gone = self._evict(room=room, extra=1)
            _release_memory(gone)
            value = load()
            entry = _Entry(f"{kind}:{model_id}", value, model_bytes(value))
            entry.in_use = int(lease)
            with self._lock:
                self._entries[key] = entry
                self._loads[key] = self._loads.get(key, 0) + 1
                self._loading.pop(key, None)
                gone = self._evict(room=0)
            _release_memory(gone)
        self._warn_if_alone_over(entry)
        return entry

    def _hit(self, key: Hashable, lease: bool) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            entry.last_used = time.monotonic()
            entry.in_use += int(lease)
        return entry

    # ------------------------------------------------------------------ unloading

    def _evict(self, room: int, extra: int = 0) -> list[_Entry]:
        """Drop least recently used idle entries until ``room`` more bytes and ``extra``
        more models fit the budget; the most recent entry always stays. Lock held."""
        gone: list[_Entry] = []
        for key in list(self._entries)[:-1] if extra == 0 else list(self._entries):
            if self._fits(room, extra):
                break
            entry = self._entries[key]
            if entry.in_use == 0:
                gone.append(self._entries.pop(key))
        return gone

    def _fits(self, room: int, extra: int) -> bool:
        count = len(self._entries) + extra
        used = sum(entry.bytes for entry in self._entries.values()) + room
        return (self._max_models is None or count <= self._max_models) and (
            self._max_bytes is None or used <= self._max_bytes
        )

    def _warn_if_alone_over(self, entry: _Entry) -> None:
        if self._max_bytes is not None and entry.bytes > self._max_bytes:
            warnings.warn(
                f"{entry.name} alone takes {entry.bytes:,} bytes, more than the model "
                f"memory budget of {self._max_bytes:,}: it stays loaded while it is the "
                "latest used; raise the budget (set_memory_budget or "
                "LLMROUTER_MODEL_MEMORY) or use a smaller or quantized model",
                ResourceWarning,
                stacklevel=4,
            )

    def unload(self, name: str | None = None) -> list[str]:
        """Unload the idle models named ``name`` (``kind:model_id`` or just the model
        id), or every idle model when ``name`` is ``None``. Returns what was unloaded;
        a model in use stays."""
        with self._lock:
            keys = [
                key
                for key, entry in self._entries.items()
                if entry.in_use == 0
                and (name is None or name in (entry.name, entry.name.partition(":")[2]))
            ]
            gone = [self._entries.pop(key) for key in keys]
        return _release_memory(gone)

    def clear(self, kind: str | None = None, *, exclude: str | None = None) -> None:
        """Forget every model (of ``kind``; not of ``exclude``), in use or not: calls
        running on one finish with it."""
        with self._lock:
            keys = [
                key
                for key in self._entries
                if kind in (None, key[0]) and key[0] != exclude  # type: ignore[index]
            ]
            gone = [self._entries.pop(key) for key in keys]
        _release_memory(gone)

    # ------------------------------------------------------------------ listing

    def loaded(self, kind: str | None = None) -> list[LoadedModel]:
        """What is loaded now, least recently used first (of ``kind`` only, if given)."""
        now = time.monotonic()
        with self._lock:
            return [
                LoadedModel(
                    entry.name,
                    entry.bytes,
                    entry.in_use,
                    round(now - entry.last_used, 3),
                    self._loads.get(key, 1),
                )
                for key, entry in self._entries.items()
                if kind is None or key[0] == kind  # type: ignore[index]
            ]


def _release_memory(gone: list[_Entry]) -> list[str]:
    """Let the unloaded models' memory go now (CPU and accelerator caches); their names."""
    names = [entry.name for entry in gone]
    if not gone:
        return names
    gone.clear()  # the last references: the collector can free them now
    gc.collect()
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return names
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return names


def _budget_from_env() -> tuple[str | None, int | None]:
    memory = os.environ.get("LLMROUTER_MODEL_MEMORY") or None
    count = os.environ.get("LLMROUTER_MAX_MODELS") or None
    if count is not None and not count.strip().isdigit():
        raise ConfigurationError(f"LLMROUTER_MAX_MODELS must be an integer >= 1, got {count!r}")
    return memory, None if count is None else int(count)


registry = ModelRegistry(*_budget_from_env())
"""The process-wide registry every local backend loads through."""


def loaded_models() -> list[LoadedModel]:
    """The local models loaded in this process, least recently used first, with their size.

    Examples:
        >>> from llmrouter.models import loaded_models
        >>> all(m.bytes >= 0 for m in loaded_models())
        True
    """
    return registry.loaded()


def set_memory_budget(
    max_bytes: int | str | None = None, max_models: int | None = None
) -> list[str]:
    """Cap the memory (bytes, or ``"6GiB"``) and/or the number of local models loaded
    at once; least recently used idle models are unloaded to stay within it and load
    again on next use. ``None`` lifts a limit. Returns the models unloaded now.

    Examples:
        >>> from llmrouter.models import set_memory_budget
        >>> unloaded = set_memory_budget("8GiB", max_models=4)  # names of models it unloaded
        >>> set_memory_budget()  # no limit again: nothing to unload
        []
    """
    return registry.set_budget(max_bytes, max_models)


def unload_models(name: str | None = None) -> list[str]:
    """Unload idle local models now: those named ``name`` (a model id, or
    ``kind:model_id``), or all. They load again on next use. Returns what was unloaded.

    Examples:
        >>> from llmrouter.models import unload_models
        >>> unload_models("no/such-model")
        []
    """
    return registry.unload(name)
