"""ABRouter: assignment, stickiness, ramps, records, feedback, shadow, canary, bad input."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from _fixtures.fakes import Recorder, ToolRecorder, spec
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from scipy import stats

from llmrouter import (
    AllModelsFailedError,
    ConfigurationError,
    ModelRouter,
    ModelSpec,
    route_of,
)
from llmrouter.ab._router import ABRouter, CanaryGuard, RampSchedule, assignment_point
from llmrouter.ab._store import ExperimentRecord, ExperimentStoreWarning, SQLiteStore
from llmrouter.errors import ExperimentError, UnknownRequestError

KEYS = [f"user-{i}" for i in range(10_000)]


class Sleeper(BaseChatModel):
    """Answers ``reply`` after ``delay`` seconds (time.sleep, or asyncio.sleep when async).

    With a ``gate`` (a threading.Event for sync calls, an asyncio.Event for async
    ones) it answers only once the gate is set: runs stay pending for as long as a
    test needs, however slow the machine.
    """

    delay: float = 0.5
    reply: str = "slow"
    fail: bool = False
    gate: Any = None

    @property
    def _llm_type(self) -> str:
        return "sleeper"

    def _answer(self) -> ChatResult:
        if self.fail:
            raise ConnectionError("shadow down")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.reply))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.gate is not None:
            self.gate.wait()
        time.sleep(self.delay)
        return self._answer()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        return self._answer()


def make(**kwargs: Any) -> ABRouter:
    options: dict[str, Any] = {
        "variants": {
            "control": spec("gpt", reply="C", usage=(10, 5), input_cost=1.0, output_cost=2.0),
            "candidate": spec("local", reply="L", usage=(10, 6)),
        },
        "weights": {"control": 0.5, "candidate": 0.5},
        "experiment": "exp",
        "max_retries": 0,  # fakes fail for good: fall back at once
    }
    options.update(kwargs)
    return ABRouter(**options)


def recorder(ab: ABRouter, variant: str) -> Recorder:
    model = ab.variants[variant].model
    assert isinstance(model, Recorder)
    return model


def shadow_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("llmrouter-shadow")]


@pytest.fixture
def closing() -> Iterator[list[ABRouter]]:
    """Routers appended here are closed after the test (no shadow thread outlives it)."""
    routers: list[ABRouter] = []
    yield routers
    for router in routers:
        router.close(timeout=5)


# ---------------------------------------------------------------- assignment


def test_assignment_proportions_over_10000_keys() -> None:
    ab = make(weights={"control": 0.9, "candidate": 0.1})
    hits = sum(ab.variant_for(key) == "candidate" for key in KEYS)
    assert stats.binomtest(hits, len(KEYS), 0.1).pvalue > 0.001
    assert abs(hits - 1000) < 5 * 30  # five standard deviations

    three = make(
        variants={name: spec(name) for name in ("a", "b", "c")},
        weights={"a": 0.5, "b": 0.3, "c": 0.2},
    )
    counts = [sum(three.variant_for(k) == name for k in KEYS) for name in ("a", "b", "c")]
    assert stats.chisquare(counts, [5000, 3000, 2000]).pvalue > 0.001


def test_assignment_points_are_uniform() -> None:
    points = [assignment_point("exp", key) for key in KEYS]
    assert stats.kstest(points, "uniform").pvalue > 0.001


def test_users_stick_across_router_instances_and_restarts() -> None:
    first, second = make(), make(store=":memory:")
    sample = KEYS[:500]
    assignments = {key: first.variant_for(key) for key in sample}
    assert assignments == {key: second.variant_for(key) for key in sample}
    for key in sample[:20]:  # and what the calls get is what variant_for says
        assert route_of(first.invoke("hi", user=key)).extra["variant"] == assignments[key]
    # a new interpreter (another hash seed): the same assignment
    code = (
        "import json, sys\n"
        "from langchain_core.language_models import FakeListChatModel\n"
        "from llmrouter.ab._router import ABRouter\n"
        "ab = ABRouter(variants={'control': FakeListChatModel(responses=['C']),\n"
        "                        'candidate': FakeListChatModel(responses=['L'])},\n"
        "              weights={'control': 0.5, 'candidate': 0.5}, experiment='exp')\n"
        "print(json.dumps({k: ab.variant_for(k) for k in json.loads(sys.stdin.read())}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(sample),
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    assert json.loads(out.stdout) == assignments
    # another experiment re-draws the assignment
    other = make(experiment="exp-2")
    same = sum(other.variant_for(k) == assignments[k] for k in sample)
    assert 150 < same < 350


def test_ramp_moves_only_the_users_it_must() -> None:
    ab = make(weights={"control": 0.9, "candidate": 0.1})
    before = {k: ab.variant_for(k) for k in KEYS}
    assert ab.ramp(candidate=0.5) == {"control": 0.5, "candidate": 0.5}
    after = {k: ab.variant_for(k) for k in KEYS}
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(before[k] == "control" and after[k] == "candidate" for k in moved)
    assert abs(len(moved) / len(KEYS) - 0.4) < 0.02
    # exactly the users whose point lies between the old and the new edge
    assert set(moved) == {k for k in KEYS if 0.1 <= assignment_point("exp", k) < 0.5}
    ab.ramp({"candidate": 0.2})
    down = {k: ab.variant_for(k) for k in KEYS}
    assert all(after[k] == "candidate" for k in KEYS if down[k] == "candidate")


def test_ramps_never_move_users_between_candidates() -> None:
    names = ["control", "a", "b", "c", "d"]
    ab = make(
        variants={name: spec(name) for name in names},
        weights={"control": 0.6, "a": 0.1, "b": 0.1, "c": 0.1, "d": 0.1},
    )
    before = {k: ab.variant_for(k) for k in KEYS}
    ab.ramp(a=0.3, d=0.2)
    after = {k: ab.variant_for(k) for k in KEYS}
    for key in KEYS:
        if before[key] != after[key]:
            assert {before[key], after[key]} in ({"control", "a"}, {"control", "d"})
    assert after == {k: ab.variant_for(k) for k in KEYS}  # deterministic
    # four candidates share two lanes of 50%: a pair cannot take more than its lane
    with pytest.raises(ConfigurationError, match=r"share a lane of 50.0%.*add up to 60.0%"):
        ab.ramp(a=0.4, b=0.2)
    assert ab.weights["a"] == pytest.approx(0.3)  # a refused ramp changes nothing


def test_ramp_validation_and_events() -> None:
    ab = make()
    with pytest.raises(ConfigurationError, match=r"unknown variant\(s\) \['nope'\]"):
        ab.ramp(nope=0.1)
    with pytest.raises(ConfigurationError, match=r"must lie in \[0, 1\]"):
        ab.ramp(candidate=1.5)
    with pytest.raises(ConfigurationError, match="shares must sum to 1"):
        ab.ramp(control=0.5, candidate=0.1)
    assert ab.ramp(control=0.2, candidate=0.8) == {"control": 0.2, "candidate": 0.8}
    assert ab.ramp(candidate=1.0) == {"control": 0.0, "candidate": 1.0}
    assert all(ab.variant_for(k) == "candidate" for k in KEYS[:100])
    shares = [e.detail["shares"] for e in ab.store.events("exp") if e.kind == "ramp"]
    assert shares == [{"control": 0.2, "candidate": 0.8}, {"control": 0.0, "candidate": 1.0}]


# ------------------------------------------------------------------- keys


def test_the_assignment_key_comes_from_user_metadata_thread_or_key_fn() -> None:
    ab = make()

    def extra(**kwargs: Any) -> dict[str, Any]:
        return route_of(ab.invoke("hi", **kwargs)).extra

    assert (
        extra(user="u1").items() >= {"assignment": "user", "key": "u1", "experiment": "exp"}.items()
    )
    assert extra(user="u1")["variant"] == ab.variant_for("u1")
    assert extra(config={"metadata": {"user": "u2"}})["key"] == "u2"
    assert extra(config={"metadata": {"user_id": "u3"}})["key"] == "u3"
    assert extra(thread_id="t1")["assignment"] == "thread_id"
    assert extra(config={"configurable": {"thread_id": "t2"}})["key"] == "t2"
    assert extra(user="u1", thread_id="t1")["key"] == "u1"  # the user wins over the thread
    random_call = extra()
    assert random_call["assignment"] == "random" and random_call["key"] is None
    assert ab.bind(user="u9").invoke("hi").response_metadata["route"]["extra"]["key"] == "u9"
    by_fn = make(key_fn=lambda request: request.metadata.get("tenant"))
    keyed = route_of(by_fn.invoke("hi", config={"metadata": {"tenant": "acme"}}))
    assert keyed.extra["assignment"] == "key_fn" and keyed.extra["key"] == "acme"
    assert route_of(by_fn.invoke("hi", user="u1")).extra["assignment"] == "user"  # fn said None
    unsticky = make(sticky=False)
    assert route_of(unsticky.invoke("hi", user="u1")).extra["assignment"] == "random"


def test_random_assignment_follows_the_weights() -> None:
    ab = make(weights={"control": 0.8, "candidate": 0.2}, sticky=False)
    variants = [route_of(ab.invoke("hi")).extra["variant"] for _ in range(300)]
    assert stats.binomtest(variants.count("candidate"), 300, 0.2).pvalue > 0.001


def test_user_is_consumed_not_passed_to_the_model() -> None:
    ab = make(weights={"control": 1.0})
    ab.invoke("hi", user="u1", temperature=0.3)
    (call,) = recorder(ab, "control").calls
    assert "user" not in call and call["temperature"] == 0.3


# ---------------------------------------------------------------- records


def test_each_request_is_stored_with_variant_key_latency_tokens_and_cost() -> None:
    ab = make(weights={"control": 1.0})
    msg = ab.invoke("hi", user="u1")
    route = route_of(msg)
    (stored,) = ab.store.records("exp")
    assert stored == ExperimentRecord(
        request_id=route.request_id,
        experiment="exp",
        variant="control",
        model="gpt",
        key="u1",
        created_at=stored.created_at,
        latency_s=route.latency_s,
        input_tokens=10,
        output_tokens=5,
        total_tokens=15,
        cost_usd=pytest.approx((10 * 1.0 + 5 * 2.0) / 1e6),  # type: ignore[arg-type]
    )
    assert abs(stored.created_at - time.time()) < 60


def test_a_failing_candidate_falls_back_but_the_error_counts_against_it() -> None:
    ab = make(weights={"candidate": 1.0})
    recorder(ab, "candidate").fail_with = ConnectionError
    msg = ab.invoke("hi", user="u1")
    assert msg.content == "C" and route_of(msg).model == "gpt"
    assert route_of(msg).candidates == ["local", "gpt"]
    (stored,) = ab.store.records("exp")
    assert (stored.variant, stored.model, stored.error_type) == (
        "candidate",
        "gpt",
        "ConnectionError",
    )
    candidate = ab.report().variant("candidate")
    assert (candidate.errors, candidate.fallbacks, candidate.error_rate) == (1, 1, 1.0)

    strict = make(weights={"candidate": 1.0}, fallback=False, experiment="strict")
    recorder(strict, "candidate").fail_with = ConnectionError
    with pytest.raises(AllModelsFailedError):
        strict.invoke("hi", user="u1")
    (failed,) = strict.store.records("strict")
    assert failed.model is None and failed.error_type == "ConnectionError"
    assert failed.latency_s is not None and failed.latency_s >= 0


def test_a_retry_that_succeeds_is_not_an_error() -> None:
    ab = make(weights={"candidate": 1.0}, max_retries=1)
    recorder(ab, "candidate").fail_times = 1
    msg = ab.invoke("hi", user="u1")
    assert route_of(msg).model == "local" and len(route_of(msg).attempts) == 2
    (stored,) = ab.store.records("exp")
    assert stored.ok and stored.model == "local"


def test_a_variant_that_cannot_take_the_request_counts_as_an_error() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    ab = make(
        variants={
            "control": spec("gpt", cls=ToolRecorder),
            "candidate": spec("local"),  # no bind_tools
        },
        weights={"candidate": 1.0},
    )
    msg = ab.bind_tools([add]).invoke("add 1 and 2", user="u1")
    assert route_of(msg).model == "gpt"
    (stored,) = ab.store.records("exp")
    assert stored.variant == "candidate" and stored.error_type == "NotAttempted"


async def test_async_and_streamed_calls_are_stored_once() -> None:
    ab = make(weights={"control": 1.0})
    await ab.ainvoke("hi", user="u1")
    chunks = [chunk async for chunk in ab.astream("hi", user="u2")]
    assert chunks
    list(ab.stream("hi", user="u3"))
    assert sorted(r.key or "" for r in ab.store.records("exp")) == ["u1", "u2", "u3"]


def test_concurrent_calls_from_threads_and_asyncio_lose_no_record(tmp_path: Path) -> None:
    ab = make(store=f"sqlite:///{tmp_path}/exp.db")
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(lambda i: ab.invoke("hi", user=f"t{i}"), range(64 * 3)))

    async def many() -> None:
        await asyncio.gather(*(ab.ainvoke("hi", user=f"a{i}") for i in range(64)))

    asyncio.run(many())
    records = SQLiteStore(tmp_path / "exp.db").records("exp")
    assert len(records) == 64 * 4 == len({r.request_id for r in records})
    assert ab.store_errors == 0


# --------------------------------------------------------------- feedback


async def test_feedback_by_message_request_id_or_record() -> None:
    ab = make()
    first, second, third = (ab.invoke("hi", user=f"u{i}") for i in range(3))
    ab.record_feedback(first, score=1)
    ab.record_feedback(route_of(second).request_id, score=0.5)
    ab.record_feedback(route_of(third), score=True)
    await ab.arecord_feedback(first, score=0)
    scores = [(f.request_id, f.score) for f in ab.store.feedback("exp")]
    ids = [route_of(m).request_id for m in (first, second, third)]
    assert scores == [(ids[0], 1.0), (ids[1], 0.5), (ids[2], 1.0), (ids[0], 0.0)]


def test_feedback_reaches_an_experiment_nested_in_another_router() -> None:
    ab = make()
    outer = ModelRouter(models=[ModelSpec(name="experiment", model=ab)], default="experiment")
    msg = outer.invoke("hi", user="u1")
    ab.record_feedback(msg, score=1)
    (stored,) = ab.store.records("exp")
    assert ab.store.feedback("exp")[0].request_id == stored.request_id
    assert stored.request_id != route_of(msg).request_id


def test_feedback_for_unknown_requests_and_bad_scores_is_refused() -> None:
    ab = make()
    msg = ab.invoke("hi", user="u1")
    with pytest.raises(UnknownRequestError, match="no request 'nope' in the store of experiment"):
        ab.record_feedback("nope", score=1)
    with pytest.raises(UnknownRequestError, match="carries no route record"):
        ab.record_feedback(AIMessage(content="not from a router"), score=1)
    other = make(experiment="other", store=ab.store)
    with pytest.raises(UnknownRequestError, match="belongs to experiment 'exp'"):
        other.record_feedback(msg, score=1)
    for bad in (float("nan"), float("inf"), "good"):
        with pytest.raises(ValueError, match="finite number"):
            ab.record_feedback(msg, score=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a message"):
        ab.record_feedback(42, score=1)  # type: ignore[arg-type]
    assert ab.store.feedback("exp") == []


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"weights": {"control": 0, "candidate": 0}}, "sum to a positive number"),
        ({"weights": {"control": -1, "candidate": 2}}, r"weights\['control'\] must be a finite"),
        ({"weights": {"control": float("nan")}}, "must be a finite number"),
        ({"weights": {"contrl": 1}}, r"unknown variant\(s\) \['contrl'\]"),
        ({"control": "baseline"}, "control 'baseline' is not a variant"),
        ({"variants": {"only": spec("x")}}, "at least two variants"),
        ({"variants": {}}, "variants must be a non-empty dict"),
        ({"variants": {"a": "gpt-4o", "b": spec("x")}}, r"variants\['a'\] is a str"),
        ({"models": [spec("x")]}, "do not pass models="),
        ({"wieghts": {"control": 1}}, r"unknown keyword 'wieghts' \(did you mean 'weights'\?\)"),
        ({"experiment": " "}, "experiment must be a non-empty name"),
        ({"store": "redis://host"}, "no built-in store for 'redis'"),
        ({"mode": "shadow", "guard": CanaryGuard()}, "no effect in shadow mode"),
        ({"mode": "blue-green"}, "mode"),
        ({"shadow_rate": 2}, "shadow_rate"),
        (
            {
                "variants": {n: spec(n) for n in ("c", "a", "b", "d")},
                "weights": {"c": 0.2, "a": 0.3, "b": 0.3, "d": 0.2},
            },
            "share a lane",
        ),
        (
            {"schedule": RampSchedule([(10, {"candidate": 2.0})])},
            r"schedule step 0: share of 'candidate' must lie in \[0, 1\]",
        ),
    ],
)
def test_bad_configuration_is_a_clear_error(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make(**options)


def test_variants_accept_bare_models_and_specs() -> None:
    ab = make(variants={"control": Recorder(reply="C"), "candidate": spec("local-gpt2")})
    assert [s.name for s in ab.models] == ["control", "local-gpt2"]
    assert ab.weights == {"control": 0.5, "candidate": 0.5}  # default: equal
    partial = make(weights={"candidate": 3})
    assert partial.weights == {"control": 0.0, "candidate": 1.0}
    assert partial.candidates == ["candidate"] and partial.control == "control"


# ------------------------------------------------- a store that cannot be written


class BrokenStore(SQLiteStore):
    def add_record(self, record: ExperimentRecord) -> None:
        raise OSError("disk full")


def test_a_store_that_cannot_be_written_never_fails_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ab = make(store=BrokenStore())
    with caplog.at_level(logging.ERROR), pytest.warns(ExperimentStoreWarning, match="disk full"):
        msg = ab.invoke("hi", user="u1")
    assert msg.content in ("C", "L") and ab.store_errors == 1
    assert "could not write request" in route_of(msg).extra["experiment_store_error"]
    assert any(r.levelno == logging.ERROR and "disk full" in r.getMessage() for r in caplog.records)

    closed = make(experiment="closed")
    closed.store.close()
    with pytest.warns(ExperimentStoreWarning, match="StoreClosedError"):
        assert asyncio.run(closed.ainvoke("hi", user="u1")).content in ("C", "L")
    assert closed.store_errors == 1


# ------------------------------------------------------------------ shadow


def test_shadow_mode_the_control_answers_and_the_candidate_is_recorded(
    closing: list[ABRouter],
) -> None:
    ab = make(mode="shadow")
    closing.append(ab)
    msg = ab.invoke("What is 2+2?", user="u1", max_tokens=5)
    assert msg.content == "C" and route_of(msg).candidates == ["gpt"]
    assert ab.wait_shadows(timeout=5)
    live, shadow = ab.store.records("exp")
    assert (live.variant, live.shadow, live.request_id) == (
        "control",
        False,
        route_of(msg).request_id,
    )
    assert (shadow.variant, shadow.shadow, shadow.parent_id) == ("candidate", True, live.request_id)
    assert (shadow.prompt, shadow.output, shadow.reference_output) == ("What is 2+2?", "L", "C")
    assert (shadow.model, shadow.total_tokens, shadow.key) == ("local", 16, "u1")
    # the shadow got the same model keywords, and no router keyword
    (call,) = recorder(ab, "candidate").calls
    assert call["max_tokens"] == 5 and "user" not in call
    report = ab.report()
    assert [v.label for v in report.variants] == ["control", "candidate (shadow)"]
    ab.record_feedback(shadow.request_id, score=1)  # shadow outputs can be scored too
    with pytest.raises(ExperimentError, match="no effect in shadow mode"):
        ab.ramp(candidate=0.5)


def test_a_failing_shadow_never_fails_the_call(closing: list[ABRouter]) -> None:
    ab = make(mode="shadow", record_outputs=False)
    closing.append(ab)
    recorder(ab, "candidate").fail_with = ConnectionError
    assert ab.invoke("hi", user="u1").content == "C"
    assert ab.wait_shadows(timeout=5)
    shadow = next(r for r in ab.store.records("exp") if r.shadow)
    assert shadow.error_type == "ConnectionError" and shadow.model is None
    assert shadow.output is None and shadow.prompt is None  # record_outputs=False


def test_the_shadow_gets_the_calls_own_stop_and_keywords(closing: list[ABRouter]) -> None:
    ab = make(mode="shadow", stop=["##"])
    closing.append(ab)
    ab.invoke("hi", user="u1", stop=["END"], max_tokens=7)
    assert ab.wait_shadows(timeout=5)
    control, shadow = recorder(ab, "control").calls[-1], recorder(ab, "candidate").calls[-1]
    assert control["stop"] == shadow["stop"] == ["END"]
    assert control["max_tokens"] == shadow["max_tokens"] == 7


def test_the_shadow_still_runs_when_the_control_fails(closing: list[ABRouter]) -> None:
    ab = make(mode="shadow")
    closing.append(ab)
    recorder(ab, "control").fail_with = ConnectionError
    with pytest.raises(AllModelsFailedError):
        ab.invoke("hi", user="u1")
    assert ab.wait_shadows(timeout=5)
    live, shadow = ab.store.records("exp")
    assert live.error_type == "ConnectionError"
    assert shadow.output == "L" and shadow.reference_output is None


def test_streamed_shadow_requests_compare_the_joined_answer(closing: list[ABRouter]) -> None:
    ab = make(
        mode="shadow",
        variants={"control": spec("gpt", reply="one two three"), "candidate": spec("local")},
    )
    closing.append(ab)
    text = "".join(str(chunk.content) for chunk in ab.stream("hi", user="u1"))
    assert text == "one two three"
    assert ab.wait_shadows(timeout=5)
    shadow = next(r for r in ab.store.records("exp") if r.shadow)
    assert shadow.reference_output == "one two three"


def test_shadow_rate_mirrors_a_share_of_users() -> None:
    ab = make(mode="shadow", shadow_rate=0.3)
    mirrored = [bool(route_of(ab.invoke("hi", user=f"u{i}")).extra["shadow"]) for i in range(200)]
    assert stats.binomtest(sum(mirrored), 200, 0.3).pvalue > 0.001
    again = [bool(route_of(ab.invoke("hi", user=f"u{i}")).extra["shadow"]) for i in range(20)]
    assert again == mirrored[:20]  # by key: the same requests are mirrored
    ab.close(timeout=10)


def _p50_latency(router: ABRouter, calls: int) -> float:
    latencies = []
    for i in range(calls):
        started = time.perf_counter()
        router.invoke("hi", user=f"u{i}")
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies)


def test_a_slow_shadow_never_slows_the_control_path() -> None:
    slow = {"control": spec("gpt"), "candidate": ModelSpec(name="slow", model=Sleeper(delay=0.5))}
    baseline = make(variants=slow, weights={"control": 1.0})  # split, nobody on the candidate
    shadowed = make(variants=slow, mode="shadow", max_pending_shadows=100)
    baseline_p50, shadow_p50 = _p50_latency(baseline, 6), _p50_latency(shadowed, 6)
    print(
        f"control p50: {baseline_p50 * 1000:.1f} ms alone, {shadow_p50 * 1000:.1f} ms with shadow"
    )
    assert shadow_p50 < 0.25  # the shadow takes 0.5 s per call
    assert shadow_p50 - baseline_p50 < 0.1
    assert shadowed.wait_shadows(timeout=10)
    shadows = [r for r in shadowed.store.records("exp") if r.shadow]
    assert len(shadows) == 6 and all(r.latency_s and r.latency_s >= 0.5 for r in shadows)
    shadowed.close()
    assert not shadow_threads()  # close() joined the shadow threads


async def test_a_slow_async_shadow_never_slows_the_control_path() -> None:
    gate = asyncio.Event()  # the shadow answers only when the test says so
    slow = {
        "control": spec("gpt"),
        "candidate": ModelSpec(name="slow", model=Sleeper(delay=0, gate=gate)),
    }
    ab = make(variants=slow, mode="shadow")
    latencies = []
    for i in range(6):
        started = time.perf_counter()
        await ab.ainvoke("hi", user=f"u{i}")
        latencies.append(time.perf_counter() - started)
    assert statistics.median(latencies) < 0.25
    assert len(ab._shadows.tasks) == 6  # running in the background, references held
    assert not await ab.await_shadows(timeout=0.05)  # still blocked on the gate
    gate.set()
    assert await ab.await_shadows(timeout=5)
    assert not ab._shadows.tasks and sum(r.shadow for r in ab.store.records("exp")) == 6
    await ab.aclose()


async def test_async_shadows_are_stored_and_the_loop_is_not_blocked(tmp_path: Path) -> None:
    slow = {"control": spec("gpt"), "candidate": ModelSpec(name="slow", model=Sleeper(delay=0.2))}
    ab = make(variants=slow, mode="shadow", store=f"sqlite:///{tmp_path}/a.db")
    await asyncio.gather(*(ab.ainvoke("hi", user=f"u{i}") for i in range(10)))
    assert await ab.await_shadows(timeout=5)
    shadows = [r for r in ab.store.records("exp") if r.shadow]
    assert len(shadows) == 10 and all(r.output == "slow" for r in shadows)
    await ab.aclose()


def test_the_shadow_queue_is_bounded() -> None:
    gate = threading.Event()  # no shadow finishes (and frees a slot) until the test says so
    slow = {
        "control": spec("gpt"),
        "candidate": ModelSpec(name="slow", model=Sleeper(delay=0, gate=gate)),
    }
    ab = make(variants=slow, mode="shadow", max_pending_shadows=2, shadow_workers=1)
    for i in range(5):
        ab.invoke("hi", user=f"u{i}")
    assert ab.shadows_dropped == 3
    gate.set()
    assert ab.wait_shadows(timeout=5)
    assert sum(r.shadow for r in ab.store.records("exp")) == 2
    ab.close()
    assert not shadow_threads()


def test_close_leaves_no_thread_and_the_router_can_be_a_context_manager() -> None:
    slow = {"control": spec("gpt"), "candidate": ModelSpec(name="slow", model=Sleeper(delay=0.2))}
    store = SQLiteStore()
    with make(variants=slow, mode="shadow", store=store) as ab:
        ab.invoke("hi", user="u1")
        assert shadow_threads()
    assert not shadow_threads()
    assert len(store.records("exp")) == 2  # a store passed in stays open


# ------------------------------------------------------------------ canary


def test_canary_rolls_back_a_failing_candidate_and_users_never_see_the_errors() -> None:
    guard = CanaryGuard(max_error_rate=0.2, min_requests=5, window=10)
    ab = make(mode="canary", guard=guard, weights={"control": 0.5, "candidate": 0.5})
    recorder(ab, "candidate").fail_with = ConnectionError
    answers = [ab.invoke("hi", user=f"u{i}").content for i in range(60)]
    assert set(answers) == {"C"}  # every candidate failure fell back to the control
    assert ab.weights == {"control": 1.0, "candidate": 0.0} and ab.rolled_back == {"candidate"}
    candidate_calls = len(recorder(ab, "candidate").calls)
    assert candidate_calls == 5  # rolled back on the 5th; nobody reached it after
    (event,) = ab.store.events("exp")
    assert event.kind == "rollback" and event.variant == "candidate"
    assert event.detail["reason"] == "error rate 100% > 20% over the last 5 requests"
    assert event.detail["shares"] == {"control": 1.0, "candidate": 0.0}
    assert "rollback 'candidate'" in str(ab.report())


def test_canary_rolls_back_on_latency() -> None:
    slow = {"control": spec("gpt"), "candidate": ModelSpec(name="slow", model=Sleeper(delay=0.03))}
    guard = CanaryGuard(max_error_rate=None, max_p95_latency_s=0.02, min_requests=3, window=5)
    ab = make(variants=slow, mode="canary", guard=guard, weights={"candidate": 1.0})
    for i in range(4):
        ab.invoke("hi", user=f"u{i}")
    assert ab.rolled_back == {"candidate"}
    assert "p95 latency" in ab.store.events("exp")[0].detail["reason"]


def test_a_stored_rollback_is_honoured_until_a_ramp(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/canary.db"
    guard = CanaryGuard(max_error_rate=0.1, min_requests=2, window=2)
    first = make(mode="canary", guard=guard, store=url)
    recorder(first, "candidate").fail_with = ConnectionError
    for i in range(30):
        first.invoke("hi", user=f"u{i}")
    assert first.rolled_back == {"candidate"}
    first.close()
    with pytest.warns(ExperimentStoreWarning, match="was rolled back"):
        restarted = make(mode="canary", guard=guard, store=url)
    assert restarted.weights["candidate"] == 0.0 and restarted.rolled_back == {"candidate"}
    restarted.ramp(candidate=0.1)  # a deliberate re-enable
    assert restarted.rolled_back == set()
    again = make(mode="canary", guard=guard, store=url)
    assert again.weights["candidate"] == 0.5 and again.rolled_back == set()


def test_ramps_and_rollbacks_of_another_router_apply_within_sync_every(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"  # as two processes sharing one store
    guard = CanaryGuard(max_error_rate=0.1, min_requests=2, window=2)
    here = make(mode="canary", guard=guard, store=url, sync_every=0.05)
    there = make(mode="canary", guard=guard, store=url, sync_every=0.05)
    there.ramp(candidate=0.8)
    assert here.weights["candidate"] == 0.5  # not yet read
    time.sleep(0.06)
    here.invoke("hi", user="ann")  # a request reads what was stored since
    assert here.weights == {"control": pytest.approx(0.2), "candidate": 0.8}
    recorder(there, "candidate").fail_with = ConnectionError
    for i in range(30):
        there.invoke("hi", user=f"u{i}")
    assert there.rolled_back == {"candidate"}
    time.sleep(0.06)
    here.invoke("hi", user="ann")
    assert here.rolled_back == {"candidate"} and here.weights["candidate"] == 0.0
    with pytest.warns(ExperimentStoreWarning, match="was rolled back"):  # read at start
        quiet = make(mode="canary", guard=guard, store=url, sync_every=None)
    there.ramp(candidate=0.3)
    time.sleep(0.06)
    quiet.invoke("hi", user="ann")
    assert quiet.weights["candidate"] == 0.0  # sync_every=None: only what it read at start
    for ab in (here, there, quiet):
        ab.close()


def test_canary_guard_validation_and_check() -> None:
    with pytest.raises(ConfigurationError, match="checks nothing"):
        CanaryGuard(max_error_rate=None)
    with pytest.raises(ConfigurationError, match="min_requests <= window"):
        CanaryGuard(min_requests=10, window=5)
    with pytest.raises(ConfigurationError, match=r"max_error_rate must lie in \[0, 1\)"):
        CanaryGuard(max_error_rate=1.5)
    guard = CanaryGuard(max_error_rate=0.5, max_p95_latency_s=1.0, min_requests=2, window=4)
    assert guard.check([(False, 0.1)]) is None  # too few
    assert guard.check([(True, 0.1), (False, 0.1)]) is None  # 50% is not above 50%
    assert guard.check([(True, 2.0), (True, 0.1)]) == {
        "reason": "p95 latency 2.000s > 1.000s over the last 2 requests",
        "requests": 2,
        "error_rate": 0.0,
        "p95_latency_s": 2.0,
    }
    assert make(mode="canary").guard == CanaryGuard()  # canary mode guards by default


def test_a_ramp_schedule_applies_steps_when_due() -> None:
    past = RampSchedule(
        [(0, {"candidate": 0.2}), (3600, {"candidate": 0.5})], start=time.time() - 60
    )
    ab = make(weights={"control": 0.95, "candidate": 0.05}, schedule=past)
    assert ab.weights["candidate"] == pytest.approx(0.2)  # due at start: applied silently
    assert ab.store.events("exp") == []
    soon = RampSchedule([(0.15, {"candidate": 0.3})])
    ab = make(weights={"control": 0.95, "candidate": 0.05}, schedule=soon, experiment="soon")
    ab.invoke("hi", user="u1")
    assert ab.weights["candidate"] == pytest.approx(0.05)
    time.sleep(0.2)
    ab.invoke("hi", user="u1")
    assert ab.weights["candidate"] == pytest.approx(0.3)
    (event,) = ab.store.events("soon")
    assert event.kind == "ramp" and event.detail["reason"] == "schedule step 0"


def test_report_of_the_router_shows_shares_and_mode() -> None:
    ab = make(weights={"control": 0.75, "candidate": 0.25}, mode="canary")
    for i in range(20):
        msg = ab.invoke("hi", user=f"u{i}")
        ab.record_feedback(msg, score=i % 2)
    report = ab.report(feedback_effect=0.5)
    assert report.mode == "canary" and report.control == "control"
    assert [(v.variant, v.share) for v in report.variants] == [
        ("control", 0.75),
        ("candidate", 0.25),
    ]
    assert sum(v.requests for v in report.variants) == 20
    assert report.comparisons[0].feedback_n_needed == 64
