"""Typed errors. Every message says what was wrong and what to do next."""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrouter.cost._budget import BudgetStatus
    from llmrouter.record import RouteRecord


class LLMRouterError(Exception):
    """Base class of every error llmrouter raises on purpose."""


class ConfigurationError(LLMRouterError, ValueError):
    """A router or model spec was built with invalid settings.

    The message names the offending field and how to fix it.
    """


class DataError(ConfigurationError):
    """A routing-data file (prompts with each model's outcomes) cannot be used.

    The message names the file, the row and the column, and what to change.
    """


class IntegrityError(ConfigurationError):
    """A local model's files do not match ``llmrouter.lock`` (changed, missing or extra).

    ``problems`` lists each file (`llmrouter.models._lock.FileProblem`). The message
    says how to pull the model again, update the lock, or load it anyway.
    """

    def __init__(self, message: str, problems: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)
        """Each file that differs from the lock."""


class ConfigFileError(ConfigurationError):
    """A config file cannot be used: not found, not YAML, or a value is wrong.

    The message starts with ``file:line`` and names the field (e.g.
    ``routers.support.budget.usd``) and what is expected there.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str],
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        """The config file."""
        self.line = line
        """The 1-based line of the offending value, when known."""
        self.field = field or None
        """The dotted path of the offending value, e.g. ``routers.support.budget``."""
        self.problem = message
        """What is wrong, without the location."""
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The entry of ``valid`` most like ``name`` (a likely typo), or ``None``."""
    found = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return found[0] if found else None


def reject_unknown_keywords(
    what: str, given: Iterable[str], allowed: Collection[str], hint: str = ""
) -> None:
    """Raise `ConfigurationError` for keywords ``what`` does not take.

    The message names each unknown keyword with the closest valid one, so a typo
    such as ``budegt=`` cannot silently switch a setting off.

    Examples:
        >>> try:
        ...     reject_unknown_keywords("Router", ["budegt"], ["budget", "models"])
        ... except ConfigurationError as exc:
        ...     print(exc)
        Router got unknown keyword 'budegt' (did you mean 'budget'?)
    """
    unknown = [key for key in given if key not in allowed]
    if not unknown:
        return
    parts = []
    for key in unknown:
        close = closest(key, allowed)
        parts.append(f"{key!r} (did you mean {close!r}?)" if close else repr(key))
    noun = "keyword" if len(unknown) == 1 else "keywords"
    message = f"{what} got unknown {noun} {', '.join(parts)}"
    if not all("did you mean" in part for part in parts):
        message += f"; valid keywords are {sorted(allowed)}"
    raise ConfigurationError(message + (f". {hint}" if hint else ""))


class UnknownTaskError(LLMRouterError, ValueError):
    """A request asked for a task that no route serves and there is no default."""

    def __init__(self, task: str | None, known: list[str]) -> None:
        self.task = task
        self.known = known
        what = f"unknown task {task!r}" if task is not None else "no task given and none detected"
        super().__init__(
            f"{what}: known tasks are {sorted(known)}. Pass task=<one of them> "
            "(keyword, .bind(task=...) or config['metadata']['task']), or give the "
            "router a default=<model name>."
        )


class NoEligibleModelError(LLMRouterError, RuntimeError):
    """No candidate model can take this request (e.g. none supports bound tools)."""

    def __init__(self, message: str, excluded: dict[str, str] | None = None) -> None:
        self.excluded = dict(excluded or {})
        detail = "".join(f"\n  - {name}: {why}" for name, why in self.excluded.items())
        super().__init__(message + detail)


class AllModelsFailedError(LLMRouterError, RuntimeError):
    """Every candidate failed. ``record`` keeps every attempt and its error."""

    def __init__(self, record: RouteRecord, last_error: BaseException | None = None) -> None:
        self.record = record
        self.last_error = last_error
        lines = "".join(
            f"\n  - {a.model}: {a.error_type}: {a.error}" for a in record.attempts if not a.ok
        )
        super().__init__(
            f"all {len(record.attempts)} attempt(s) failed for router {record.router!r}:{lines}"
            f"\n{_next_step(record)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.record, self.last_error))


def _next_step(record: RouteRecord) -> str:
    """What to do after every attempt failed, from what the failures were."""
    failed = [a for a in record.attempts if not a.ok]
    if failed and all(a.error_type == "ConfigurationError" for a in failed):
        return "Fix the models' settings named above (paths, ids, arguments)."
    if failed and all(a.kind == "context_length" for a in failed):
        return "The prompt fits no model's context window: shorten it or add a larger model."
    return "Check the models' endpoints/credentials, or add a fallback model to the router."


class StreamInterruptedError(LLMRouterError, RuntimeError):
    """A stream failed after chunks had already been sent to the caller.

    The chunks already yielded cannot be taken back, so the router does not switch
    model silently. ``record`` holds the attempts so far.
    """

    def __init__(self, record: RouteRecord, cause: BaseException) -> None:
        self.record = record
        failed = next((a.model for a in reversed(record.attempts) if a.partial), record.model)
        super().__init__(
            f"model {failed!r} failed mid-stream after sending output "
            f"({type(cause).__name__}: {cause}). Retry the request, or use invoke() "
            "to get automatic fallback."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.record, RuntimeError(str(self))))


