"""Quickstart: a ModelRouter over two local models, offline.

Run: python examples/quickstart.py   (after ./scripts/demo.sh or scripts/setup.sh)

Builds two tiny random chat models (their answers are noise: the routing is the
point), routes by explicit task, by keyword classification and by default, then
streams one answer and shows the route record.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from llmrouter import ModelRouter, models, route_of
from llmrouter.classify import KeywordClassifier
from llmrouter.testing import build_tiny_chat_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    workdir = Path(tempfile.gettempdir()) / "llmrouter-quickstart"
    chat_dir = build_tiny_chat_model(workdir / "chat", seed=0)
    code_dir = build_tiny_chat_model(workdir / "code", seed=1)

    chat = models.huggingface_pipeline(
        str(chat_dir), name="chat", tasks={"chat", "summarize"}, max_new_tokens=10
    )
    coder = models.huggingface_pipeline(
        str(code_dir), name="coder", tasks={"code_generation"}, max_new_tokens=10
    )
    router = ModelRouter(
        models=[chat, coder],
        routes={"code_generation": "coder"},
        default="chat",
        classifier=KeywordClassifier({"code_generation": ["python", "function", "code"]}),
    )

    # 1. explicit task, 2. classified, 3. default
    for prompt, task in [
        ("Sort this list", "code_generation"),
        ("Write a Python function to add numbers", None),
        ("Good morning!", None),
    ]:
        msg = router.invoke(prompt, task=task) if task else router.invoke(prompt)
        record = route_of(msg)
        print(f"{prompt!r:45} -> {record.model:6} ({record.task_source}: {record.reason})")

    # LCEL: the router is just a chat model
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | router | StrOutputParser()
    print("chain answer:", repr(chain.invoke({"q": "Summarize: routers rank models."})))

    # streaming: the last chunk carries the route record
    full = None
    for chunk in router.stream("Tell me about code", task="code_generation"):
        full = chunk if full is None else full + chunk
    assert full is not None
    print("streamed via", full.response_metadata["model_name"], "usage", full.usage_metadata)


if __name__ == "__main__":
    main()
