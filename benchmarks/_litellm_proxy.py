"""LiteLLM's proxy server in front of a backend, for ``server.py --litellm``.

LiteLLM is no dependency of llmrouter: the proxy runs from its own venv,
``benchmarks/.venv-litellm-proxy``, created on the first ``--litellm`` run with
``litellm[proxy]`` pinned to `SPEC`: 1.80.11, a release LiteLLM tagged
``-stable`` (load-tested), older than the compromised releases the index no
longer carries (1.82.7, 1.82.8, 1.107.0).

Settings, from LiteLLM's benchmark and production docs: one worker (our server
is one process too), no database, no spend or error logs, no callbacks, no
retries, no access log. ``LITELLM_LOCAL_MODEL_COST_MAP=True`` keeps it from
fetching its price list from GitHub at import (its only network attempt here).
LiteLLM keeps idle backend connections 120 s and llm-katan (uvicorn) closes them
after 5 s, so a reused dead one failed requests: ``AIOHTTP_KEEPALIVE_TIMEOUT=4``.
Readiness: ``GET /health/liveliness`` (``/health`` calls the model).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from _servers import free_port, wait_ready

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-litellm-proxy"
SPEC = "litellm[proxy]==1.80.11"
MODEL = "bench"

_CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{backend_model}
      api_base: {base_url}
      api_key: {api_key}
general_settings:
  master_key: {master_key}
  disable_spend_logs: true
  disable_error_logs: true
litellm_settings:
  set_verbose: false
  callbacks: []
  num_retries: 0
  request_timeout: 30
"""

_LOG_CONFIG = {  # uvicorn's default, without the line per request
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(message)s"}},
    "handlers": {"default": {"formatter": "default", "class": "logging.StreamHandler"}},
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "WARNING", "propagate": False},
        "uvicorn.access": {"handlers": ["default"], "level": "WARNING", "propagate": False},
    },
}


def _bin(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def ensure_venv() -> str:
    """The installed LiteLLM version, installing `SPEC` into `VENV` if needed (~1 min)."""
    python = _bin("python")
    check = [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == SPEC.split("==")[1]:
            return found.stdout.strip()
    else:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"installing {SPEC} into {VENV.name} (once; about a minute) ...", file=sys.stderr)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, SPEC], check=True)
    return subprocess.run(check, capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def litellm_proxy(
    backend_model: str, base_url: str, api_key: str, master_key: str
) -> Iterator[str]:
    """A LiteLLM proxy on 127.0.0.1 serving `MODEL` from the backend (clients send
    ``master_key``, which must start with ``sk-``); yields its ``/v1`` URL."""
    with tempfile.TemporaryDirectory(prefix="litellm-proxy-") as tmp:
        work = Path(tmp)
        config, log_config, log = work / "config.yaml", work / "log.json", work / "proxy.log"
        config.write_text(
            _CONFIG.format(
                model=MODEL,
                backend_model=backend_model,
                base_url=base_url,
                api_key=api_key,
                master_key=master_key,
            )
        )
        log_config.write_text(json.dumps(_LOG_CONFIG))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "DATABASE_"))}
        env.update(
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_LOG="ERROR",
            AIOHTTP_KEEPALIVE_TIMEOUT="4",
            NO_PROXY="127.0.0.1,localhost",
        )
        cmd = [
            str(_bin("litellm")), "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--num_workers", "1", "--log_config", str(log_config),
        ]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work,
                start_new_session=True,
            )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            health = f"{url}/health/liveliness"  # /health would call the model
            wait_ready(proc, health, "litellm proxy", log.read_text, 120)
            yield f"{url}/v1"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
