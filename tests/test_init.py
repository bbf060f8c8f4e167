"""The public surface: names, and an import that stays light."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel

import llmrouter
from llmrouter import ModelSpec, route_of


def test_public_names() -> None:
    for name in ("ModelSpec", "ModelRouter", "models", "route_of", "RouteRecord", "ROUTE_EVENT"):
        assert name in llmrouter.__all__ and hasattr(llmrouter, name)
    assert callable(llmrouter.models.huggingface_pipeline)
    assert callable(llmrouter.models.openai_compatible)
    assert callable(llmrouter.models.huggingface_endpoint)


def test_import_does_not_pull_heavy_or_deprecated_modules() -> None:
    code = (
        "import sys, time, json, warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "t = time.perf_counter(); import llmrouter; dt = time.perf_counter() - t\n"
        "heavy = [m for m in ('torch', 'transformers', 'langchain_community', 'openai',"
        " 'sentence_transformers', 'langchain_huggingface') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'seconds': dt}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(out.stdout)
    assert result["heavy"] == []
    print(f"import llmrouter: {result['seconds'] * 1000:.0f} ms")


DOCS = Path(__file__).resolve().parents[1] / "docs"
SUBMODULES = {"classify", "models", "resilience"}


def test_all_matches_the_documented_api_reference() -> None:
    page = (DOCS / "reference" / "index.md").read_text()
    documented = set(re.findall(r"^::: llmrouter\.(\w+)\s*$", page, flags=re.M))
    assert documented == set(llmrouter.__all__) - SUBMODULES - {"__version__"}
    for name in llmrouter.__all__:
        assert getattr(llmrouter, name) is not None, name
    assert set(dir(llmrouter)) >= set(llmrouter.__all__)


@pytest.mark.parametrize(
    "package",
    [
        "core",
        "task",
        "classify",
        "cost",
        "learn",
        "config",
        "serve",
        "ab",
        "multimodal",
        "resilience",
        "models",
        "state",
        "batch",
        "integrations.celery",
        "testing",
    ],
)
def test_every_documented_subpackage_has_a_reference_page_and_all(package: str) -> None:
    page = (DOCS / "reference" / f"{package}.md").read_text()
    assert f"::: llmrouter.{package}" in page
    module = importlib.import_module(f"llmrouter.{package}")
    assert module.__all__ and all(hasattr(module, name) for name in module.__all__)


def test_an_unknown_name_is_a_clear_attribute_error() -> None:
    with pytest.raises(
        AttributeError, match="no attribute 'ModelRuoter'; did you mean 'ModelRouter'"
    ):
        _ = llmrouter.ModelRuoter


def _example(page: str, marker: str) -> str:
    text = (DOCS / page).read_text()
    found = re.search(rf"<!-- example: {marker} -->\n```python\n(.*?)```", text, flags=re.S)
    assert found, f"{page} lost its {marker} example"
    return found.group(1)


def test_the_latency_router_example_is_short_and_works() -> None:
    code = _example("custom-router.md", "latency-router")
    lines = [
        line
        for line in code.splitlines()
        if line.strip() and not line.strip().startswith(("#", '"""'))
    ]
    assert len(lines) <= 15, f"{len(lines)} lines of code"
    namespace: dict[str, object] = {}
    exec(compile(code, "custom-router.md", "exec"), namespace)
    router_cls = namespace["LatencyRouter"]
    slow = ModelSpec(name="slow", model=_Slow(responses=["slow"] * 9, sleep=0.05))
    fast = ModelSpec(name="fast", model=_Slow(responses=["fast"] * 9, sleep=0.0))
    router = router_cls(models=[slow, fast])  # type: ignore[operator]
    first = route_of(router.invoke("hi"))  # nothing measured yet: the given order
    assert first.model == "slow" and first.reason == "lowest observed latency"
    route_of(router.invoke("hi"))  # slow measured, fast not yet: fast comes last
    assert route_of(router.invoke("hi")).model == "slow"
    router._latency.observe("fast", 0.001)
    assert route_of(router.invoke("hi")).model == "fast"


class _Slow(FakeListChatModel):
    def _call(self, *args: object, **kwargs: object) -> str:
        time.sleep(self.sleep)
        return super()._call(*args, **kwargs)  # type: ignore[arg-type]
