"""Batch jobs: many prompts through one router, concurrently, resumable from the output.

Input is JSON Lines, one request per line::

    {"id": "q1", "prompt": "Summarize ...", "task": "summarize"}
    {"id": "q2", "messages": [{"role": "user", "content": "Hello"}]}

``id`` defaults to the line number; ``task`` is optional. Output is JSON Lines,
one result per request, in the order they finish::

    {"id": "q1", "ok": true, "content": "...", "model": "small", "cost_usd": 1e-05, "route": {}}
    {"id": "q2", "ok": false, "error": "AllModelsFailedError", "message": "..."}

A result line is written as soon as its answer is back, so a job that stops
(Ctrl-C, a crash, kill -9) loses only the requests in flight: run it again with
the same output file and it asks only what has no result yet (a half-written
last line is dropped). Retries and fallbacks are the router's: a request is
sent once per run.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import (
    BaseMessage,
    HumanMessage,
    convert_to_messages,
    convert_to_openai_messages,
)

from llmrouter.errors import ConfigurationError
from llmrouter.record import RouteRecord

__all__ = [
    "BatchItem",
    "BatchOutput",
    "BatchReport",
    "read_items",
    "read_results",
    "run_batch",
]


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch."""

    id: str
    messages: list[BaseMessage]
    task: str | None = None

    def keywords(self) -> dict[str, Any]:
        """The router call's keywords: ``task`` when the request names one."""
        return {"task": self.task} if self.task else {}

    def to_request(self) -> dict[str, Any]:
        """This request as a JSON object of the input format (messages in OpenAI's
        shape): what a Celery task carries. `from_request` reads it back."""
        request: dict[str, Any] = {
            "id": self.id,
            "messages": convert_to_openai_messages(self.messages),
        }
        if self.task:
            request["task"] = self.task
        return request

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> BatchItem:
        """A request of the input format (one line of a requests file, parsed).

        Raises:
            ConfigurationError: not a request (see `read_items`).
        """
        if not isinstance(request, dict) or "id" not in request:
            raise ConfigurationError(f"expected a request object with an id, got {request!r:.80}")
        return _item(request, str(request["id"]), f"request {request['id']!r}")


@dataclass
class BatchReport:
    """What one run did."""

    answered: int = 0
    failed: int = 0
    skipped: int = 0
    """Requests that already had a result in the output file."""
    cost_usd: float = 0.0
    """What the answered requests cost (as budgets are charged)."""
    failures: dict[str, str] = field(default_factory=dict)
    """Error class per failed request id."""

    @property
    def asked(self) -> int:
        """Requests sent in this run (answered or failed)."""
        return self.answered + self.failed


def read_items(path: str | Path) -> list[BatchItem]:
    """The requests of a JSON Lines file.

    Raises:
        ConfigurationError: a line that is not a JSON object with ``prompt`` or
            ``messages``, or an ``id`` given twice (named with its line number).
    """
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(data, dict):
                raise ConfigurationError(f"{where}: expected a JSON object, got {data!r:.60}")
            item = _item(data, str(number), where)
            if item.id in seen:
                raise ConfigurationError(
                    f"{where}: id {item.id!r} is also on line {seen[item.id]}; "
                    "give each request its own id (results are matched by it)"
                )
            seen[item.id] = number
            items.append(item)
    return items


def _item(data: dict[str, Any], line: str, where: str) -> BatchItem:
    unknown = set(data) - {"id", "prompt", "messages", "task"}
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown keys {sorted(unknown)}; a request has id, prompt or messages, "
            "and task"
        )
    task = data.get("task")
    if task is not None and not isinstance(task, str):
        raise ConfigurationError(f"{where}: task must be a string, got {task!r}")
    identifier = str(data.get("id", line))
    if isinstance(data.get("prompt"), str) and "messages" not in data:
        return BatchItem(identifier, [HumanMessage(data["prompt"])], task)
    if isinstance(data.get("messages"), list) and "prompt" not in data:
        try:
            messages = convert_to_messages(data["messages"])
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise ConfigurationError(f"{where}: messages: {exc}") from None
        if messages:
            return BatchItem(identifier, messages, task)
    raise ConfigurationError(
        f"{where}: give either prompt (a string) or messages (a non-empty list of "
        '{"role": ..., "content": ...}), not both'
    )


def read_results(path: str | Path, *, repair: bool = False) -> dict[str, dict[str, Any]]:
    """The results already in an output file, by id (the last line of an id wins).

    A last line cut short by a crash is ignored, and with ``repair`` cut off the
    file, so that new results start on a line of their own.
    """
    results: dict[str, dict[str, Any]] = {}
    if not os.path.exists(path):
        return results
    with open(path, "rb") as file:
        raw = file.read()
    good = 0  # bytes up to the end of the last complete line
    for line in raw.splitlines(keepends=True):
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not line.endswith(b"\n") or not isinstance(data, dict) or "id" not in data:
            if good + len(line) == len(raw):  # only the last line may be cut short
                break
            number = raw[:good].count(b"\n") + 1
            raise ConfigurationError(
                f"{path}: line {number} is not a result; is this the output of another job?"
            )
        results[str(data["id"])] = data
        good += len(line)
    if repair and good < len(raw):
        with open(path, "r+b") as file:
            file.truncate(good)
    return results


