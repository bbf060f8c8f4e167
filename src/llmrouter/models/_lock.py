"""``llmrouter.lock``: the exact files of each local model, and checks against them.

The lock is JSON. For each model it records where it comes from (a hub repo and
the commit its revision resolved to, or a local directory) and the sha256 of
every file. ``llmrouter models pull`` writes entries, ``llmrouter models verify``
recomputes the hashes (`llmrouter.models.verify_model`), and loading a locked model fails with an
`IntegrityError` when its files differ, unless told otherwise (``verify=False``).

Example lock::

    {
      "version": 1,
      "models": {
        "Qwen/Qwen2.5-0.5B-Instruct": {
          "repo": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "main",
          "commit": "7ae557604adf67be50417f59c2c2f167def9a775",
          "files": {"config.json": "2c1d...", "model.safetensors": "fdf7..."}
        }
      }
    }
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llmrouter.errors import ConfigurationError, IntegrityError

__all__ = [
    "LOCK_FILE",
    "FileProblem",
    "LockedModel",
    "ModelLock",
    "compare_files",
    "hash_files",
]

LOCK_FILE = "llmrouter.lock"
"""The lock's default file name (in the current directory)."""
_VERSION = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LockedModel:
    """One model in the lock."""

    files: dict[str, str]
    """sha256 of every file, by path relative to the model's folder."""
    repo: str | None = None
    """Hugging Face Hub repo id; ``None`` for a local directory."""
    revision: str | None = None
    """The revision asked for (branch, tag or commit)."""
    commit: str | None = None
    """The commit the revision resolved to when the model was pulled."""
    path: str | None = None
    """A local directory's path, relative to the lock file's folder."""

    @property
    def size(self) -> int:
        """Number of files."""
        return len(self.files)


@dataclass(frozen=True)
class FileProblem:
    """A file that does not match the lock."""

    path: str
    problem: Literal["changed", "missing", "unexpected"]
    expected: str | None = None
    actual: str | None = None

    def __str__(self) -> str:
        if self.problem == "changed":
            return (
                f"{self.path}: changed (sha256 {_short(self.actual)}, "
                f"lock says {_short(self.expected)})"
            )
        if self.problem == "missing":
            return f"{self.path}: missing (the lock lists it)"
        return f"{self.path}: unexpected (not in the lock)"


def _short(digest: str | None) -> str:
    return f"{digest[:12]}..." if digest else "-"


