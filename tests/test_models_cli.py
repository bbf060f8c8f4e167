"""Tests for llmrouter.models._cli: ``llmrouter models pull/list/verify/remove``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmrouter.cli import app
from llmrouter.testing import add_to_hub_cache

REPO = "acme/tiny-chat"
runner = CliRunner()


@pytest.fixture
def cache(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMROUTER_LOCK", raising=False)
    folder = tmp_path / "hub"
    add_to_hub_cache(tiny_model_dir, folder, REPO)
    return folder


def models(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["models", *args])
    return result.exit_code, result.output


def test_pull_list_verify_remove(cache: Path) -> None:
    code, out = models("pull", REPO, "--cache-dir", str(cache))
    assert code == 0, out
    assert "pulled acme/tiny-chat at" in out and "sha256 recorded in llmrouter.lock" in out
    assert REPO in json.loads(Path("llmrouter.lock").read_text())["models"]

    code, out = models("list", "--cache-dir", str(cache))
    assert code == 0 and REPO in out and "locked" in out and "main" in out

    code, out = models("verify", "--cache-dir", str(cache))
    assert code == 0 and f"ok        {REPO}" in out

    blob = next((cache / "models--acme--tiny-chat" / "snapshots").iterdir()) / "tokenizer.json"
    blob.resolve().write_text(blob.read_text() + " ")
    code, out = models("verify", "--cache-dir", str(cache))
    assert code == 4, out
    assert f"mismatch  {REPO}" in out and "tokenizer.json: changed (sha256" in out
    assert "1 of 1 models differ from llmrouter.lock" in out

    code, out = models("remove", REPO, "--cache-dir", str(cache))
    assert code == 0 and "removed acme/tiny-chat" in out and "removed from llmrouter.lock" in out
    assert not (cache / "models--acme--tiny-chat" / "snapshots").exists() or not any(
        (cache / "models--acme--tiny-chat" / "snapshots").iterdir()
    )
    code, out = models("list", "--cache-dir", str(cache))
    assert code == 0 and REPO not in out


def test_exit_codes_for_what_is_not_there(cache: Path) -> None:
    code, out = models("pull", "acme/absent", "--cache-dir", str(cache))
    assert code == 2 and "not in the local Hugging Face cache" in out
    code, out = models("verify")
    assert code == 2 and "lists no model" in out
    code, out = models("verify", "acme/absent")
    assert code == 2 and "is not in llmrouter.lock" in out
    code, out = models("remove", "acme/absent", "--cache-dir", str(cache))
    assert code == 2 and "neither in the Hugging Face cache nor in the lock" in out


def test_a_damaged_download_exits_4(cache: Path) -> None:
    snapshot = next((cache / "models--acme--tiny-chat" / "snapshots").iterdir())
    weights = (snapshot / "model.safetensors").resolve()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    code, out = models("pull", REPO, "--cache-dir", str(cache))
    assert code == 4 and "damaged files" in out and "--force" in out
    assert not Path("llmrouter.lock").exists()


def test_a_locked_local_directory_is_listed(cache: Path, tiny_model_dir: Path) -> None:
    code, out = models("pull", str(tiny_model_dir))
    assert code == 0, out
    code, out = models("list", "--cache-dir", str(cache))
    assert "locked (directory)" in out


def test_the_cache_comes_from_hf_hub_cache(cache: Path) -> None:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "llmrouter", "models", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert REPO in done.stdout and "1 in the cache" in done.stdout
