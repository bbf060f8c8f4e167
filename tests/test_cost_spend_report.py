"""Spend read back from a cost router's ledger: by day and model, and the plot."""

from __future__ import annotations

from pathlib import Path

from langchain_core.language_models import FakeListChatModel

from llmrouter import Budget, CostAwareRouter, ModelSpec
from llmrouter.cost._spend_report import ledger_rows, plot_spend, spend_by_day


def test_spend_by_day_sums_settled_rows_per_model_and_day() -> None:
    day = 86_400.0
    rows = [
        {"state": "settled", "at": 10 * day + 5, "usd": 0.5, "model": "a"},
        {"state": "settled", "at": 10 * day + 9, "usd": 0.25, "model": "a"},
        {"state": "reserved", "at": 10 * day + 9, "usd": 9.0, "model": "a"},
        {"state": "settled", "at": 11 * day + 1, "usd": 1.0, "model": "b"},
        {"state": "settled", "at": 2 * day, "usd": 7.0, "model": "a"},  # before `since`
    ]
    assert spend_by_day(rows, since=5 * day) == {
        "1970-01-11": {"a": 0.75},
        "1970-01-12": {"b": 1.0},
    }


def test_ledger_rows_are_the_routers_own(tmp_path: Path) -> None:
    def router(name: str) -> CostAwareRouter:
        spec = ModelSpec(name="m", model=FakeListChatModel(responses=["x"]), input_cost=10)
        budget = Budget(usd=1, per="day")
        return CostAwareRouter(models=[spec], budget=budget, spend_db=tmp_path / "s.db", name=name)

    first, second = router("first"), router("second")
    first.invoke("hi")
    first.invoke("hi again")
    second.invoke("hello")
    rows = ledger_rows(first)
    assert len(rows) == 2 and {r["scope"] for r in rows} == {"first"}
    assert all(r["state"] == "settled" and r["model"] == "m" for r in rows)


def test_plot_spend_is_a_png_with_one_bar_per_day() -> None:
    png = plot_spend("r", {"2026-12-01": {"a": 0.5}, "2026-12-02": {"a": 0.1, "b": 0.2}})
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
