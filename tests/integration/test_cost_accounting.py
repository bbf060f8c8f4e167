"""Cost accounting and budgets over real parts: llm-katan (echo) and the tiny local GPT-2.

llm-katan's echo backend reports usage in words: prompt = the words of every
message, completion = 8 header words + the words of the last user message. So
the USD of a scripted workload can be computed by hand, independently of the
usage the server reports, and the tracker must match it to the cent (and to
1e-9, in fact), streamed or not.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage, BaseMessageChunk

from llmrouter import ModelSpec, models, route_of
from llmrouter.cost._budget import Budget
from llmrouter.cost._prices import compute_prices
from llmrouter.cost._router import CostAwareRouter
from llmrouter.cost._tracker import CostTracker, track_costs
from llmrouter.errors import BudgetExceededError
from llmrouter.state._sqlite_ledger import SpendLedger

SMALL = {"input_cost": 2000.0, "output_cost": 4000.0}  # USD per 1M tokens: cents per call
BIG = {"input_cost": 10000.0, "output_cost": 30000.0}
LOCAL = compute_prices(usd_per_hour=36.0, output_tokens_per_second=10, input_tokens_per_second=100)
LONG = "Summarize: " + "routers pick the cheapest model that fits " * 70  # > 512 tokens

# prompt, call keywords, tags, the model that must answer
WORKLOAD: list[tuple[str, dict[str, Any], list[str], str]] = [
    ("Summarize: the router picks the cheapest model.", {"task": "summarize"}, ["batch"], "local"),
    ("Write a function that adds two numbers.", {"task": "code"}, [], "small"),
    ("Write a linked list in Rust.", {"task": "code", "min_quality": 0.9}, ["premium"], "big"),
    (LONG, {"task": "summarize", "max_tokens": 16}, ["batch"], "small"),
    ("Hello there, how are you today?", {"task": "chat", "max_cost": 0.05}, [], "local"),
]


def katan(server: Any, name: str, **kwargs: Any) -> ModelSpec:
    return models.openai_compatible(
        server.model, base_url=server.base_url, api_key=server.api_key, name=name, **kwargs
    )


@pytest.fixture(scope="module")
def local(tiny_model_dir: Path) -> ModelSpec:
    return models.huggingface_pipeline(
        str(tiny_model_dir),
        name="local",
        tasks={"chat", "summarize"},
        max_new_tokens=6,
        do_sample=False,
        **LOCAL,
    )


@pytest.fixture(scope="module")
def router(local: ModelSpec, katan_server: Any) -> CostAwareRouter:
    small = katan(katan_server, "small", quality={"code": 0.6}, **SMALL)
    big = katan(katan_server, "big", quality={"code": 0.95}, **BIG)
    return CostAwareRouter(name="costly", models=[local, small, big], max_tokens=12)


def words(text: str) -> int:
    return len(text.split())


def hand_usd(name: str, prompt: str, answer: str, tokenizer: Any) -> tuple[int, int, float]:
    """Tokens and USD of one call, computed from the texts, not from reported usage."""
    if name == "local":
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        i = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        o = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        prices = LOCAL
    else:
        i, o = words(prompt), 8 + words(prompt)
        prices = SMALL if name == "small" else BIG
    return i, o, (i * prices["input_cost"] + o * prices["output_cost"]) / 1e6


def run_workload(router: CostAwareRouter, stream: bool) -> list[AIMessage]:
    answers: list[AIMessage] = []
    for prompt, kwargs, tags, _ in WORKLOAD:
        config: Any = {"tags": tags}
        if stream:
            full: BaseMessageChunk | None = None
            for chunk in router.stream(prompt, config, **kwargs):
                full = chunk if full is None else full + chunk
            assert full is not None
            answers.append(
                AIMessage(content=full.content, response_metadata=full.response_metadata)
            )
        else:
            answers.append(router.invoke(prompt, config, **kwargs))
    return answers


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_accounting_equals_hand_computed_usd(
    router: CostAwareRouter, tiny_model_dir: Path, stream: bool
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    small = router.spec("small")
    with track_costs(models=[small]) as usage:
        answers = run_workload(router, stream)
        direct = small.chat_model.invoke("A direct call outside the router.")

    by_model: dict[str, float] = {}
    expected_total = 0.0
    for (prompt, _, _, want), answer in zip(WORKLOAD, answers, strict=True):
        record = route_of(answer)
        assert record.model == want, record.reason
        i, o, usd = hand_usd(want, prompt, str(answer.content), tokenizer)
        assert record.usage is not None and (
            record.usage.input_tokens,
            record.usage.output_tokens,
        ) == (i, o)
        assert record.cost_usd == pytest.approx(usd, abs=1e-12)
        by_model[want] = by_model.get(want, 0.0) + usd
        expected_total += usd
    direct_usd = hand_usd("small", "A direct call outside the router.", "", None)[2]
    assert direct.usage_metadata is not None
    by_model["small"] += direct_usd
    expected_total += direct_usd

    assert usage.total.calls == len(WORKLOAD) + 1
    assert round(usage.total_cost, 2) == round(expected_total, 2)  # to the cent ...
    assert usage.total_cost == pytest.approx(expected_total, abs=1e-9)  # ... and far below
    assert {k: round(v.cost_usd, 9) for k, v in usage.by_model.items()} == {
        k: round(v, 9) for k, v in by_model.items()
    }
    assert {k: v.calls for k, v in usage.by_router.items()} == {"(direct)": 1, "costly": 5}
    assert {k: v.calls for k, v in usage.by_task.items()} == {
        "(none)": 1,
        "chat": 1,
        "code": 2,
        "summarize": 2,
    }
    assert {k: v.calls for k, v in usage.by_tag.items()} == {"batch": 2, "premium": 1}


def test_stream_and_invoke_book_identical_costs(router: CostAwareRouter) -> None:
    with track_costs() as invoked:
        run_workload(router, stream=False)
    with track_costs() as streamed:
        run_workload(router, stream=True)
    assert invoked.by_model == streamed.by_model
    assert invoked.total_cost == streamed.total_cost > 0


def test_token_counts_agree_with_langchains_usage_callback(
    router: CostAwareRouter, tiny_model_dir: Path
) -> None:
    small, local = router.spec("small"), router.spec("local")
    with get_usage_metadata_callback() as langchain, track_costs() as ours:
        small.chat_model.invoke("direct to the server")
        local.chat_model.invoke("direct to the local model")
    assert set(langchain.usage_metadata) == set(ours.by_backend)
    for backend, theirs in langchain.usage_metadata.items():
        mine = ours.by_backend[backend]
        assert (theirs["input_tokens"], theirs["output_tokens"], theirs["total_tokens"]) == (
            mine.input_tokens,
            mine.output_tokens,
            mine.total_tokens,
        )
    # Through a router LangChain books every call once, under the spec name (the
    # router's answer; the model runs inside the router's run). Ours too.
    with get_usage_metadata_callback() as langchain, track_costs() as ours:
        router.invoke("route me please", task="code")
    assert ours.total.calls == 1 and ours.by_model["small"].total_tokens > 0
    assert set(langchain.usage_metadata) == {"small"}
    assert langchain.usage_metadata["small"]["total_tokens"] == ours.total_tokens


def test_estimates_use_the_local_tokenizer_and_label_remote_estimates(
    router: CostAwareRouter,
) -> None:
    record = route_of(router.invoke("Summarize: routers and budgets.", task="summarize"))
    assert record.model == "local" and record.extra["token_count"] == "tokenizer"
    assert record.usage is not None
    assert record.extra["prompt_tokens"]["local"] == record.usage.input_tokens  # exact
    assert record.extra["token_counting"] == {
        "local": "tokenizer",
        "small": "estimate",
        "big": "estimate",
    }
    assert record.estimated_cost_usd is not None and record.cost_usd is not None
    assert record.cost_usd <= record.estimated_cost_usd  # output is at most max_tokens


async def test_budget_holds_under_32_concurrent_async_calls(
    katan_server: Any, tmp_path: Path
) -> None:
    db = tmp_path / "spend.db"
    budget = Budget(usd=1.0, per="day", on_exceeded="refuse")
    router = CostAwareRouter(
        name="concurrent",
        models=[katan(katan_server, "small", **SMALL)],
        budget=budget,
        spend_db=db,
    )

    async def call(i: int) -> AIMessage | BudgetExceededError:
        try:
            return await router.ainvoke(f"request {i} says hello", max_tokens=16)
        except BudgetExceededError as exc:
            return exc

    results = await asyncio.gather(*(call(i) for i in range(32)))
    answered = [r for r in results if isinstance(r, AIMessage)]
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    assert answered and refused and len(answered) + len(refused) == 32
    estimate = max(route_of(m).estimated_cost_usd or 0.0 for m in answered)
    spent = router.budget_status()[0].spent_usd
    actual = sum(route_of(m).cost_usd or 0.0 for m in answered)
    assert spent == pytest.approx(actual)  # every answer settled, at its real cost
    assert spent <= budget.usd + estimate  # the bound (in fact <= budget.usd)
    assert spent <= budget.usd
    rows = SpendLedger(db).rows("concurrent")
    assert len(rows) == len(answered) and {r["state"] for r in rows} == {"settled"}

    # a restart (new router, same database and name) keeps the spend and the limit
    restarted = CostAwareRouter(
        name="concurrent",
        models=[katan(katan_server, "small", **SMALL)],
        budget=budget,
        spend_db=db,
    )
    assert restarted.budget_status()[0].spent_usd == pytest.approx(spent)
    with pytest.raises(BudgetExceededError) as info:
        await restarted.ainvoke("one more, please", max_tokens=400)
    assert f"spent ${spent:.6f} and $0.000000 reserved by 0 calls in flight" in str(info.value)


def test_downgrade_sends_requests_to_the_free_local_model_when_money_runs_out(
    katan_server: Any, tiny_model_dir: Path
) -> None:
    free = models.huggingface_pipeline(
        str(tiny_model_dir), name="free", max_new_tokens=4, do_sample=False
    )
    router = CostAwareRouter(
        models=[free, katan(katan_server, "small", **SMALL)],
        objective="fastest",
        budget=Budget(usd=0.2, per="hour", on_exceeded="downgrade"),
        spend_db=":memory:",
    )
    router.observe_latency("small", 0.001)
    router.observe_latency("free", 10.0)  # small looks fastest
    # each call: estimated $0.046, actual $0.044; after 4 calls $0.024 is left
    records = [route_of(router.invoke("hello budget", max_tokens=8)) for _ in range(6)]
    assert [r.model for r in records] == ["small"] * 4 + ["free"] * 2
    assert "downgraded by budget from 'small'" in records[-1].reason
    assert "exceeds the remaining $0.024000" in records[-1].extra["excluded"]["small"]
    assert router.budget_status()[0].spent_usd == pytest.approx(4 * 0.044)


def test_cost_tracker_as_an_explicit_callback_handler(router: CostAwareRouter) -> None:
    tracker = CostTracker()
    router.invoke("Write a function.", task="code", config={"callbacks": [tracker]})
    assert tracker.by_model["small"].calls == 1 and tracker.total_cost > 0
