"""Actual spend: `CostTracker` books every real model call once, by model, router, task, tag.

`CostTracker` is a LangChain callback handler that books each real model call
once, from the ``usage_metadata`` the model reported (streamed or not, cached
input tokens included), by model, backend, router, task and tag. `track_costs`
attaches one to every run in a ``with`` block.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook

from llmrouter.record import route_chain
from llmrouter.spec import ModelSpec

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["CallCost", "CostTracker", "UsageTotals", "track_costs"]


@dataclass(frozen=True)
class CallCost:
    """One real model call, booked once, with its reported usage and cost."""

    model: str
    """The `ModelSpec` name (for direct calls: a matching spec's name, else the backend name)."""
    backend_model: str | None
    """The backend's own model name (``response_metadata["model_name"]``)."""
    router: str | None
    """The router that made the call (the innermost, for nested routers); None if direct."""
    task: str | None
    tags: tuple[str, ...]
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    total_tokens: int
    cost_usd: float | None
    """USD at the model's prices; ``None`` when no price is known for it."""
    request_id: str | None = None


@dataclass
class UsageTotals:
    """Token usage and cost summed over calls."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    """Sum of the known costs."""
    unpriced_calls: int = 0
    """Calls with usage but no known price (not in ``cost_usd``)."""

    def add(self, call: CallCost) -> None:
        self.calls += 1
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.cached_input_tokens += call.cached_input_tokens
        self.total_tokens += call.total_tokens
        if call.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += call.cost_usd


@dataclass
class _Run:
    parent: UUID | None
    router: bool
    tags: tuple[str, ...] = ()
    task: str | None = None
    ls_model: str | None = None


@dataclass
class _Leaf:
    run: _Run
    usage: UsageMetadata
    backend: str | None


Grouping = Literal["model", "backend", "router", "task", "tag"]
_NONE_KEYS = {"router": "(direct)", "task": "(none)"}


@dataclass
class _Book:
    total: UsageTotals = field(default_factory=UsageTotals)
    groups: dict[str, dict[str, UsageTotals]] = field(
        default_factory=lambda: {g: {} for g in ("model", "backend", "router", "task", "tag")}
    )

    def add(self, call: CallCost) -> None:
        self.total.add(call)
        keys: dict[str, Sequence[str | None]] = {
            "model": [call.model],
            "backend": [call.backend_model or call.model],
            "router": [call.router],
            "task": [call.task],
            "tag": call.tags,
        }
        for group, values in keys.items():
            for value in values:
                key = value if value is not None else _NONE_KEYS[group]
                self.groups[group].setdefault(key, UsageTotals()).add(call)


class CostTracker(BaseCallbackHandler):
    """Actual token usage and USD per model, backend, router, task and tag.

    A LangChain callback handler: pass it in ``config["callbacks"]``, or use
    `track_costs` to attach one to every run in a ``with`` block. Each real
    model call is booked once from the ``usage_metadata`` it reported
    (streaming included; cached input tokens at the cached price): a router's
    own run repeats its answering model's usage and is not booked again, but
    names the model (the `ModelSpec`), router, task and price of the call it
    made. Calls made outside any router are priced by the ``models`` given
    (matched by spec name or backend model name), else left unpriced.
    Chat calls that report no usage are counted in ``unmetered_calls``.

    Token counts agree with LangChain's ``get_usage_metadata_callback`` per
    backend model name (``by_backend``); that handler also counts each routed
    call a second time under the router's answer (see ``docs/cost.md``).

    Examples:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> from langchain_core.messages import AIMessage
        >>> from llmrouter import ModelSpec
        >>> from llmrouter.cost._tracker import CostTracker
        >>> def reply():
        ...     usage = {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500}
        ...     msg = AIMessage("hi", usage_metadata=usage, response_metadata={"model_name": "m"})
        ...     return GenericFakeChatModel(messages=iter([msg]))
        >>> tracker = CostTracker(models=[ModelSpec(name="m", model=reply(),
        ...                                         input_cost=0.15, output_cost=0.6)])
        >>> _ = reply().invoke("hello", config={"callbacks": [tracker], "tags": ["demo"]})
        >>> tracker.total_tokens, round(tracker.total_cost, 6)
        (1500, 0.00045)
        >>> tracker.by_tag["demo"].calls
        1
    """

    run_inline: bool = True  # book in order, on the calling thread (no executor hop)

    def __init__(self, models: Sequence[ModelSpec] = (), *, max_calls: int = 10_000) -> None:
        super().__init__()
        self.models = list(models)
        self.unmetered_calls = 0
        self._prices: dict[str, ModelSpec] = {}
        for spec in self.models:
            self._prices.setdefault(spec.name, spec)
            backend = _backend_name(spec)
            if backend is not None:
                self._prices.setdefault(backend, spec)
        self._lock = threading.RLock()
        self._runs: dict[UUID, _Run] = {}
        self._pending: dict[UUID, list[_Leaf]] = {}
        self._book = _Book()
        self._calls: deque[CallCost] = deque(maxlen=max_calls)
        self._outer: CostTracker | None = None

    def __repr__(self) -> str:
        total = self.total
        return (
            f"CostTracker(calls={total.calls}, tokens={total.total_tokens}, "
            f"usd={total.cost_usd:.6f})"
        )

    # -------------------------------------------------------------- results

    @property
    def total(self) -> UsageTotals:
        """Everything booked so far."""
        with self._lock:
            return replace(self._book.total)

    @property
    def total_cost(self) -> float:
        """USD of every priced call so far."""
        return self.total.cost_usd

    @property
    def total_tokens(self) -> int:
        return self.total.total_tokens

    def grouped(self, by: Grouping) -> dict[str, UsageTotals]:
        """Totals per model, backend, router (``"(direct)"``: no router), task or tag."""
        with self._lock:
            return {k: replace(v) for k, v in sorted(self._book.groups[by].items())}

    @property
    def by_model(self) -> dict[str, UsageTotals]:
        """Per `ModelSpec` name (calls outside routers: matched spec or backend name)."""
        return self.grouped("model")

    @property
    def by_backend(self) -> dict[str, UsageTotals]:
        """Per backend model name, as LangChain's usage callback keys direct calls."""
        return self.grouped("backend")

    @property
    def by_router(self) -> dict[str, UsageTotals]:
        return self.grouped("router")

    @property
    def by_task(self) -> dict[str, UsageTotals]:
        return self.grouped("task")

    @property
    def by_tag(self) -> dict[str, UsageTotals]:
        """Per run tag (a call with several tags counts under each)."""
        return self.grouped("tag")

    @property
    def calls(self) -> list[CallCost]:
        """The booked calls, oldest first (the last ``max_calls``)."""
        with self._lock:
            return list(self._calls)

    def table(self, by: Grouping = "model", title: str | None = None) -> Table:
        """A rich table of the totals grouped ``by``, with a total row."""
        from rich.table import Table

        table = Table(title=title or f"LLM cost by {by}", show_footer=True)
        total = self.total
        columns = [
            (by, "total"),
            ("calls", str(total.calls)),
            ("input tok", str(total.input_tokens)),
            ("cached tok", str(total.cached_input_tokens)),
            ("output tok", str(total.output_tokens)),
            ("USD", f"{total.cost_usd:.6f}"),
        ]
        for i, (header, footer) in enumerate(columns):
            table.add_column(header, footer=footer, justify="left" if i == 0 else "right")
        for key, row in self.grouped(by).items():
            usd = f"{row.cost_usd:.6f}" + (" *" if row.unpriced_calls else "")
            table.add_row(
                key,
                str(row.calls),
                str(row.input_tokens),
                str(row.cached_input_tokens),
                str(row.output_tokens),
                usd,
            )
        if total.unpriced_calls:
            table.caption = f"* {total.unpriced_calls} call(s) had no known price"
        return table

    # -------------------------------------------------------------- callbacks

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        meta = metadata or {}
        run = _Run(
            parent=parent_run_id,
            router=meta.get("ls_provider") == "llmrouter",
            tags=tuple(tags or ()),
            task=meta.get("task") if isinstance(meta.get("task"), str) else None,
            ls_model=meta.get("ls_model_name")
            if isinstance(meta.get("ls_model_name"), str)
            else None,
        )
        with self._lock:
            self._runs[run_id] = run

    def on_llm_end(
        self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        message = _message(response)
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is None:  # its start was not seen (e.g. the handler sits on the model only)
                run = _Run(parent=parent_run_id, router=False)
            record = message.response_metadata.get("route") if message is not None else None
            if run.router or isinstance(record, dict):
                route = record if isinstance(record, dict) else None
                if self._close_router(run_id, run, route):
                    if message is None or route is not None:
                        return  # a router: its answer repeats the usage booked above
                elif route is not None:  # the models ran inside the router's run
                    if message is not None and route.get("model"):
                        self._book_answer(run, message, route)
                    return  # (a failed request's record names no model: nothing to book)
                elif message is None:
                    return
                # flagged by inherited metadata, but no route record: a model after all
            if message is None:
                return  # a completion LLM (no usage_metadata), e.g. under a chat adapter
            if not message.usage_metadata:
                self._add_unmetered()
                return
            backend = message.response_metadata.get("model_name")
            leaf = _Leaf(run, message.usage_metadata, str(backend) if backend else None)
            parent = self._runs.get(run.parent) if run.parent is not None else None
            if parent is not None and parent.router:
                self._pending.setdefault(cast(UUID, run.parent), []).append(leaf)
            else:
                self._book_leaf(leaf, None, None)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is not None and run.router:
                record: Any = getattr(error, "record", None)
                dumped = record.model_dump() if hasattr(record, "model_dump") else None
                self._close_router(run_id, run, dumped)

    # -------------------------------------------------------------- booking

    def _book_answer(self, run: _Run, message: AIMessage, route: dict[str, Any]) -> None:
        """A router's answer (its models had no runs of their own): the innermost route
        names the model, backend and router, as a leaf run would have."""
        if not message.usage_metadata:
            self._add_unmetered()
            return
        route = dict(route_chain(route)[-1])
        backend = route.get("backend_model")
        leaf = _Leaf(run, message.usage_metadata, str(backend) if backend else None)
        self._book_leaf(leaf, str(route["router"]), route, answered=True)

    def _close_router(self, run_id: UUID, run: _Run, record: dict[str, Any] | None) -> bool:
        """Book the calls a router run made as child runs (True if there were any)."""
        leaves = self._pending.pop(run_id, [])
        if not leaves:
            return False
        answer = None
        if record is not None and record.get("model") and record.get("inner") is None:
            usage = record.get("usage") or {}
            matching = [
                leaf
                for leaf in leaves
                if (leaf.usage["input_tokens"], leaf.usage["output_tokens"])
                == (usage.get("input_tokens"), usage.get("output_tokens"))
            ]
            answer = (matching or leaves)[-1]
        router = str(record["router"]) if record else run.ls_model
        for leaf in leaves:
            self._book_leaf(leaf, router, record, answered=leaf is answer)
        return True

    def _book_leaf(
        self,
        leaf: _Leaf,
        router: str | None,
        record: dict[str, Any] | None,
        *,
        answered: bool = False,
    ) -> None:
        usage = leaf.usage
        cached = int((usage.get("input_token_details") or {}).get("cache_read", 0) or 0)
        inputs, outputs = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        task = leaf.run.task
        if record is not None and record.get("task") is not None:
            task = str(record["task"])
        if answered and record is not None:
            model = str(record["model"])
            cost = record.get("cost_usd")
        else:
            spec = self._prices.get(leaf.backend or "") or self._prices.get(leaf.run.ls_model or "")
            model = spec.name if spec else (leaf.backend or leaf.run.ls_model or "unknown")
            cost = spec.cost(inputs, outputs, cached) if spec else None
        call = CallCost(
            model=model,
            backend_model=leaf.backend,
            router=router,
            task=task,
            tags=leaf.run.tags,
            input_tokens=inputs,
            output_tokens=outputs,
            cached_input_tokens=cached,
            total_tokens=int(usage.get("total_tokens", inputs + outputs)),
            cost_usd=float(cost) if cost is not None else None,
            request_id=str(record["request_id"]) if answered and record else None,
        )
        self._add(call)

    def _add(self, call: CallCost) -> None:
        with self._lock:
            self._book.add(call)
            self._calls.append(call)
        if self._outer is not None:
            self._outer._add(call)

    def _add_unmetered(self) -> None:
        with self._lock:
            self.unmetered_calls += 1
        if self._outer is not None:
            self._outer._add_unmetered()


def _message(response: LLMResult) -> AIMessage | None:
    try:
        generation = response.generations[0][0]
    except IndexError:
        return None
    if isinstance(generation, ChatGeneration) and isinstance(generation.message, AIMessage):
        return generation.message
    return None


def _backend_name(spec: ModelSpec) -> str | None:
    """The name a spec's model reports (``ls_model_name``), without calling it."""
    try:
        name = spec.chat_model._get_ls_params().get("ls_model_name")
    except Exception:  # a factory that cannot build here, or an unusual model
        return None
    return name if isinstance(name, str) else None


_active: ContextVar[CostTracker | None] = ContextVar("llmrouter_cost_tracker", default=None)
register_configure_hook(_active, inheritable=True)


@contextmanager
def track_costs(models: Sequence[ModelSpec] = ()) -> Iterator[CostTracker]:
    """Track the cost of every LangChain model call in the block.

    Nested blocks each see their own calls; an outer block also sees the inner
    block's. ``models`` prices calls made outside routers (see `CostTracker`).

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter import ModelSpec
        >>> from llmrouter.cost._tracker import track_costs
        >>> with track_costs() as usage:
        ...     _ = FakeListChatModel(responses=["hi"]).invoke("hello")
        >>> usage.total_cost, usage.unmetered_calls
        (0.0, 1)
    """
    tracker = CostTracker(models)
    tracker._outer = _active.get()
    token = _active.set(tracker)
    try:
        yield tracker
    finally:
        _active.reset(token)