class InvalidRequestError(LLMRouterError, ValueError):
    """The request itself is unusable (empty, wrong type, undecodable bytes).

    Raised before any model is tried: every model would reject it.
    """


class AttemptTimeoutError(LLMRouterError, TimeoutError):
    """One attempt on one model took longer than its timeout (retryable)."""

    def __init__(self, model: str, seconds: float, what: str = "answer") -> None:
        self.model = model
        self.seconds = seconds
        super().__init__(
            f"model {model!r} gave no {what} within {seconds:g} s; raise attempt_timeout "
            "on its ModelSpec (or timeout= on the router) if it is just slow"
        )


class EmptyStreamError(LLMRouterError, ValueError):
    """A model's stream ended without a single chunk: no text, no tool call, not even
    the finish reason (LangChain's own ``stream`` raises "No generation chunks were
    returned" there). Typically a server that answered a streamed request with a
    plain JSON body. Counted as a failed attempt: not retried, the router falls back.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"model {model!r} ended its stream without sending anything; check that "
            "its server streams this kind of request (e.g. with tools), or use invoke()"
        )


class TokenLimitError(LLMRouterError, RuntimeError):
    """A model's tokens-per-minute limit has no room for a request now.

    The router then tries another replica, waits (when the wait fits the
    attempt's deadline) or falls back to the next model; the model's circuit
    breaker does not count it. You see it as the last error of an
    `AllModelsFailedError` when every model was out of room.
    """

    def __init__(self, model: str, tokens: int, wait: float, tokens_per_minute: int) -> None:
        self.model = model
        self.tokens = tokens
        self.wait = wait
        """Seconds until the tokens would fit (``inf``: more than a minute's worth)."""
        if wait == float("inf"):
            why = (
                f"needs about {tokens} tokens, more than its {tokens_per_minute} tokens per "
                "minute; shorten the request or lower max_tokens"
            )
        else:
            why = (
                f"has no room for about {tokens} tokens for {wait:.2f} s "
                f"({tokens_per_minute} tokens per minute)"
            )
        super().__init__(f"model {model!r} {why}")


class BudgetExceededError(LLMRouterError, RuntimeError):
    """A request does not fit a budget; nothing was called and nothing was spent."""

    def __init__(self, status: BudgetStatus, needed_usd: float, model: str | None) -> None:
        self.status = status
        self.needed_usd = needed_usd
        self.model = model
        self.spent_usd = status.spent_usd
        """Settled spend in the window (actual costs of finished calls)."""
        self.reserved_usd = getattr(status, "reserved_usd", 0.0)
        """Estimates reserved by calls still in flight."""
        budget = status.budget
        if budget.windowed:
            resets = datetime.fromtimestamp(status.window_end, tz=timezone.utc)
            calls = getattr(status, "open_reservations", 0)
            where = (
                f"spent ${status.spent_usd:.6f} and ${self.reserved_usd:.6f} reserved by "
                f"{calls} call{'' if calls == 1 else 's'} in flight, of "
                f"{budget.describe(status.user)}; "
                f"${max(status.remaining_usd, 0.0):.6f} left until {resets:%Y-%m-%d %H:%M} UTC"
            )
        else:
            where = f"the limit is {budget.describe(status.user)}"
        target = f" on {model!r}" if model else ""
        super().__init__(
            f"budget exceeded: this request needs an estimated ${needed_usd:.6f}{target}; "
            f"{where}. Wait for the window to reset, raise Budget(usd=...), lower max_tokens, "
            "or use on_exceeded='downgrade' with a cheaper (e.g. free local) model."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.needed_usd, self.model))


class ModalityError(InvalidRequestError):
    """The input's modality is unclear, unsupported, or has no route.

    An `InvalidRequestError` (so a ``ValueError``): raised before any model is
    tried, or by a model that needs what the message lacks (an image, a prompt).

    ``found`` describes what the input carried (e.g. ``"text, 1 image, 1 audio"``)
    and ``routes`` the routes that exist (empty when raised outside a router).
    """

    def __init__(self, message: str, *, found: str = "", routes: Sequence[str] = ()) -> None:
        self.found = found
        self.routes = list(routes)
        super().__init__(message)


class ExperimentError(LLMRouterError):
    """Base class of the errors of experiments and their stores."""


class UnknownRequestError(ExperimentError, LookupError):
    """Feedback named a request the experiment store does not know."""

    def __init__(
        self,
        request_id: str,
        experiment: str | None = None,
        found_in: str | None = None,
        *,
        hint: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.experiment = experiment
        where = f" of experiment {experiment!r}" if experiment else ""
        if hint is not None:
            pass
        elif found_in is not None:
            hint = (
                f"it belongs to experiment {found_in!r}; give the feedback to that "
                "experiment's router"
            )
        else:
            hint = (
                "pass the message the router returned (or route_of(message).request_id); "
                "if the record was never written, the store reported a write error when "
                "the request finished"
            )
        super().__init__(f"no request {request_id!r} in the store{where}: {hint}")


class StoreClosedError(ExperimentError, RuntimeError):
    """The store was closed; open a new one to keep reading or writing."""


class StateUnavailableError(LLMRouterError, ConnectionError):
    """The shared state (e.g. Redis) did not answer in time.

    Raised where that concern fails closed (budgets, by default): no call is made
    whose spend could not be reserved. Concerns that fail open (breakers, limits)
    fall back to local state and warn instead.
    """
