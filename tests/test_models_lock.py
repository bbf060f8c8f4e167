"""Tests for llmrouter.models._lock: the lock file, hashing and verification."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from llmrouter import ConfigurationError, IntegrityError
from llmrouter.models import ModelLock, _lock, verify_model
from llmrouter.models._lock import check_directory, compare_files, hash_files


def flip_a_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny"))


@pytest.fixture
def lock(model: Path, tmp_path: Path) -> ModelLock:
    model_lock = ModelLock.read(tmp_path / "llmrouter.lock")
    model_lock.record_directory(model)
    model_lock.save()
    return model_lock


def test_hash_files_matches_hashlib_and_skips_hidden(model: Path) -> None:
    (model / ".cache").mkdir()
    (model / ".cache" / "junk").write_text("x")
    digests = hash_files(model)
    weights = (model / "model.safetensors").read_bytes()
    assert digests["model.safetensors"] == hashlib.sha256(weights).hexdigest()
    assert not any(name.startswith(".") for name in digests)
    assert "config.json" in digests


def test_lock_round_trip_is_readable_json(lock: ModelLock, tmp_path: Path) -> None:
    data = json.loads((tmp_path / "llmrouter.lock").read_text())
    assert data["version"] == 1
    (entry,) = data["models"].values()
    assert list(entry) == ["path", "files"]  # where from first, then the hashes
    assert entry["path"] == "models/tiny"  # relative to the lock: the folder can move
    again = ModelLock.read(tmp_path / "llmrouter.lock")
    assert again.models == lock.models


def test_a_moved_project_still_finds_its_local_models(
    lock: ModelLock, model: Path, tmp_path: Path
) -> None:
    moved = Path(shutil.move(tmp_path, tmp_path.parent / f"{tmp_path.name}-moved"))
    assert verify_model(str(moved / "models" / "tiny"), lock=moved / "llmrouter.lock") == []


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"version": 2, "models": {}}', '{"version": 1}', "[]"],
)
def test_an_unreadable_lock(tmp_path: Path, content: str) -> None:
    (tmp_path / "llmrouter.lock").write_text(content)
    with pytest.raises(ConfigurationError, match=r"not a readable llmrouter lock"):
        ModelLock.read(tmp_path / "llmrouter.lock")


def test_a_missing_lock_is_empty(tmp_path: Path) -> None:
    assert ModelLock.read(tmp_path / "none.lock").models == {}


def test_verify_catches_a_flipped_byte(lock: ModelLock, model: Path) -> None:
    assert verify_model(str(model), lock=lock.path) == []
    flip_a_byte(model / "model.safetensors")
    (problem,) = verify_model(str(model), lock=lock.path)
    assert (problem.path, problem.problem) == ("model.safetensors", "changed")
    assert problem.expected == lock.models["models/tiny"].files["model.safetensors"]
    assert problem.actual != problem.expected


def test_verify_reports_missing_and_unexpected_files(lock: ModelLock, model: Path) -> None:
    (model / "tokenizer.json").unlink()
    (model / "extra.py").write_text("print('hi')")
    problems = {p.path: p.problem for p in verify_model(str(model), lock=lock.path)}
    assert problems == {"tokenizer.json": "missing", "extra.py": "unexpected"}


def test_verify_a_model_not_in_the_lock(lock: ModelLock, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"'other/model' is not in .*models pull"):
        verify_model("other/model", lock=lock.path)


def test_compare_files_names_each_difference() -> None:
    problems = compare_files({"a": "1", "b": "2"}, {"a": "1", "b": "3"})
    assert [str(p) for p in problems] == ["b: changed (sha256 3..., lock says 2...)"]


def test_check_directory_raises_and_remembers_intact_folders(
    lock: ModelLock, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, entry = lock.find(str(model)) or ("", None)
    assert entry is not None
    calls: list[Path] = []
    real = _lock.hash_files

    def counting(directory: Path, *, progress: bool = False) -> dict[str, str]:
        calls.append(directory)
        return real(directory, progress=progress)

    monkeypatch.setattr(_lock, "hash_files", counting)
    check_directory(name, entry, model, lock.path)
    check_directory(name, entry, model, lock.path)
    assert len(calls) == 1  # intact and unchanged: not hashed again
    flip_a_byte(model / "config.json", offset=1)
    with pytest.raises(IntegrityError, match=r"config.json: changed") as caught:
        check_directory(name, entry, model, lock.path)
    assert [p.path for p in caught.value.problems] == ["config.json"]
    assert "verify=False" in str(caught.value) and "--force" in str(caught.value)


def test_remove_an_entry(lock: ModelLock, model: Path) -> None:
    assert lock.remove(str(model)) and lock.models == {}
    assert not lock.remove(str(model))
