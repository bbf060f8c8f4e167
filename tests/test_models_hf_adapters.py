"""Tests for LoRA adapters as routable models (llmrouter.models._hf_adapters): adapters
built at test time with peft on the tiny model, sharing one copy of the base weights."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmrouter import ConfigurationError, ModelRouter, route_of
from llmrouter.models import huggingface_pipeline, loaded_models
from llmrouter.models._hf_loading import clear_pipelines, loaded_pipelines
from llmrouter.testing import build_tiny_chat_model, build_tiny_lora_adapter

PROMPT = "hello there"
MAX_NEW = 6


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a base of its own: the registry entry and its adapters are this module's alone
    return build_tiny_chat_model(tmp_path_factory.mktemp("lora-base"), seed=7)


@pytest.fixture(scope="module")
def adapters(base: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    return [build_tiny_lora_adapter(base, root / f"skill{i}", seed=i) for i in range(3)]


def reference(base: Path, adapter: Path | None, prompt: str = PROMPT) -> str:
    """What peft itself answers (greedy), with the same prompt rendering as the adapter."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=MAX_NEW, do_sample=False)
    return str(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))


def test_adapters_answer_as_peft_does_and_share_the_base(base: Path, adapters: list[Path]) -> None:
    clear_pipelines()
    plain = huggingface_pipeline(str(base), max_new_tokens=MAX_NEW)
    specs = [
        huggingface_pipeline(str(base), adapter=str(a), max_new_tokens=MAX_NEW) for a in adapters
    ]
    assert [s.name for s in specs] == ["skill0", "skill1", "skill2"]
    base_answer = plain.chat_model.invoke(PROMPT).content
    base_bytes = next(m.bytes for m in loaded_models() if m.name.endswith(str(base)))
    answers = [s.chat_model.invoke(PROMPT).content for s in specs]
    assert answers == [reference(base, a) for a in adapters]
    assert len(set(answers)) == 3 and base_answer not in answers
    assert plain.chat_model.invoke(PROMPT).content == base_answer == reference(base, None)
    assert loaded_pipelines().count(str(base)) == 1  # one copy of the base weights
    (entry,) = [m for m in loaded_models() if m.name.endswith(str(base))]
    assert base_bytes < entry.bytes <= 1.2 * base_bytes  # 1 base + 3 adapters
    reply = specs[1].chat_model.invoke(PROMPT)
    assert reply.response_metadata["adapter"] == str(adapters[1])


def test_concurrent_calls_to_several_adapters_keep_their_own_answers(
    base: Path, adapters: list[Path]
) -> None:
    chats = [
        huggingface_pipeline(
            str(base), adapter=str(a), max_new_tokens=MAX_NEW, batch_wait_ms=20
        ).chat_model
        for a in adapters
    ]
    alone = [chat.invoke(PROMPT).content for chat in chats]

    async def together() -> list[str]:
        calls = [chat.ainvoke(PROMPT) for chat in chats for _ in range(4)]
        return [str(r.content) for r in await asyncio.gather(*calls)]

    answers = asyncio.run(together())
    assert answers == [a for a in alone for _ in range(4)]
    streamed = "".join(str(c.content) for c in chats[2].stream(PROMPT))
    assert streamed == alone[2]


def test_a_router_routes_among_adapters_by_task(base: Path, adapters: list[Path]) -> None:
    sql, legal = (
        huggingface_pipeline(str(base), adapter=str(a), name=n, max_new_tokens=MAX_NEW)
        for a, n in zip(adapters[:2], ("sql", "legal"), strict=True)
    )
    router = ModelRouter(
        models=[sql, legal], routes={"sql": "sql", "legal": "legal"}, default="sql"
    )
    message = router.invoke(PROMPT, task="legal")
    assert route_of(message).model == "legal"
    assert message.content == reference(base, adapters[1])


def test_reloading_the_base_reloads_its_adapters(base: Path, adapters: list[Path]) -> None:
    chat = huggingface_pipeline(str(base), adapter=str(adapters[0]), max_new_tokens=MAX_NEW)
    before = chat.chat_model.invoke(PROMPT).content
    clear_pipelines()
    assert chat.chat_model.invoke(PROMPT).content == before


def test_bad_adapters(base: Path, adapters: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not supported: LoRA layers need"):
        huggingface_pipeline(str(base), adapter=str(adapters[0]), quantize="int8")
    not_adapter = Path(shutil.copytree(base, tmp_path / "not-an-adapter"))
    chat = huggingface_pipeline(str(base), adapter=str(not_adapter)).chat_model
    with pytest.raises(ConfigurationError, match=r"has no adapter_config\.json"):
        chat.invoke(PROMPT)
    other = Path(shutil.copytree(adapters[0], tmp_path / "other-architecture"))
    config = json.loads((other / "adapter_config.json").read_text())
    config["target_modules"] = ["q_proj", "v_proj"]  # a Llama's layers: not in GPT-2
    (other / "adapter_config.json").write_text(json.dumps(config))
    chat = huggingface_pipeline(str(base), adapter=str(other)).chat_model
    with pytest.raises(ConfigurationError, match=r"cannot load the adapter .* for this base"):
        chat.invoke(PROMPT)
    with pytest.raises(ConfigurationError, match="does not exist"):
        huggingface_pipeline(str(base), adapter=str(tmp_path / "none")).chat_model.invoke("x")
