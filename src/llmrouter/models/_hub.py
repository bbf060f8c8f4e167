"""Where a local model's files come from: a directory, or the Hugging Face Hub.

`ModelSource.resolve` turns a model id into a local folder: a directory as is,
a hub repo id through ``huggingface_hub.snapshot_download`` (resumable
downloads with a progress bar, the Hugging Face cache honouring ``HF_HOME`` /
``HF_HUB_CACHE`` or ``cache_dir``, ``HF_HUB_OFFLINE=1`` / ``local_files_only``
served from a warm cache). A model in ``llmrouter.lock`` loads the locked commit,
and its files are checked against the lock (`IntegrityError` when they differ).
Tokens come from the argument, ``HF_TOKEN`` or the stored login, and are never
printed or recorded.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrouter.errors import ConfigurationError, IntegrityError
from llmrouter.models._hf_checks import check_model_source, offline
from llmrouter.models._lock import (
    LOCK_FILE,
    FileProblem,
    LockedModel,
    ModelLock,
    check_directory,
    compare_files,
    hash_files,
)

__all__ = ["ModelSource", "cached_snapshot", "pull_model", "remove_model", "verify_model"]


@dataclass(frozen=True)
class ModelSource:
    """A model id (hub repo or directory) with the settings that pick its files."""

    model_id: str
    revision: str | None = None
    """Branch, tag or commit on the hub (default: ``main``, or the locked commit)."""
    cache_dir: str | None = None
    """Hugging Face cache folder (default: ``HF_HUB_CACHE``, ``HF_HOME/hub``, ...)."""
    allow_patterns: tuple[str, ...] | None = None
    """Only the files matching these globs are downloaded (e.g. ``*.safetensors``)."""
    local_files_only: bool = False
    """Never download: use the cache only (as ``HF_HUB_OFFLINE=1`` does)."""
    lock: str | None = None
    """The lock file; ``None``: ``LLMROUTER_LOCK``, else ``./llmrouter.lock`` if it
    exists (then only the models it lists are checked)."""
    verify: bool = True
    """Check the files against the lock; ``False`` loads them even if they differ."""
    required: str = "config.json"
    """The file a folder of this kind must hold (``adapter_config.json`` for an adapter)."""
    token: str | None = field(default=None, repr=False, compare=False, hash=False)
    """Hub token (default: ``HF_TOKEN`` or the stored login). Never printed."""

    @property
    def is_directory(self) -> bool:
        return Path(self.model_id).expanduser().is_dir()

    def lock_file(self) -> tuple[ModelLock | None, bool]:
        """The lock that applies and whether it was named (then it must list the model)."""
        named = self.lock or os.environ.get("LLMROUTER_LOCK") or None
        if named is not None:
            return ModelLock.read(named), True
        if Path(LOCK_FILE).is_file():
            return ModelLock.read(LOCK_FILE), False
        return None, False

    def locked(self) -> tuple[ModelLock, str, LockedModel] | None:
        """This model's lock entry, if a lock applies to it.

        Raises:
            IntegrityError: a named lock does not list the model.
        """
        lock, named = self.lock_file()
        if lock is None:
            return None
        found = lock.find(self.model_id)
        if found is None:
            if named and self.verify:
                raise IntegrityError(
                    f"{self.model_id!r} is not in {lock.path} (it lists "
                    f"{lock.names() or 'no model'}): add it with `llmrouter models pull "
                    f"{self.model_id} --lock {lock.path}`, or pass verify=False"
                )
            return None
        return lock, found[0], found[1]

    def resolve(self) -> Path:
        """The local folder holding the model's files (downloading them if needed),
        checked against the lock: call it when loading.

        Raises:
            ConfigurationError: no such directory or repo, offline and not cached,
                a revision that contradicts the lock.
            IntegrityError: the files differ from the lock.
        """
        folder = self.locate()
        locked = self.locked()
        if locked is not None and self.verify:
            check_directory(locked[1], locked[2], folder, locked[0].path)
        return folder

    def locate(self) -> Path:
        """The local folder holding the model's files (downloading them if needed),
        found once per process and source (a failure is not remembered); not checked
        against the lock (`resolve` does that).

        Raises:
            ConfigurationError: see `resolve`.
        """
        with _RESOLVED_LOCK:
            found = _RESOLVED.get(self)
        if found is not None:
            return found
        if self.is_directory:
            check_model_source(self.model_id, required=self.required)
            folder = Path(self.model_id).expanduser()
        else:
            locked = self.locked()
            folder = self._download(locked[2] if locked else None)
        with _RESOLVED_LOCK:
            _RESOLVED[self] = folder
        return folder

    def _download(self, entry: LockedModel | None) -> Path:
        revision = self.revision
        if entry is not None and entry.commit:
            if revision not in (None, entry.revision, entry.commit):
                raise ConfigurationError(
                    f"{self.model_id!r}: revision {revision!r} differs from the lock's "
                    f"({entry.revision!r}, commit {entry.commit}); drop revision= to load "
                    "the locked commit, or pull the new revision to update the lock"
                )
            revision = entry.commit
        check_model_source(
            self.model_id, revision=revision, cache_dir=self.cache_dir, required=self.required
        )
        return Path(
            snapshot(
                self.model_id,
                revision=revision,
                cache_dir=self.cache_dir,
                allow_patterns=self.allow_patterns,
                token=self.token,
                local_files_only=self.local_files_only,
            )
        )


_RESOLVED: dict[ModelSource, Path] = {}
_RESOLVED_LOCK = threading.Lock()


def snapshot(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_patterns: tuple[str, ...] | list[str] | None = None,
    token: str | None = None,
    local_files_only: bool = False,
    force: bool = False,
) -> str:
    """``snapshot_download`` with our error messages; the folder of the snapshot.

    Raises:
        ConfigurationError: offline and not cached, unknown repo or revision, gated.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f" (cache {cache_dir})" if cache_dir else ""
    try:
        return str(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=_folder(cache_dir),
                allow_patterns=list(allow_patterns) if allow_patterns else None,
                token=token,
                local_files_only=local_files_only or offline(),
                force_download=force,
            )
        )
    except GatedRepoError as exc:
        raise ConfigurationError(
            f"{repo_id!r} is gated: accept its terms on huggingface.co, then set HF_TOKEN "
            "or run `hf auth login`, or pass token=..."
        ) from exc
    except RevisionNotFoundError as exc:
        raise ConfigurationError(
            f"{repo_id!r} has no revision {revision!r}: pass a branch, tag or commit it has"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ConfigurationError(
            f"{repo_id!r} is not a Hugging Face Hub repo you can see: check the id, or set "
            "HF_TOKEN / pass token=... for a private repo"
        ) from exc
    except LocalEntryNotFoundError as exc:
        revision_text = f" at revision {revision!r}" if revision else ""
        raise ConfigurationError(
            f"{repo_id!r}{revision_text} is not in the local Hugging Face cache{where} and "
            "downloading is off (HF_HUB_OFFLINE=1 or local_files_only=True): pull it where "
            f"the hub is reachable (llmrouter models pull {repo_id}) and copy the cache "
            "folder, or pass the model's local directory"
        ) from exc


def _folder(path: str | os.PathLike[str] | None) -> str | None:
    return None if path is None else os.fspath(path)


def cached_snapshot(
    repo_id: str, revision: str | None, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The cached snapshot folder of ``repo_id`` at ``revision``, never downloading."""
    return Path(snapshot(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))


def pull_model(
    model_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_patterns: tuple[str, ...] | list[str] | None = None,
    token: str | None = None,
    lock: str | os.PathLike[str] | None = LOCK_FILE,
    force: bool = False,
) -> tuple[Path, LockedModel | None]:
    """Download ``model_id`` (or take a local directory), check what the hub sent,
    and record its commit and file hashes in ``lock`` (``None``: no lock).
    ``force`` downloads every file again (to repair damaged files).

    Raises:
        ConfigurationError: see `snapshot`.
        IntegrityError: a downloaded weight file does not hash to the sha256 the hub
            named it by (a damaged download: remove the model and pull again).
    """
    local = Path(model_id).expanduser()
    if local.is_dir():
        check_model_source(model_id)
        folder, repo, commit = local, None, None
    else:
        folder = Path(
            snapshot(
                model_id,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=allow_patterns,
                token=token,
                force=force,
            )
        )
        repo, commit = model_id, folder.name
    if lock is None:
        if repo is not None:  # a local directory has no hub names to check against
            hub_mismatches(folder, hash_files(folder, progress=True), model_id)
        return folder, None
    model_lock = ModelLock.read(lock)
    entry = model_lock.record_directory(
        folder,
        repo=repo,
        revision=revision or ("main" if repo else None),
        commit=commit,
        progress=True,
    )
    hub_mismatches(folder, entry.files, model_id)
    model_lock.save()
    return folder, entry


def hub_mismatches(folder: Path, digests: dict[str, str], model_id: str = "MODEL") -> None:
    """Raise `IntegrityError` if a file of a hub snapshot does not have the content its
    blob is named by: the sha256 of weights stored with LFS, the git blob hash of the
    others (a damaged download, or a cache changed by hand)."""
    bad = []
    for name, digest in digests.items():
        path = folder / name
        if not path.is_symlink():
            continue
        blob = Path(os.readlink(path)).name
        if len(blob) == 64 and blob != digest:
            bad.append(f"{name} (sha256 {digest[:12]}..., the hub's {blob[:12]}...)")
        elif len(blob) == 40 and blob != git_blob_hash(path.read_bytes()):
            bad.append(f"{name} (not the git blob {blob[:12]}... the hub sent)")
    if bad:
        raise IntegrityError(
            f"damaged files in {folder}: {', '.join(bad)}; download them again "
            f"(llmrouter models pull {model_id} --force)"
        )


def git_blob_hash(data: bytes) -> str:
    """The git blob hash of ``data``: how the hub names a file not stored with LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def remove_model(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    lock: str | os.PathLike[str] | None = LOCK_FILE,
) -> tuple[int, bool]:
    """Delete ``repo_id`` from the cache (one revision's commit, or all of them) and
    its lock entry. Returns (bytes freed, whether the lock listed it).

    Raises:
        ConfigurationError: the repo (or revision) is not in the cache nor the lock.
    """
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(_folder(cache_dir))
        repos = [r for r in info.repos if r.repo_id == repo_id and r.repo_type == "model"]
    except CacheNotFound:
        info, repos = None, []
    commits = [
        rev.commit_hash
        for repo in repos
        for rev in repo.revisions
        if revision is None or revision == rev.commit_hash or revision in rev.refs
    ]
    freed = 0
    if info is not None and commits:
        strategy = info.delete_revisions(*commits)
        freed = int(strategy.expected_freed_size)
        strategy.execute()
    listed = False
    if lock is not None and Path(lock).is_file():
        model_lock = ModelLock.read(lock)
        listed = model_lock.remove(repo_id)
        if listed:
            model_lock.save()
    if not commits and not listed:
        raise ConfigurationError(
            f"{repo_id!r}{f' at {revision!r}' if revision else ''} is neither in the "
            "Hugging Face cache nor in the lock: see `llmrouter models list`"
        )
    with _RESOLVED_LOCK:
        for source in [s for s in _RESOLVED if s.model_id == repo_id]:
            del _RESOLVED[source]
    return freed, listed


def cache_listing(cache_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The models in the Hugging Face cache: repo, commit, refs, size, files."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(_folder(cache_dir))
    except CacheNotFound:
        return []
    return [
        {
            "repo": repo.repo_id,
            "commit": rev.commit_hash,
            "refs": sorted(rev.refs),
            "bytes": rev.size_on_disk,
            "files": rev.nb_files,
        }
        for repo in sorted(info.repos, key=lambda r: r.repo_id)
        if repo.repo_type == "model"
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash)
    ]


def verify_model(
    model_id: str,
    directory: str | os.PathLike[str] | None = None,
    *,
    lock: str | os.PathLike[str] = LOCK_FILE,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[FileProblem]:
    """Hash a locked model's files again and list what differs from the lock
    (empty: intact). ``directory`` defaults to the local directory the lock
    records, or the locked commit's snapshot in the Hugging Face cache
    (``cache_dir``, default the standard one).

    Raises:
        ConfigurationError: the model is not in the lock, or its files are not on disk.

    Examples:
        >>> import tempfile, pathlib
        >>> from llmrouter.models import ModelLock, verify_model
        >>> folder = pathlib.Path(tempfile.mkdtemp()); (folder / "m").mkdir()
        >>> _ = (folder / "m" / "weights.bin").write_bytes(b"abc")
        >>> lock = ModelLock.read(folder / "llmrouter.lock")
        >>> _ = lock.record_directory(folder / "m"); lock.save()
        >>> verify_model(str(folder / "m"), lock=folder / "llmrouter.lock")
        []
        >>> _ = (folder / "m" / "weights.bin").write_bytes(b"abd")
        >>> [p.problem for p in verify_model(str(folder / "m"), lock=folder / "llmrouter.lock")]
        ['changed']
    """
    model_lock = ModelLock.read(lock)
    found = model_lock.find(model_id)
    if found is None:
        raise ConfigurationError(
            f"{model_id!r} is not in {model_lock.path} (it has {model_lock.names() or 'none'}):"
            f" add it with llmrouter models pull {model_id} --lock {model_lock.path}"
        )
    _, entry = found
    if directory is not None:
        folder = Path(directory)
    elif entry.repo is None:
        folder = model_lock.directory_of(entry)
    else:
        folder = cached_snapshot(entry.repo, entry.commit or entry.revision, cache_dir)
    if not folder.is_dir():
        raise ConfigurationError(f"{folder} is not a directory: the model's files are not there")
    return compare_files(entry.files, hash_files(folder, progress=True))
