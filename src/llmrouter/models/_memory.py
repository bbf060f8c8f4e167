"""How much memory a loaded model holds: the bytes of its tensors, counted once each.

A transformers pipeline holds its weights in ``pipeline.model``; a diffusers
pipeline in several components; a dynamically quantized layer in packed
parameters that ``parameters()`` does not list. `model_bytes` finds the torch
modules inside any of those and sums the storage of every tensor in their state
dicts, so tied weights and shared storages count once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["model_bytes", "torch_modules"]


def torch_modules(obj: Any) -> list[Any]:
    """The distinct ``torch.nn.Module`` objects ``obj`` is or holds.

    Looks at ``obj`` itself and, a few levels deep, its ``model``, ``pipeline`` and
    ``llm`` attributes (transformers and LangChain pipelines, our shared wrappers)
    and its ``components`` mapping (diffusers pipelines).
    """
    import torch

    found: dict[int, torch.nn.Module] = {}
    todo: list[tuple[Any, int]] = [(obj, 0)]
    seen: set[int] = set()
    while todo:
        candidate, depth = todo.pop()
        if candidate is None or id(candidate) in seen:
            continue
        seen.add(id(candidate))
        if isinstance(candidate, torch.nn.Module):
            found.setdefault(id(candidate), candidate)
            continue
        if depth >= 4:
            continue
        for name in ("model", "pipeline", "llm"):
            todo.append((getattr(candidate, name, None), depth + 1))
        components = getattr(candidate, "components", None)
        if isinstance(components, dict):
            todo.extend((value, depth + 1) for value in components.values())
    return list(found.values())


def model_bytes(obj: Any) -> int:
    """Bytes of tensor storage held by the torch modules of ``obj`` (0 if it has none).

    Examples:
        >>> import torch
        >>> model_bytes(torch.nn.Linear(4, 2))  # 8 float32 weights + 2 biases
        40
        >>> model_bytes(object())
        0
    """
    seen: set[tuple[Any, ...]] = set()
    total = 0
    for module in torch_modules(obj):
        for tensor in _tensors(module.state_dict(keep_vars=True)):
            key = _storage_key(tensor)
            if key not in seen:
                seen.add(key)
                total += tensor.nelement() * tensor.element_size()
    return total


def _tensors(value: Any) -> Iterator[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


def _storage_key(tensor: Any) -> tuple[Any, ...]:
    """Identifies a tensor's memory: views of one storage (tied weights) count once."""
    if tensor.is_quantized or tensor.device.type == "meta":
        return ("tensor", id(tensor))
    storage = tensor.untyped_storage()
    return (tensor.device.type, storage.data_ptr(), tensor.storage_offset(), tensor.nelement())
