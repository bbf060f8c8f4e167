"""The playground page and the report endpoints: budgets, spend and experiments of the
routers a key may use, plots as PNG."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models import FakeListChatModel

from llmrouter import ABRouter, Budget, CostAwareRouter, ModelRouter, ModelSpec
from llmrouter.serve import ApiKey, ServeSettings, create_app
from llmrouter.serve._reports import report_json

KEY, LIMITED = "sk-reports-0123456789", "sk-limited-0123456789"


def spec(name: str, **prices: float) -> ModelSpec:
    return ModelSpec(name=name, model=FakeListChatModel(responses=[name]), **prices)


@pytest.fixture
def routers(tmp_path: Path) -> Iterator[dict[str, object]]:
    cost = CostAwareRouter(
        models=[spec("m", input_cost=10)],
        budget=Budget(usd=1.0, per="day"),
        spend_db=tmp_path / "s.db",
        name="cost",
    )
    ab = ABRouter(
        variants={"a": spec("a"), "b": spec("b")},
        experiment="exp",
        store=tmp_path / "ab.db",
        name="ab",
    )
    yield {"cost": cost, "ab": ab, "plain": ModelRouter(models=[spec("p")], default="p")}
    ab.close()


@pytest.fixture
def client(routers: dict[str, object]) -> TestClient:
    keys = [ApiKey(key=KEY, name="all"), ApiKey(key=LIMITED, name="one", routers=["cost"])]
    return TestClient(create_app(routers, {}, ServeSettings(keys=keys)))  # type: ignore[arg-type]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_page_is_served_without_a_key(client: TestClient) -> None:
    for path in ("/", "/playground"):
        page = client.get(path)
        assert page.status_code == 200 and "llmrouter playground" in page.text
        assert "text/html" in page.headers["content-type"]


def test_router_report_of_a_cost_and_an_ab_router(routers: dict[str, object]) -> None:
    cost, ab = routers["cost"], routers["ab"]
    cost.invoke("hi")  # type: ignore[attr-defined]
    ab.invoke("hi", user="u1")  # type: ignore[attr-defined]
    report = report_json(cost)  # type: ignore[arg-type]
    assert report["type"] == "CostAwareRouter"
    (budget,) = report["budgets"]
    assert budget["budget"] == "$1.00 per day" and budget["spent_usd"] > 0
    (day,) = report["spend_by_day"].values()
    assert day["m"] == pytest.approx(budget["spent_usd"])
    assert "Experiment 'exp'" in report_json(ab)["experiment"]  # type: ignore[arg-type]
    assert report_json(routers["plain"]) == {  # type: ignore[arg-type]
        "type": "ModelRouter",
        "budgets": [],
        "spend_by_day": {},
    }


def test_reports_need_a_key_and_show_only_the_keys_routers(client: TestClient) -> None:
    assert client.get("/v1/llmrouter/reports").status_code == 401
    everything = client.get("/v1/llmrouter/reports", headers=auth(KEY)).json()["routers"]
    assert set(everything) == {"cost", "ab", "plain"}
    limited = client.get("/v1/llmrouter/reports", headers=auth(LIMITED)).json()["routers"]
    assert set(limited) == {"cost"}
    hidden = client.get("/v1/llmrouter/reports/ab/ab.png", headers=auth(LIMITED))
    assert hidden.status_code == 404


def test_plots_are_pngs_once_there_is_data(client: TestClient, routers: dict[str, object]) -> None:
    spend = "/v1/llmrouter/reports/cost/spend.png"
    assert client.get(spend, headers=auth(KEY)).status_code == 404  # nothing spent yet
    routers["cost"].invoke("hi")  # type: ignore[attr-defined]
    png = client.get(spend, headers=auth(KEY))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:4] == b"\x89PNG"
    routers["ab"].invoke("hi", user="u")  # type: ignore[attr-defined]
    ab = client.get("/v1/llmrouter/reports/ab/ab.png", headers=auth(KEY))
    assert ab.status_code == 200 and ab.content[:4] == b"\x89PNG"
    assert client.get("/v1/llmrouter/reports/plain/ab.png", headers=auth(KEY)).status_code == 404
    assert client.get("/v1/llmrouter/reports/cost/pie.png", headers=auth(KEY)).status_code == 404
