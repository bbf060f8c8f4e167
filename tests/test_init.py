"""The public surface: names, and an import that stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import llmrouter


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
