"""examples/learned_routing.py runs end to end: fit on MMLU outcomes, route over llm-katan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "routellm" / "mmlu_dev.csv"


@pytest.mark.skipif(not DATA.is_file(), reason="the shared MMLU outcomes are not on this machine")
def test_the_learned_routing_example_routes_held_out_questions(tmp_path: Path) -> None:
    env = {**os.environ, "LLMROUTER_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("OPENAI_BASE_URL", None)
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "learned_routing.py"),
            "--rows",
            "150",
            "--show",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cross-validated APGR" in done.stdout
    assert "calls to GPT-4" in done.stdout and "calibrated for 30% strong calls" in done.stdout
    assert (tmp_path / "embeddings.sqlite").is_file()  # the cache went where it was told
