"""``llmrouter report``: budgets and spend by day and model from the ledger, A/B reports,
plots; read from what earlier requests wrote, nothing called."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmrouter import load_config
from llmrouter.cli import app

FAKE = "langchain_core.language_models:FakeListChatModel"
CONFIG = f"""
models:
  a: {{factory: "{FAKE}", responses: [A], input_cost: 100, output_cost: 200}}
  b: {{factory: "{FAKE}", responses: [B]}}
routers:
  cheap: {{type: cost, models: [a], budget: {{usd: 5, per: day}}, spend_db: spend.db}}
  exp: {{type: ab, experiment: e1, variants: {{control: a, treatment: b}}, store: exp.db}}
  plain: {{type: task, default: b}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(CONFIG)
    built = load_config(path).build()
    for _ in range(2):
        built.routers["cheap"].invoke("hello")
    for i in range(4):
        built.routers["exp"].invoke(f"hi {i}", user=f"u{i}")
    built.routers["exp"].close()  # type: ignore[attr-defined]
    return path


def test_report_shows_budget_spend_by_model_and_the_experiment(config: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # FakeListChatModel reports no usage: each request is charged its estimate
    spent = load_config(config).build().routers["cheap"].budget_status()[0].spent_usd  # type: ignore[attr-defined]
    assert spent > 0
    assert f"{spent:.6f}" in result.output and f"{5 - spent:.6f}" in result.output
    assert "spend by day and model" in result.output
    assert "Experiment 'e1'" in result.output and "treatment" in result.output


def test_report_writes_plots(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    result = CliRunner().invoke(app, ["report", str(config), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"cheap-spend.png", "exp-ab.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in out.iterdir())


def test_report_of_a_router_with_nothing_to_report(config: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(config), "--router", "plain"])
    assert result.exit_code == 0
    assert "nothing to report" in result.output
