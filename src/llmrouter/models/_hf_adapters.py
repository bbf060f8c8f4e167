"""LoRA adapters on one shared base model (peft), switched per batch.

The first adapter wraps the loaded base model in a ``peft.PeftModel`` in place
of the pipeline's model; every further adapter is loaded into that same
wrapper by name, so N adapters share one copy of the base weights. A batch
runs with its adapter set active, or with adapters disabled for the base
model itself. Callers hold the pipeline's run lock around both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmrouter.errors import ConfigurationError

__all__ = ["active_adapter", "attach_adapter"]


def _peft() -> Any:
    try:
        import peft
    except ImportError as exc:
        raise ConfigurationError(
            "adapter=... needs peft: pip install 'llmrouter[lora]' (or pip install peft)"
        ) from exc
    return peft


def attach_adapter(pipeline: Any, folder: Path, name: str) -> None:
    """Load the LoRA adapter in ``folder`` onto ``pipeline.model`` under ``name``.

    Raises:
        ConfigurationError: peft is missing, or the folder is not an adapter of
            this base model.
    """
    peft = _peft()
    model = pipeline.model
    try:
        if isinstance(model, peft.PeftModel):
            model.load_adapter(str(folder), adapter_name=name)
        else:
            pipeline.model = peft.PeftModel.from_pretrained(model, str(folder), adapter_name=name)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigurationError(
            f"cannot load the adapter in {folder} ({type(exc).__name__}: {exc}); it must be "
            "a peft adapter (adapter_config.json and weights) trained for this base model"
        ) from exc
    pipeline.model.eval()


@contextmanager
def active_adapter(model: Any, name: str | None) -> Iterator[None]:
    """Run the block with adapter ``name`` active, or with adapters off (``None``)."""
    if not hasattr(model, "set_adapter") or not hasattr(model, "disable_adapter"):
        yield  # a plain model: no adapter was ever loaded
        return
    if name is None:
        with model.disable_adapter():
            yield
        return
    model.set_adapter(name)
    yield