def _drop_failures(path: Path, results: dict[str, dict[str, Any]]) -> None:
    """Rewrite the output without its failed results (atomically: a temporary file
    renamed over it), so that they are asked again."""
    kept = [r for r in results.values() if r.get("ok")]
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        for result in kept:
            file.write(json.dumps(result, ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def result_line(item: BatchItem, outcome: Any) -> dict[str, Any]:
    """The output line of ``item``: from the router's answer, or the exception raised."""
    if isinstance(outcome, BaseException):
        return {
            "id": item.id,
            "ok": False,
            "error": type(outcome).__name__,
            "message": str(outcome)[:2000],
        }
    route: dict[str, Any] = outcome.response_metadata.get("route") or {}
    cost = RouteRecord.model_validate(route).total_cost()[0] if route else 0.0
    return {
        "id": item.id,
        "ok": True,
        "content": outcome.content,
        "model": route.get("model"),
        "cost_usd": cost,
        "route": route,
    }


class BatchOutput:
    """The output file of a job: which requests still need a result, and each new
    result appended (and flushed) as it comes. Shared by `run_batch` and the Celery
    runner, so both resume the same way.

    Use it as a context manager around the sending::

        with BatchOutput(out, items, retry_failed=False) as output:
            for item in output.todo:
                output.write(item, outcome)   # an AIMessage or the exception raised
    """

    def __init__(
        self,
        out: str | Path,
        items: Iterable[BatchItem],
        *,
        retry_failed: bool = False,
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = Path(out)
        done = read_results(self.path, repair=True)
        if retry_failed and any(not r.get("ok") for r in done.values()):
            _drop_failures(self.path, done)
            done = {k: r for k, r in done.items() if r.get("ok")}
        self.report = BatchReport()
        self.todo: list[BatchItem] = []
        for item in items:
            if item.id in done:
                self.report.skipped += 1
            else:
                self.todo.append(item)
        self._on_result = on_result
        self._file: Any = None

    def __enter__(self) -> BatchOutput:
        self._file = open(self.path, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc_info: object) -> None:
        file, self._file = self._file, None
        with file:
            file.flush()
            os.fsync(file.fileno())

    def write(self, item: BatchItem, outcome: Any) -> dict[str, Any]:
        """Append the result of ``item``: ``outcome`` is the router's answer, the
        exception it raised, or a result dict already made (by a worker)."""
        result = outcome if isinstance(outcome, dict) else result_line(item, outcome)
        self._file.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
        self._file.flush()  # in the OS's hands: a killed job keeps it
        if result["ok"]:
            self.report.answered += 1
            self.report.cost_usd += float(result.get("cost_usd") or 0.0)
        else:
            self.report.failed += 1
            self.report.failures[item.id] = str(result.get("error"))
        if self._on_result is not None:
            self._on_result(result)
        return result


async def run_batch(
    router: Any,
    items: Iterable[BatchItem],
    out: str | Path,
    *,
    concurrency: int = 8,
    retry_failed: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> BatchReport:
    """Send each of ``items`` without a result in ``out`` to ``router`` (``ainvoke``),
    at most ``concurrency`` at a time, appending each result to ``out`` as it comes.

    ``retry_failed`` asks again the requests whose result in ``out`` is a failure.
    ``on_result`` is called with each new result (e.g. to advance a progress bar).

    Examples:
        >>> import asyncio, os, tempfile
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from llmrouter import ModelRouter, ModelSpec
        >>> router = ModelRouter(
        ...     models=[ModelSpec(name="m", model=FakeListChatModel(responses=["ok"]))],
        ...     default="m")
        >>> items = [BatchItem("a", [HumanMessage("hi")]), BatchItem("b", [HumanMessage("yo")])]
        >>> out = os.path.join(tempfile.mkdtemp(), "results.jsonl")
        >>> asyncio.run(run_batch(router, items, out)).answered
        2
        >>> asyncio.run(run_batch(router, items, out)).skipped  # resumed: nothing left
        2
    """
    check_concurrency(concurrency)
    gate = asyncio.Semaphore(concurrency)
    with BatchOutput(out, items, retry_failed=retry_failed, on_result=on_result) as output:

        async def one(item: BatchItem) -> None:
            async with gate:
                try:
                    outcome: Any = await router.ainvoke(item.messages, **item.keywords())
                except Exception as exc:  # recorded in the output; the job goes on
                    outcome = exc
            output.write(item, outcome)

        await asyncio.gather(*(one(item) for item in output.todo))
    return output.report


def check_concurrency(concurrency: int) -> None:
    """Refuse a concurrency below 1 (`ConfigurationError`)."""
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, not {concurrency}")
