"""Budget accounting of calls, unit by unit (end to end through the router: test_cost_router)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from llmrouter.cost._budget import Budget, BudgetGuard
from llmrouter.cost._spending import Spending, _Call, _streaming_model
from llmrouter.record import Attempt, RouteRecord
from llmrouter.state._sqlite_ledger import SpendLedger


class Owner:
    router_name = "r"
    spend_db = None


def spending() -> Spending:
    return Spending(BudgetGuard([Budget(usd=1.0, per="day")], SpendLedger(":memory:"), scope="r"))


def chunk(text: str) -> ChatGenerationChunk:
    return ChatGenerationChunk(message=AIMessageChunk(content=text))


def record(**fields: object) -> RouteRecord:
    return RouteRecord(router="r", router_type="CostAwareRouter", **fields)  # type: ignore[arg-type]


def test_an_overrun_factor_rises_at_once_and_decays_towards_one() -> None:
    s = spending()
    assert s._learn_overrun("m", 0.01, 0.03) == []  # no open call to raise
    assert s.overrun == {"m": pytest.approx(3.0)}
    s._learn_overrun("m", 0.01, 0.01)  # back on estimate: 3 + 0.3 * (1 - 3)
    assert s.overrun == {"m": pytest.approx(2.4)}
    s._learn_overrun("m", 0.01, 0.001)
    s._learn_overrun("m", 0.0, 1.0)  # no estimate: nothing learned
    assert s.overrun["m"] < 2.4
    for _ in range(40):
        s._learn_overrun("m", 0.01, 0.001)
    assert s.overrun == {}  # at 1 again: forgotten


def test_an_overrun_raises_the_reservations_of_open_unstreamed_calls_of_that_model() -> None:
    s = spending()
    open_call, stream = _Call(Owner(), streamed=False), _Call(Owner(), streamed=True)
    for key, call in enumerate((open_call, stream)):
        call.key, call.reservation, call.reserved = key, 10 + key, 0.01
        call.estimates = {"m": 0.01, "other": 0.005}
        s.calls[key] = call
    assert s._learn_overrun("m", 0.01, 0.02) == [(10, pytest.approx(0.02))]
    assert open_call.reserved == pytest.approx(0.02) and stream.reserved == 0.01


def test_a_stream_overruns_once_its_output_costs_more_than_its_reservation() -> None:
    call = _Call(Owner(), streamed=True)
    assert not call.overran(chunk("x" * 400))  # nothing reserved: never stopped
    call.prices, call.reserved = [(0.001, 0.0001), (0.0, 0.00001)], 0.002
    assert not call.overran(chunk("x" * 36))  # 9 tokens: 0.001 + 0.0009 <= 0.002
    assert call.stopped is None
    assert call.overran(chunk("x" * 5))  # 41 chars, 11 tokens: 0.0021 on the dearest
    assert call.stopped is not None
    assert call.stopped["output_tokens"] == 11
    assert call.stopped["charged_usd"] == pytest.approx(0.0021)


def test_actual_cost_prefers_the_innermost_usage_and_adds_interrupted_streams() -> None:
    assert record(cost_usd=0.5).total_cost() == (0.5, "usage")
    assert record(estimated_cost_usd=0.2).total_cost() == (0.2, "estimate")
    nested = record(cost_usd=0.5, inner={"cost_usd": 0.4, "inner": {"cost_usd": 0.3}})
    assert nested.total_cost() == (0.3, "usage")
    interrupted = record(
        cost_usd=0.5,
        estimates={"a": 0.1, "b": 0.5},
        attempts=[Attempt(model="a", ok=False, latency_s=0.1, partial=True)],
    )
    assert interrupted.total_cost() == (
        pytest.approx(0.6),
        "usage + estimate of interrupted streams",
    )


def test_the_stopped_model_is_named_only_when_the_record_is_unambiguous() -> None:
    assert _streaming_model(record(candidates=["a", "b"])) == "a"
    partial = Attempt(model="a", ok=False, latency_s=0.1, partial=True)
    assert _streaming_model(record(candidates=["a", "b"], attempts=[partial])) == "b"
    assert _streaming_model(record(candidates=["a"], attempts=[partial])) is None
    failed = Attempt(model="a", ok=False, latency_s=0.1)
    assert _streaming_model(record(candidates=["a", "b"], attempts=[failed])) is None
