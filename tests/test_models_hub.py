"""Tests for llmrouter.models._hub: loading by repo id from a hub-style cache, offline,
pinned by the lock; pulling and removing. No hub is reachable: the cache is built here
(``add_to_hub_cache``) and ``HF_HUB_OFFLINE=1`` is set for the whole suite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmrouter import ConfigurationError, IntegrityError
from llmrouter.models import ModelLock, huggingface_pipeline
from llmrouter.models._hf_loading import clear_pipelines
from llmrouter.models._hub import ModelSource, pull_model, remove_model
from llmrouter.testing import add_to_hub_cache

REPO = "acme/tiny-chat"
PROMPT = "hello there"


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def cache(tiny_model_dir: Path, tiny_model_dir_b: Path, tmp_path: Path) -> Path:
    """A cache with two commits of REPO: main (model a) and tag v2 (model b)."""
    folder = tmp_path / "hub"
    add_to_hub_cache(tiny_model_dir, folder, REPO)
    add_to_hub_cache(tiny_model_dir_b, folder, REPO, revision="v2", commit="b" * 40)
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (the implicit ./llmrouter.lock lives there)."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("LLMROUTER_LOCK", raising=False)
    return folder


def answer(model_id: str, **kwargs: object) -> str:
    spec = huggingface_pipeline(model_id, max_new_tokens=6, **kwargs)  # type: ignore[arg-type]
    return str(spec.chat_model.invoke(PROMPT).content)


def test_offline_load_by_repo_id_equals_the_directory(
    cache: Path, project: Path, tiny_model_dir: Path, tiny_model_dir_b: Path
) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert answer(REPO, cache_dir=str(cache)) == answer(str(tiny_model_dir))
    assert answer(REPO, cache_dir=str(cache), revision="v2") == answer(str(tiny_model_dir_b))
    spec = huggingface_pipeline(REPO, cache_dir=str(cache))
    assert spec.context_window == 512  # read from the cached config, nothing loaded


def test_hf_hub_cache_is_honoured(
    cache: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # as HF_HUB_CACHE=... does
    assert ModelSource(REPO).resolve().parent.parent == cache / "models--acme--tiny-chat"


def test_not_cached_while_offline(cache: Path, project: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"not in the local Hugging Face cache"):
        huggingface_pipeline("acme/other", cache_dir=str(cache)).chat_model.warm_up()
    with pytest.raises(ConfigurationError, match=r"'acme/tiny-chat' at revision 'v9' is not a"):
        ModelSource(REPO, revision="v9", cache_dir=str(cache)).resolve()


def test_a_token_is_never_shown(cache: Path, project: Path) -> None:
    spec = huggingface_pipeline(REPO, cache_dir=str(cache), token="hf_secret123")
    chat = spec.chat_model
    for text in (repr(chat), str(chat.model_dump()), str(chat._identifying_params), repr(spec)):
        assert "hf_secret123" not in text
    assert "hf_secret123" not in repr(ModelSource(REPO, token="hf_secret123"))
    assert ModelSource(REPO, token="a") == ModelSource(REPO, token="b")  # one shared load


def test_pull_records_the_commit_and_hashes(cache: Path, project: Path) -> None:
    folder, entry = pull_model(REPO, cache_dir=cache, lock="llmrouter.lock")
    assert entry is not None and entry.commit == folder.name
    assert entry.repo == REPO and entry.revision == "main"
    data = json.loads(Path("llmrouter.lock").read_text())
    assert data["models"][REPO]["commit"] == folder.name
    assert set(data["models"][REPO]["files"]) >= {"config.json", "model.safetensors"}
    _, tagged = pull_model(REPO, revision="v2", cache_dir=cache, lock="llmrouter.lock")
    assert tagged is not None and tagged.commit == "b" * 40
    assert ModelLock.read("llmrouter.lock").names() == [REPO]  # one entry per repo


def test_the_lock_pins_the_commit_and_checks_files(
    cache: Path, project: Path, tiny_model_dir_b: Path
) -> None:
    pull_model(REPO, revision="v2", cache_dir=cache, lock="llmrouter.lock")
    # ./llmrouter.lock applies by itself: the locked commit (v2), not main
    assert answer(REPO, cache_dir=str(cache)) == answer(str(tiny_model_dir_b))
    with pytest.raises(ConfigurationError, match=r"revision 'main' differs from the lock"):
        ModelSource(REPO, revision="main", cache_dir=str(cache)).resolve()
    blob = (cache / "models--acme--tiny-chat" / "snapshots" / ("b" * 40)).joinpath(
        "model.safetensors"
    )
    flip_a_byte(blob.resolve())
    clear_pipelines()  # loaded (and checked) above: checking happens when loading
    with pytest.raises(IntegrityError, match=r"model.safetensors: changed") as caught:
        huggingface_pipeline(REPO, cache_dir=str(cache), max_new_tokens=2).chat_model.invoke("x")
    assert caught.value.problems[0].path == "model.safetensors"
    # told otherwise: it loads
    assert isinstance(answer(REPO, cache_dir=str(cache), verify=False), str)


def test_a_named_lock_must_list_the_model(cache: Path, project: Path, tiny_model_dir: Path) -> None:
    Path("empty.lock").write_text('{"version": 1, "models": {}}')
    with pytest.raises(IntegrityError, match=r"is not in empty.lock .*llmrouter models pull"):
        ModelSource(REPO, cache_dir=str(cache), lock="empty.lock").resolve()
    # an implicit ./llmrouter.lock checks only what it lists
    Path("llmrouter.lock").write_text('{"version": 1, "models": {}}')
    assert ModelSource(str(tiny_model_dir)).resolve() == tiny_model_dir


def test_a_local_directory_in_the_lock_is_checked(tiny_model_dir: Path, project: Path) -> None:
    import shutil

    local = Path(shutil.copytree(tiny_model_dir, project / "tiny"))
    pull_model(str(local), lock="llmrouter.lock")
    assert ModelLock.read("llmrouter.lock").names() == ["tiny"]
    assert ModelSource(str(local)).resolve() == local
    flip_a_byte(local / "model.safetensors")
    with pytest.raises(IntegrityError, match=r"do not match llmrouter.lock"):
        ModelSource(str(local), lock="llmrouter.lock").resolve()


def test_pull_refuses_a_damaged_download(cache: Path, project: Path) -> None:
    snapshot = next((cache / "models--acme--tiny-chat" / "snapshots").iterdir())
    flip_a_byte((snapshot / "model.safetensors").resolve())
    with pytest.raises(IntegrityError, match=r"damaged files .*model.safetensors.*--force"):
        pull_model(REPO, cache_dir=cache, revision=snapshot.name, lock="llmrouter.lock")
    assert not Path("llmrouter.lock").exists()  # nothing recorded from a damaged download
    (snapshot / "config.json").resolve().write_text("{}")  # a small file: git blob hash
    with pytest.raises(IntegrityError, match=r"config.json \(not the git blob"):
        pull_model(REPO, cache_dir=cache, revision=snapshot.name, lock=None)


def test_remove_deletes_the_snapshot_and_the_lock_entry(cache: Path, project: Path) -> None:
    pull_model(REPO, revision="v2", cache_dir=cache, lock="llmrouter.lock")
    freed, listed = remove_model(REPO, revision="v2", cache_dir=cache, lock="llmrouter.lock")
    assert freed > 100_000 and listed
    assert not (cache / "models--acme--tiny-chat" / "snapshots" / ("b" * 40)).exists()
    assert ModelLock.read("llmrouter.lock").models == {}
    assert ModelSource(REPO, cache_dir=str(cache)).resolve().is_dir()  # main is still there
    with pytest.raises(ConfigurationError, match=r"neither in the Hugging Face cache nor"):
        remove_model("acme/none", cache_dir=cache, lock="llmrouter.lock")
