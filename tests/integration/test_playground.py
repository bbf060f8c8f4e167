"""The web playground in a real headless browser (Debian's Chromium, driven by
Playwright): chat with a router, see each answer's route, the session cost, and
the cost and A/B reports with their plots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _fixtures.serve import ServedApp, serve_app
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from llmrouter import ABRouter, Budget, CostAwareRouter, ModelSpec
from llmrouter.serve import ApiKey, ServeSettings, create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it)"
)
KEY = "sk-playground-0123456789"
# As the machine notes say: without these, Chromium keeps trying the (closed) network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def answers(*texts: str) -> Iterator[AIMessage]:
    while True:
        for text in texts:
            yield AIMessage(text)


def spec(name: str, *texts: str, **prices: float) -> ModelSpec:
    return ModelSpec(name=name, model=GenericFakeChatModel(messages=answers(*texts)), **prices)


@pytest.fixture(scope="module")
def playground(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    folder = tmp_path_factory.mktemp("playground")
    cost = CostAwareRouter(
        models=[spec("small-model", "Routing picks the cheapest model that fits.",
                     input_cost=20, output_cost=40)],
        budget=Budget(usd=2.0, per="day"),
        spend_db=folder / "spend.db",
        name="support-router",
    )  # fmt: skip
    ab = ABRouter(
        variants={"control": spec("old", "old answer"), "candidate": spec("new", "new answer")},
        experiment="try-new",
        store=folder / "ab.db",
        name="experiment",
    )
    for i in range(6):
        ab.invoke(f"warm up {i}", user=f"user-{i}")
    settings = ServeSettings(keys=[ApiKey(key=KEY, name="browser")])
    with serve_app(create_app({"support-router": cost, "experiment": ab}, {}, settings)) as served:
        yield served
    ab.close()


@pytest.fixture(scope="module")
def page(playground: ServedApp) -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 820})
        page.goto(playground.url + "/")
        page.fill("#key", KEY)
        page.dispatch_event("#key", "change")
        page.wait_for_function("document.querySelectorAll('#router option').length === 2")
        yield page
        browser.close()


def test_a_chat_shows_the_answer_its_route_and_the_session_cost(page: Any) -> None:
    page.select_option("#router", "support-router")
    page.fill("#prompt", "How does routing save money?")
    page.click("#send")
    page.wait_for_selector("[data-testid=route]")
    assert page.inner_text(".message.assistant") == "Routing picks the cheapest model that fits."
    route = page.inner_text("[data-testid=route]")
    assert "small-model" in route and "cheapest eligible model" in route
    assert "tokens not reported by the model" in route  # the fake reports no usage
    cost = float(page.inner_text("#session-cost").lstrip("$"))
    assert cost > 0  # charged at the model's prices (the estimate: the fake reports no usage)
    assert page.inner_text("#session-requests") == "1"


def test_the_reports_show_budget_spend_and_the_experiment_with_plots(
    page: Any, tmp_path: Path
) -> None:
    page.click("#reports-button")
    page.wait_for_selector("#reports img.plot >> nth=1")
    text = page.inner_text("#reports")
    assert "$2.00 per day" in text and "Experiment 'try-new'" in text
    sizes = page.eval_on_selector_all(
        "#reports img.plot", "imgs => imgs.map(i => [i.naturalWidth, i.complete])"
    )
    assert len(sizes) == 2 and all(width > 100 and done for width, done in sizes)
    shot = Path(os.environ.get("LLMROUTER_SCREENSHOT_DIR", tmp_path)) / "playground.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000


def test_a_wrong_key_is_shown_not_swallowed(page: Any) -> None:
    page.fill("#key", "sk-wrong-key-000000")
    page.fill("#prompt", "hello?")
    page.click("#send")
    page.wait_for_selector(".message.error")
    assert "401" in page.inner_text(".message.error")
    page.fill("#key", KEY)
