"""Errors as OpenAI's error object, with the status code a client can act on.

- 400 ``invalid_request_error``: a malformed body, an unknown field, a bad value,
  `InvalidRequestError`, `UnknownTaskError`, `NoEligibleModelError`, or a
  per-request budget the request alone exceeds;
- 401 ``authentication_error``: a missing or wrong API key;
- 403 ``permission_error``: a router the key may not use;
- 404 ``not_found_error``: an unknown ``model``;
- 413: a body over the size limit;
- 429 ``insufficient_quota`` with ``Retry-After``: a windowed budget refuses;
- 503 ``service_unavailable`` with ``Retry-After``: every model failed, or the
  shared state (Redis) did not answer and a budget cannot be checked.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi.responses import JSONResponse

from llmrouter.errors import (
    AllModelsFailedError,
    BudgetExceededError,
    InvalidRequestError,
    LLMRouterError,
    NoEligibleModelError,
    StateUnavailableError,
    UnknownTaskError,
)


class APIError(Exception):
    """An error the server answers with (status, OpenAI error type, message)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def from_router_error(exc: LLMRouterError) -> APIError:
    """The `APIError` of an error a router raised."""
    if isinstance(exc, BudgetExceededError):
        if not exc.status.budget.windowed:  # this request alone is too dear: retrying won't help
            return APIError(400, str(exc), code="budget_per_request")
        wait = max(exc.status.window_end - time.time(), 1.0)
        return APIError(
            429, str(exc), kind="insufficient_quota", code="budget_exceeded", retry_after=wait
        )
    if isinstance(exc, AllModelsFailedError):
        return APIError(
            503,
            str(exc),
            kind="service_unavailable",
            code="all_models_failed",
            retry_after=1.0,
        )
    if isinstance(exc, StateUnavailableError):  # budgets fail closed while it is down
        return APIError(
            503, str(exc), kind="service_unavailable", code="state_unavailable", retry_after=1.0
        )
    if isinstance(exc, UnknownTaskError):
        return APIError(400, str(exc), param="metadata.task", code="unknown_task")
    if isinstance(exc, NoEligibleModelError | InvalidRequestError):
        return APIError(400, str(exc), code=type(exc).__name__)
    return APIError(500, str(exc), kind="server_error", code=type(exc).__name__)
