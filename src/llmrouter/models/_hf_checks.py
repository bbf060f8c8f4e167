"""Checks for local transformers models, made before loading or generating.

- `check_model_source`: why a model id or path cannot be loaded, said plainly,
  instead of the hub's "Repo id must use alphanumeric chars" on the first call;
- `check_generation`: output limits and temperature have usable types and values;
- `output_limit`: the new tokens one request may generate, so prompt and output
  fit the model's context window (a prompt that cannot fit raises langchain-core's
  ``ContextOverflowError``, which routers answer by falling back to a larger window).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.exceptions import ContextOverflowError

from llmrouter.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "check_generation",
    "check_model_id",
    "check_model_source",
    "context_window_of",
    "context_window_on_disk",
    "offline",
    "output_limit",
]

DEFAULT_MAX_NEW_TOKENS = 256
"""New tokens per request when neither the call, the spec nor the model's own
generation config sets a limit (always capped by the context window)."""

_WINDOW_KEYS = ("max_position_embeddings", "n_positions", "n_ctx")
"""Config keys that hold a model's context window, by architecture."""


def check_model_id(value: object) -> str:
    """``value`` as a model id or path string.

    Raises:
        ConfigurationError: ``value`` is not a non-empty ``str`` or ``os.PathLike``.

    Examples:
        >>> from pathlib import Path
        >>> check_model_id(Path("models") / "tiny"), check_model_id("org/model")
        ('models/tiny', 'org/model')
    """
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(
            "model_id_or_path must be a non-empty str or os.PathLike: a local model "
            f"directory or a Hugging Face Hub repo id such as 'org/name', got {value!r}"
        )
    return text


def check_generation(
    settings: Mapping[str, Any], error: type[Exception] = ConfigurationError
) -> None:
    """Raise ``error`` if an output limit or the temperature in ``settings`` is unusable.

    ``max_new_tokens``/``max_tokens`` must be positive integers and ``temperature``
    a number >= 0; ``None`` means "not set".

    Examples:
        >>> check_generation({"max_new_tokens": 8, "temperature": 0.7})
        >>> check_generation({"max_tokens": "lots"})
        Traceback (most recent call last):
        ...
        llmrouter.errors.ConfigurationError: max_tokens must be a positive integer, got 'lots'
    """
    for key in ("max_new_tokens", "max_tokens"):
        value = settings.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise error(f"{key} must be a positive integer, got {value!r}")
    value = settings.get("temperature")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0
    ):
        raise error(f"temperature must be a number >= 0 (0 = greedy), got {value!r}")


def context_window_of(model: Any) -> int | None:
    """Most positions (prompt plus output tokens) a loaded model takes, if its config says."""
    config = getattr(model, "config", None)
    for key in _WINDOW_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def output_limit(wanted: int, prompt_tokens: int, window: int | None, model: str) -> int:
    """New tokens a request may generate: ``wanted``, capped so that the prompt and
    the output fit ``window``.

    Raises:
        ContextOverflowError: the prompt leaves no room for a single new token.

    Examples:
        >>> output_limit(200, 195, 256, "tiny"), output_limit(16, 10, 256, "tiny")
        (61, 16)
        >>> output_limit(16, 256, 256, "tiny")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        langchain_core.exceptions.ContextOverflowError: prompt of 256 tokens does not fit ...
    """
    if window is None:
        return wanted
    room = window - prompt_tokens
    if room < 1:
        raise ContextOverflowError(
            f"prompt of {prompt_tokens} tokens does not fit the context window of "
            f"{model!r} ({window} tokens for prompt and output together, at least 1 "
            "new token needed): shorten the prompt, or route it to a model with a "
            "larger context_window"
        )
    return min(wanted, room)


def check_model_source(
    model_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    required: str = "config.json",
) -> None:
    """Raise a `ConfigurationError` saying why ``model_id`` cannot be loaded, if it
    plainly cannot (nothing is downloaded or loaded here).

    Passes for a local directory with a ``config.json``, a hub repo id in the
    local cache, and a hub repo id that may be downloaded.

    Examples:
        >>> check_model_source("/no/such/model")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        llmrouter.errors.ConfigurationError: model path '/no/such/model' does not exist ...
    """
    path = Path(model_id).expanduser()
    if path.is_dir():
        if not (path / required).is_file():
            raise ConfigurationError(
                f"model directory {model_id!r} has no {required}: pass the directory "
                f"that save_pretrained() wrote ({required}, weights, ...)"
            )
        return
    if path.exists():
        raise ConfigurationError(
            f"model path {model_id!r} is a file, not a model directory: pass the "
            f"directory holding its {required}"
        )
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils._validators import validate_repo_id

    try:
        validate_repo_id(model_id)
    except HFValidationError:
        if _looks_like_a_path(model_id):
            raise ConfigurationError(
                f"model path {model_id!r} does not exist (relative paths start from "
                f"{os.getcwd()!r}): check the path, or pass a Hugging Face Hub repo id"
            ) from None
        raise ConfigurationError(
            f"{model_id!r} is neither an existing local path nor a valid Hugging Face Hub "
            "repo id ('name' or 'org/name': letters, digits, '-', '_', '.'): fix the id, "
            "or pass the model's local directory"
        ) from None
    cached = try_to_load_from_cache(model_id, required, cache_dir=cache_dir, revision=revision)
    if offline() and not isinstance(cached, str):
        at = f" at revision {revision!r}" if revision else ""
        where = f" ({cache_dir})" if cache_dir else ""
        raise ConfigurationError(
            f"{model_id!r}{at} is not a local directory, is not in the local Hugging Face "
            f"cache{where}, and HF_HUB_OFFLINE=1 forbids downloading it: pull it first where "
            f"the hub is reachable (llmrouter models pull {model_id}) and copy the cache "
            "folder, unset HF_HUB_OFFLINE, or pass the model's local directory"
        )


def _looks_like_a_path(text: str) -> bool:
    return (
        os.path.isabs(text)
        or text.startswith((".", "~"))
        or text.count("/") > 1
        or "\\" in text
        or (os.altsep is not None and os.altsep in text)
    )


def offline() -> bool:
    from huggingface_hub import constants

    # the constant is read when huggingface_hub is imported; the variable may be newer
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return bool(constants.HF_HUB_OFFLINE) or flag in {"1", "on", "yes", "true"}


def context_window_on_disk(
    model_id_or_path: str, *, revision: str | None = None, cache_dir: str | None = None
) -> int | None:
    """The model's maximum positions, if its config is already on disk (no download).

    Examples:
        >>> import tempfile
        >>> from llmrouter.testing import build_tiny_chat_model
        >>> context_window_on_disk(str(build_tiny_chat_model(tempfile.mkdtemp())))
        512
        >>> context_window_on_disk("/no/such/model") is None
        True
    """
    config_path = Path(model_id_or_path) / "config.json"
    if not config_path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(
                model_id_or_path, "config.json", cache_dir=cache_dir, revision=revision
            )
        except Exception:  # not a valid repo id, ...
            return None
        if not isinstance(cached, str):
            return None
        config_path = Path(cached)
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return None
    for key in _WINDOW_KEYS:
        if isinstance(config.get(key), int) and config[key] > 0:
            return int(config[key])
    return None
