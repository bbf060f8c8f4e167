"""Put a local model into a Hugging Face cache folder, laid out as a hub download.

The layout is the one ``huggingface_hub`` writes and reads
(``models--org--name/{blobs,refs,snapshots}``), so loading the model by repo id
with ``HF_HUB_OFFLINE=1`` and ``cache_dir=...`` runs the real offline path, with
no hub in reach.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from llmrouter.models._hub import git_blob_hash

__all__ = ["add_to_hub_cache"]

_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf", ".onnx", ".msgpack", ".h5")


def add_to_hub_cache(
    model_dir: str | Path,
    cache_dir: str | Path,
    repo_id: str,
    *,
    revision: str = "main",
    commit: str | None = None,
) -> Path:
    """Copy the files of ``model_dir`` into ``cache_dir`` as snapshot ``commit`` of
    ``repo_id``, with ``refs/<revision>`` pointing at it; return the snapshot folder.

    Blobs are named as the hub names them: the sha256 of weight files (LFS), the
    git blob hash of the others. ``commit`` defaults to a hash of the files.

    Examples:
        >>> import tempfile
        >>> from huggingface_hub import snapshot_download
        >>> from llmrouter.testing import add_to_hub_cache, build_tiny_chat_model
        >>> model, cache = build_tiny_chat_model(tempfile.mkdtemp()), tempfile.mkdtemp()
        >>> snapshot = add_to_hub_cache(model, cache, "acme/tiny-chat")
        >>> snapshot_download("acme/tiny-chat", cache_dir=cache,
        ...                   local_files_only=True) == str(snapshot)
        True
    """
    source = Path(model_dir)
    files = sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))
    digests = {p: _blob_name(p) for p in files}
    if commit is None:
        commit = hashlib.sha1("".join(sorted(digests.values())).encode()).hexdigest()
    repo = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    for path, blob_name in digests.items():
        blob = repo / "blobs" / blob_name
        if not blob.exists():
            shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs" / revision).write_text(commit)
    return snapshot


def _blob_name(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix in _LFS_SUFFIXES:
        return hashlib.sha256(data).hexdigest()
    return git_blob_hash(data)
