"""``llmrouter batch`` against llm-katan, killed with SIGKILL mid-run and run again:
every request ends with exactly one result, and no answered request is asked twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _fixtures.katan import KatanFactory


def test_a_killed_batch_resumes_and_loses_no_result(
    tmp_path: Path, katan_factory: KatanFactory
) -> None:
    slow = katan_factory(["--latency-ms", "150"])
    config = tmp_path / "router.yaml"
    config.write_text(
        f"""
models:
  echo:
    factory: openai_compatible
    model: {slow.model}
    base_url: {slow.base_url}
    api_key: {slow.api_key}
routers:
  main: {{type: task, models: [echo], default: echo}}
"""
    )
    requests = tmp_path / "in.jsonl"
    requests.write_text(
        "".join(json.dumps({"id": f"r{i}", "prompt": f"n{i}"}) + "\n" for i in range(40))
    )
    out = tmp_path / "out.jsonl"
    command = [
        str(Path(sys.executable).with_name("llmrouter")),
        "batch", str(config), str(requests), "--out", str(out), "--concurrency", "4",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    served = slow.requests_served()
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 8):
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    done_before = {json.loads(line)["id"] for line in out.read_text().splitlines() if line}
    assert 8 <= len(done_before) < 40, "killed mid-run"
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert f"{len(done_before)} already done" in second.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in results) == sorted(f"r{i}" for i in range(40))  # once each
    assert all(r["ok"] and r["content"] for r in results)
    asked = slow.requests_served() - served
    # the second run asked only what had no result; the kill cost at most the 4 in flight
    assert 40 <= asked <= 44, asked
