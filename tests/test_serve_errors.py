"""Router errors as OpenAI error objects: status, type, code and Retry-After."""

from __future__ import annotations

import json
import time

import pytest

from llmrouter.cost._budget import Budget, BudgetStatus
from llmrouter.errors import (
    AllModelsFailedError,
    BudgetExceededError,
    ConfigurationError,
    InvalidRequestError,
    LLMRouterError,
    ModalityError,
    NoEligibleModelError,
    StreamInterruptedError,
    UnknownTaskError,
)
from llmrouter.record import Attempt, RouteRecord
from llmrouter.serve import APIError
from llmrouter.serve._errors import from_router_error


def body_of(error: APIError) -> dict[str, object]:
    response = error.response()
    assert response.status_code == error.status
    parsed = json.loads(bytes(response.body))
    assert set(parsed) == {"error"}
    assert set(parsed["error"]) == {"message", "type", "param", "code"}
    return dict(parsed["error"])


def retry_after(error: APIError) -> str | None:
    return error.response().headers.get("retry-after")


def over_budget(per: str, window_end: float) -> BudgetExceededError:
    budget = Budget(usd=1.0, per=per)  # type: ignore[arg-type]
    status = BudgetStatus(
        budget=budget,
        user=None,
        spent_usd=1.0,
        window_start=window_end - 3600.0,
        window_end=window_end,
    )
    return BudgetExceededError(status, needed_usd=0.01, model="gpt")


def failed_record() -> RouteRecord:
    attempts = [
        Attempt(model="a", ok=False, latency_s=0.1, error_type="ConnectionError", error="down"),
        Attempt(model="b", ok=False, latency_s=0.1, error_type="TimeoutError", error="slow"),
    ]
    return RouteRecord(router="main", router_type="ModelRouter", attempts=attempts)


# ------------------------------------------------------------ APIError


def test_api_error_body_is_openai_shaped() -> None:
    error = APIError(404, "no such model", kind="not_found_error", param="model", code="x")
    assert body_of(error) == {
        "message": "no such model",
        "type": "not_found_error",
        "param": "model",
        "code": "x",
    }
    assert str(error) == "no such model"
    assert retry_after(error) is None


def test_api_error_defaults_to_an_invalid_request() -> None:
    assert body_of(APIError(400, "bad")) == {
        "message": "bad",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (2.1, "3"), (59.9, "60")]
)
def test_retry_after_is_whole_seconds_rounded_up_at_least_1(seconds: float, header: str) -> None:
    assert retry_after(APIError(503, "x", retry_after=seconds)) == header


# ------------------------------------------------------------ from_router_error


def test_a_windowed_budget_is_429_with_the_wait_until_the_window_ends() -> None:
    error = from_router_error(over_budget("day", window_end=time.time() + 99.5))
    assert error.status == 429
    body = body_of(error)
    assert body["type"] == "insufficient_quota" and body["code"] == "budget_exceeded"
    assert "budget exceeded" in str(body["message"])
    header = retry_after(error)
    assert header is not None and header.isdigit()
    assert int(header) in (99, 100)


def test_a_budget_window_already_over_retries_after_1_second() -> None:
    error = from_router_error(over_budget("hour", window_end=time.time() - 10.0))
    assert error.status == 429 and retry_after(error) == "1"


def test_a_per_request_budget_is_400_without_retry_after() -> None:
    error = from_router_error(over_budget("request", window_end=time.time()))
    assert error.status == 400
    body = body_of(error)
    assert body["type"] == "invalid_request_error" and body["code"] == "budget_per_request"
    assert retry_after(error) is None


def test_all_models_failed_is_503_with_retry_after() -> None:
    error = from_router_error(AllModelsFailedError(failed_record()))
    assert error.status == 503
    body = body_of(error)
    assert body["type"] == "service_unavailable" and body["code"] == "all_models_failed"
    assert "a: ConnectionError: down" in str(body["message"])
    assert retry_after(error) == "1"


def test_shared_state_down_is_503_with_retry_after() -> None:
    from llmrouter.errors import StateUnavailableError

    error = from_router_error(StateUnavailableError("Redis at redis://r:6379/0 did not answer"))
    assert error.status == 503
    body = body_of(error)
    assert body["type"] == "service_unavailable" and body["code"] == "state_unavailable"
    assert retry_after(error) == "1"


def test_an_unknown_task_is_400_naming_metadata_task() -> None:
    error = from_router_error(UnknownTaskError("poetry", ["code", "chat"]))
    assert error.status == 400
    body = body_of(error)
    assert body["type"] == "invalid_request_error"
    assert body["param"] == "metadata.task" and body["code"] == "unknown_task"
    assert "'poetry'" in str(body["message"])
    assert retry_after(error) is None


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (NoEligibleModelError("no model can take it", {"a": "too dear"}), "NoEligibleModelError"),
        (InvalidRequestError("the request is empty"), "InvalidRequestError"),
        (ModalityError("no route for audio"), "ModalityError"),
    ],
)
def test_request_errors_are_400(exc: LLMRouterError, code: str) -> None:
    error = from_router_error(exc)
    assert error.status == 400
    body = body_of(error)
    assert body["type"] == "invalid_request_error" and body["code"] == code
    assert body["message"] == str(exc)
    assert retry_after(error) is None


@pytest.mark.parametrize(
    "exc",
    [
        LLMRouterError("something else"),
        ConfigurationError("bad settings"),
        StreamInterruptedError(failed_record(), RuntimeError("cut")),
    ],
)
def test_other_router_errors_are_500(exc: LLMRouterError) -> None:
    error = from_router_error(exc)
    assert error.status == 500
    body = body_of(error)
    assert body["type"] == "server_error" and body["code"] == type(exc).__name__
    assert retry_after(error) is None
