"""The offline demo: a `ModelRouter` over two tiny local models (plus a remote one).

Run it with ``llmrouter demo``. Everything it needs is built on the spot: two
tiny random GPT-2 chat models (so their answers are gibberish -- the point is
the routing), a keyword classifier, and, when ``OPENAI_BASE_URL`` and
``OPENAI_API_KEY`` are set, an OpenAI-compatible endpoint as a third model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

from llmrouter.models import huggingface_pipeline, openai_compatible
from llmrouter.record import RouteRecord, route_of
from llmrouter.spec import ModelSpec
from llmrouter.task._classifiers import KeywordClassifier
from llmrouter.task._router import ModelRouter
from llmrouter.testing import build_tiny_chat_model

#: (prompt, explicit task or None): a mix of explicit, classified and default routes.
PROMPTS: list[tuple[str, str | None]] = [
    ("Write a Python function that reverses a list", None),
    ("Summarize: the meeting moved the launch to Friday.", None),
    ("Translate 'good morning' into French", "translation"),
    ("def fib(n): complete this code", "code_generation"),
    ("Hello! How are you today?", None),
    ("Give me a short summary of this paragraph about cats.", None),
]

CLASSIFIER_RULES = {
    "code_generation": ["python", "function", "code", "bug", "def"],
    "summarize": ["summarize", "summary", "tl;dr"],
}


@dataclass(frozen=True)
class DemoRow:
    prompt: str
    record: RouteRecord
    answer: str


def default_workdir() -> Path:
    """Where the demo keeps its tiny models (reused across runs)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmrouter" / "demo"


def build_router(workdir: Path, *, max_new_tokens: int = 12) -> ModelRouter:
    """Two tiny local models, an optional remote endpoint, and a keyword classifier."""
    chat_dir = build_tiny_chat_model(workdir / "tiny-chat", seed=0)
    coder_dir = build_tiny_chat_model(workdir / "tiny-coder", seed=1)
    generation: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
    models: list[ModelSpec] = [
        huggingface_pipeline(
            str(chat_dir), name="tiny-chat", tasks={"chat", "summarize"}, **generation
        ),
        # A local model can carry a price too: here, a made-up compute cost.
        huggingface_pipeline(
            str(coder_dir),
            name="tiny-coder",
            tasks={"code_generation"},
            input_cost=0.05,
            output_cost=0.10,
            **generation,
        ),
    ]
    routes = {"code_generation": "tiny-coder", "summarize": "tiny-chat"}
    if os.environ.get("OPENAI_BASE_URL") and os.environ.get("OPENAI_API_KEY"):
        remote_model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        models.append(
            openai_compatible(
                remote_model,
                name="remote",
                tasks={"translation", "code_generation"},
                input_cost=0.15,
                output_cost=0.60,
                max_tokens=max_new_tokens * 4,
                timeout=30,
            )
        )
        routes["translation"] = "remote"
    return ModelRouter(
        models=models,
        routes=routes,
        default="tiny-chat",
        classifier=KeywordClassifier(CLASSIFIER_RULES),
        name="demo-router",
    )


def run(router: ModelRouter, prompts: list[tuple[str, str | None]] = PROMPTS) -> list[DemoRow]:
    """Route every prompt; return what happened to each."""
    rows = []
    for prompt, task in prompts:
        message: AIMessage = router.invoke(prompt, task=task) if task else router.invoke(prompt)
        rows.append(DemoRow(prompt=prompt, record=route_of(message), answer=message.text))
    return rows