@dataclass
class ModelLock:
    """The lock file: models by name (the repo id, or the directory as given).

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> (folder / "m").mkdir(); _ = (folder / "m" / "config.json").write_text("{}")
        >>> lock = ModelLock.read(folder / "llmrouter.lock")
        >>> lock.record_directory(folder / "m").files
        {'config.json': '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'}
        >>> lock.save(); ModelLock.read(folder / "llmrouter.lock").names()
        ['m']
    """

    path: Path
    models: dict[str, LockedModel] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | os.PathLike[str] = LOCK_FILE) -> ModelLock:
        """The lock at ``path``; empty if the file does not exist yet.

        Raises:
            ConfigurationError: the file is not a lock this version can read.
        """
        target = Path(path)
        if not target.exists():
            return cls(target)
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
            if data.get("version") != _VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {_VERSION}")
            models = {
                str(name): LockedModel(**{k: v for k, v in entry.items() if k in _FIELDS})
                for name, entry in data["models"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"{target}: not a readable llmrouter lock ({exc}); fix it, or delete it "
                "and pull the models again (llmrouter models pull ...)"
            ) from exc
        return cls(target, models)

    def names(self) -> list[str]:
        return sorted(self.models)

    def save(self) -> None:
        """Write the lock (atomically: readers see the old or the new file, never half)."""
        data = {
            "version": _VERSION,
            "models": {
                name: {k: getattr(entry, k) for k in _ORDER if getattr(entry, k) is not None}
                for name, entry in sorted(self.models.items())
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".llmrouter-lock-", dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=False)
            out.write("\n")
        os.replace(tmp, self.path)

    def find(self, model_id: str) -> tuple[str, LockedModel] | None:
        """The entry for a repo id, or for a local directory (matched by its real path)."""
        if model_id in self.models and self.models[model_id].repo is not None:
            return model_id, self.models[model_id]
        local = Path(model_id).expanduser()
        for name, entry in self.models.items():
            if entry.repo is None and entry.path is not None and local.is_dir():
                if self.directory_of(entry).resolve() == local.resolve():
                    return name, entry
            elif entry.repo == model_id:
                return name, entry
        return None

    def directory_of(self, entry: LockedModel) -> Path:
        """A local entry's directory (its path is relative to the lock's folder)."""
        return self.path.parent / (entry.path or "")

    def record_directory(
        self,
        directory: str | os.PathLike[str],
        *,
        repo: str | None = None,
        revision: str | None = None,
        commit: str | None = None,
        progress: bool = False,
    ) -> LockedModel:
        """Hash ``directory`` and record it (under ``repo``, or under its path)."""
        folder = Path(directory)
        files = hash_files(folder, progress=progress)
        if repo is None:
            relative = os.path.relpath(folder.resolve(), self.path.parent.resolve())
            entry = LockedModel(files, path=Path(relative).as_posix())
            name = str(directory)
        else:
            entry = LockedModel(files, repo=repo, revision=revision, commit=commit)
            name = repo
        found = self.find(name)
        self.models.pop(found[0] if found else name, None)
        self.models[name if repo else entry.path or name] = entry
        return entry

    def remove(self, model_id: str) -> bool:
        """Drop a model's entry; False if it had none."""
        found = self.find(model_id)
        if found is None:
            return False
        del self.models[found[0]]
        return True


_FIELDS = frozenset(LockedModel.__dataclass_fields__)
_ORDER = ("repo", "path", "revision", "commit", "files")


def hash_files(directory: str | os.PathLike[str], *, progress: bool = False) -> dict[str, str]:
    """sha256 of every file under ``directory`` (hidden files and folders skipped),
    by relative POSIX path. Symlinks (a hub cache snapshot) are followed."""
    root = Path(directory)
    paths = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    total = sum(p.stat().st_size for p in paths)
    bar = _progress(total, f"sha256 {root.name}", enabled=progress)
    digests: dict[str, str] = {}
    try:
        for path in paths:
            digest = hashlib.sha256()
            with path.open("rb") as data:
                while chunk := data.read(_CHUNK):
                    digest.update(chunk)
                    bar.update(len(chunk))
            digests[path.relative_to(root).as_posix()] = digest.hexdigest()
    finally:
        bar.close()
    return digests


def _progress(total: int, label: str, *, enabled: bool) -> Any:
    from tqdm.auto import tqdm  # type: ignore[import-untyped]  # via huggingface_hub

    # a bar only where hashing takes a while (about 1 GB/s): 256 MiB and up
    return tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        disable=not enabled or total < (256 << 20),
        leave=False,
    )


def compare_files(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[FileProblem]:
    """What differs between the locked hashes and the files found, by path.

    Examples:
        >>> [str(p) for p in compare_files({"a": "1" * 64, "b": "2"}, {"a": "3" * 64, "c": "4"})]
        ['a: changed (sha256 333333333333..., lock says 111111111111...)', \
'b: missing (the lock lists it)', 'c: unexpected (not in the lock)']
    """
    problems = []
    for path in sorted(set(expected) | set(actual)):
        want, have = expected.get(path), actual.get(path)
        if want is None:
            problems.append(FileProblem(path, "unexpected", None, have))
        elif have is None:
            problems.append(FileProblem(path, "missing", want, None))
        elif want != have:
            problems.append(FileProblem(path, "changed", want, have))
    return problems


_VERIFIED: dict[tuple[str, str], tuple[tuple[str, int, int], ...]] = {}
"""Directories found intact in this process, with their files' (path, size, mtime)."""
_VERIFIED_LOCK = threading.Lock()


def _stat_signature(directory: Path, names: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    signature = []
    for name in sorted(names):
        try:
            info = (directory / name).stat()
        except OSError:
            return ()
        signature.append((name, info.st_size, info.st_mtime_ns))
    return tuple(signature)


def check_directory(name: str, entry: LockedModel, directory: Path, lock_path: Path) -> None:
    """Raise `IntegrityError` unless the files of ``directory`` are the locked ones.

    A directory found intact is not hashed again in this process while its files'
    sizes and modification times stay the same.
    """
    key = (str(directory.resolve()), json.dumps(entry.files, sort_keys=True))
    signature = _stat_signature(directory, entry.files)
    with _VERIFIED_LOCK:
        if signature and _VERIFIED.get(key) == signature:
            return
    problems = compare_files(entry.files, hash_files(directory, progress=True))
    if problems:
        listed = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise IntegrityError(
            f"the files of {name!r} in {directory} do not match {lock_path}: {listed}{more}. "
            f"Download it again (llmrouter models pull {entry.repo or name} --force --lock "
            f"{lock_path}) if the files are damaged, pull it without --force to record an "
            "intended change in the lock, or pass verify=False to load it anyway",
            problems,
        )
    with _VERIFIED_LOCK:
        _VERIFIED[key] = _stat_signature(directory, entry.files)
