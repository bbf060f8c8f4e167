"""Tests for llmrouter.models._hf_batch.MicroBatcher: how a leader gathers a batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from llmrouter.models import _hf_batch
from llmrouter.models._hf_batch import Generation, MicroBatcher, Request


class Runs:
    """A pipeline stand-in: records each group it is given and answers every request."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.groups: list[list[str]] = []
        self.seconds = seconds

    def __call__(self, group: list[Request]) -> None:
        self.groups.append([r.prompt for r in group])
        time.sleep(self.seconds)
        for request in group:
            request.future.set_result(Generation(request.prompt.upper(), True, 1))


def arrive(
    batcher: MicroBatcher, prompts: list[str], gap_s: float, submit: Callable[[Request], str]
) -> dict[str, str]:
    answers: dict[str, str] = {}

    def one(prompt: str) -> None:
        answers[prompt] = submit(Request(prompt, {}, "same"))

    threads = []
    for prompt in prompts:
        threads.append(threading.Thread(target=one, args=(prompt,)))
        threads[-1].start()
        time.sleep(gap_s)
    for thread in threads:
        thread.join()
    return answers


def test_callers_arriving_one_after_another_meet_in_one_batch() -> None:
    runs = Runs()
    batcher = MicroBatcher(runs)
    prompts = [f"p{i}" for i in range(8)]
    # arrivals 50 ms apart span 350 ms, more than one 250 ms window (so only restarts
    # keep the batch open), and each gap leaves 200 ms of slack for a loaded machine
    answers = arrive(
        batcher, prompts, 0.05, lambda r: batcher.submit(r, wait_s=0.25, max_batch=32).text
    )
    assert answers == {p: p.upper() for p in prompts}  # each caller's own result
    assert runs.groups == [prompts]  # each arrival restarted the 250 ms window


def test_a_full_batch_starts_without_waiting_out_the_window() -> None:
    runs = Runs()
    batcher = MicroBatcher(runs)
    start = time.monotonic()
    arrive(batcher, ["a", "b", "c", "d"], 0.0, lambda r: batcher.submit(r, 5.0, 4).text)
    assert time.monotonic() - start < 2.0  # not the 5 s window
    assert sorted(p for g in runs.groups for p in g) == ["a", "b", "c", "d"]


def test_a_steady_stream_does_not_hold_the_first_batch_for_ever() -> None:
    runs = Runs()
    batcher = MicroBatcher(runs)
    prompts = [f"p{i}" for i in range(40)]
    arrive(batcher, prompts, 0.005, lambda r: batcher.submit(r, wait_s=0.01, max_batch=64).text)
    # arrivals every 5 ms keep restarting a 10 ms window: the cap (10 windows) cuts it
    assert len(runs.groups) >= 2 and len(runs.groups[0]) < 40
    assert sorted(p for g in runs.groups for p in g) == sorted(prompts)


def test_a_lone_request_waits_one_window() -> None:
    runs = Runs()
    batcher = MicroBatcher(runs)
    start = time.monotonic()
    assert batcher.submit(Request("x", {}, "k"), wait_s=0.05, max_batch=8).text == "X"
    assert 0.05 <= time.monotonic() - start < 0.5


def test_the_leader_waits_for_announced_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    # a cap far beyond the caller's 50 ms: the test does not race the 0.25 s default
    monkeypatch.setattr(_hf_batch, "_MAX_GATHER_S", 5.0)
    runs = Runs()
    batcher = MicroBatcher(runs)
    batcher.announce()  # a caller still rendering its prompt
    late: list[str] = []

    def slow_caller() -> None:
        time.sleep(0.05)  # ten windows of 5 ms
        late.append(batcher.submit(Request("late", {}, "k"), 0.005, 8, announced=True).text)

    thread = threading.Thread(target=slow_caller)
    thread.start()
    assert batcher.submit(Request("first", {}, "k"), 0.005, 8).text == "FIRST"
    thread.join()
    assert late == ["LATE"] and runs.groups == [["first", "late"]]


def test_a_withdrawn_caller_releases_the_leader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_hf_batch, "_MAX_GATHER_S", 5.0)  # far from the bound below
    runs = Runs()
    batcher = MicroBatcher(runs)
    batcher.announce()
    timer = threading.Timer(0.02, batcher.withdraw)  # its request failed before submitting
    timer.start()
    start = time.monotonic()
    assert batcher.submit(Request("x", {}, "k"), 0.005, 8).text == "X"
    assert time.monotonic() - start < 1.5  # released by the withdrawal, not the 5 s cap
    timer.join()


def test_after_a_batch_nobody_gathers_past_the_window_plus_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_hf_batch, "_MAX_GATHER_S", 5.0)  # the wait it would otherwise allow
    runs = Runs(seconds=0.1)
    batcher = MicroBatcher(runs)
    batcher.submit(Request("warm", {}, "k"), 0.005, 8)  # one batch took 0.1 s
    batcher.announce()  # a caller that does not come for 3 s
    timer = threading.Timer(3.0, batcher.withdraw)
    timer.start()
    try:
        start = time.monotonic()
        result = batcher.submit(Request("x", {}, "k"), 0.005, 8)
        elapsed = time.monotonic() - start
    finally:
        timer.cancel()
    # it started after the window plus one batch (0.105 s), not after the caller's 3 s
    assert 0.1 <= result.queued_s < 1.5 and elapsed < 2.0
    assert runs.groups == [["warm"], ["x"]]


def test_a_request_arriving_during_a_batch_waits_for_that_batch() -> None:
    runs = Runs(seconds=0.3)
    batcher = MicroBatcher(runs)
    results: dict[str, Generation] = {}

    def submit(prompt: str) -> None:
        results[prompt] = batcher.submit(Request(prompt, {}, "k"), 0.001, 8)

    first = threading.Thread(target=submit, args=("a",))
    first.start()
    time.sleep(0.1)  # "a" is running
    submit("b")
    first.join()
    assert runs.groups == [["a"], ["b"]]
    assert results["a"].queued_s < results["b"].queued_s  # "b" waited for "a"'s batch
    assert 0.1 <= results["b"].queued_s < 1.5


def test_a_batch_holds_at_most_its_token_budget() -> None:
    runs = Runs()
    batcher = MicroBatcher(runs)
    answers: dict[str, str] = {}

    def one(prompt: str, tokens: int) -> None:
        request = Request(prompt, {}, "k", limit=10, tokens=tokens)
        answers[prompt] = batcher.submit(request, 0.25, 8, max_tokens=50).text

    sizes = {"a": 10, "b": 10, "c": 10, "d": 60}  # 20 padded tokens a row; "d" 70 alone
    threads = [threading.Thread(target=one, args=item) for item in sizes.items()]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert answers == {p: p.upper() for p in sizes}
    # 2 rows of 20 fit 50, 3 do not; "d" exceeds the budget alone and still runs
    assert sorted(len(g) for g in runs.groups) == [1, 1, 2]
    assert ["d"] in runs.groups


def test_requests_that_waited_out_their_window_during_a_batch_start_right_after_it() -> None:
    runs = Runs(seconds=0.5)
    batcher = MicroBatcher(runs)
    first = threading.Thread(target=batcher.submit, args=(Request("a", {}, "k"), 0.001, 8))
    first.start()
    time.sleep(0.25)  # "a" runs until about 0.5 s
    result = batcher.submit(Request("b", {}, "k"), 0.2, 8)
    first.join()
    # "b" waited for "a" (about 0.25 s) and not another 0.2 s window after it
    assert 0.1 <= result.queued_s < 0.4
    assert runs.groups == [["a"], ["b"]]
