"""Tiny offline models, a loopback echo server and pytest fixtures for your own tests.

Test a routing configuration without downloads, GPUs or API keys:

- `build_tiny_chat_model` (GPT-2), `build_tiny_captioner` (BLIP),
  `build_tiny_speech_recognizer` (Whisper), `build_tiny_text_to_image`
  (Stable Diffusion, needs ``llmrouter[image]``) write random-weight models
  in about a second each. Their output is noise; loading, templating and
  generation are the real code paths.
- `build_tiny_lora_adapter` writes a random LoRA adapter of such a model
  (needs ``llmrouter[lora]``).
- `add_to_hub_cache` lays such a model out in a Hugging Face cache folder, to
  load it by repo id offline (``HF_HUB_OFFLINE=1``) as if it were downloaded.
- `start_echo_server` runs llm-katan, an OpenAI-compatible server that echoes
  the prompt (or fails on purpose), on 127.0.0.1; it yields a `KatanServer`.
- `start_redis_server` runs a real ``redis-server`` (Debian's package) on
  127.0.0.1 and a free port, for routers with ``state="redis://..."``.
- `start_celery_worker` runs a real Celery worker of
  `llmrouter.integrations.celery` on such a broker (needs ``llmrouter[celery]``).
- ``pytest_plugins = ["llmrouter.testing.fixtures"]`` in your ``conftest.py``
  gives the fixtures ``tiny_chat_model_dir``, ``tiny_chat_spec``,
  ``echo_server`` and ``redis_server``.

The echo server and fixtures need the extra ``llmrouter[testing]``. Importing
this package is light: torch and transformers load when a builder runs.

Examples:
    >>> import tempfile
    >>> from llmrouter import models
    >>> from llmrouter.testing import build_tiny_chat_model
    >>> path = build_tiny_chat_model(tempfile.mkdtemp())
    >>> spec = models.huggingface_pipeline(str(path), name="local", max_new_tokens=4)
    >>> isinstance(spec.chat_model.invoke("hi").content, str)
    True
"""

from llmrouter.testing._build import CHAT_TEMPLATE
from llmrouter.testing._celery import CeleryWorker, start_celery_worker
from llmrouter.testing._chat import build_tiny_chat_model
from llmrouter.testing._diffusion import build_tiny_text_to_image
from llmrouter.testing._hub import add_to_hub_cache
from llmrouter.testing._katan import KatanServer, start_echo_server
from llmrouter.testing._lora import build_tiny_lora_adapter
from llmrouter.testing._redis import RedisServer, start_redis_server
from llmrouter.testing._speech import build_tiny_speech_recognizer
from llmrouter.testing._vision import build_tiny_captioner

__all__ = [
    "CHAT_TEMPLATE",
    "CeleryWorker",
    "KatanServer",
    "RedisServer",
    "add_to_hub_cache",
    "build_tiny_captioner",
    "build_tiny_chat_model",
    "build_tiny_lora_adapter",
    "build_tiny_speech_recognizer",
    "build_tiny_text_to_image",
    "start_celery_worker",
    "start_echo_server",
    "start_redis_server",
]
