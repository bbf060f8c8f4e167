"""LatencyTracker: an exponentially weighted mean per model, fed by route records."""

from __future__ import annotations

import threading

import pytest
from _fixtures.fakes import InOrder, spec

from llmrouter import ConfigurationError, LatencyTracker, route_of


def test_the_mean_weights_the_newest_observation_by_alpha() -> None:
    tracker = LatencyTracker(alpha=0.25)
    tracker.observe("a", 4.0)
    tracker.observe("a", 8.0)
    assert tracker.get("a") == pytest.approx(0.25 * 8.0 + 0.75 * 4.0)
    assert tracker.get("b") is None


def test_fastest_puts_unmeasured_models_last_in_given_order() -> None:
    tracker = LatencyTracker()
    tracker.observe("slow", 2.0)
    tracker.observe("fast", 0.5)
    assert tracker.fastest(["new1", "slow", "new2", "fast"]) == ["fast", "slow", "new1", "new2"]


def test_a_record_counts_only_successful_attempts() -> None:
    router = InOrder(models=[spec("a", fail_with=ValueError), spec("b")])
    record = route_of(router.invoke("x"))
    tracker = LatencyTracker()
    tracker.observe_record(record)
    assert set(tracker.snapshot()) == {"b"}
    assert tracker.get("b") == pytest.approx(record.attempts[-1].latency_s)


def test_alpha_outside_zero_one_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"\(0, 1\]"):
        LatencyTracker(alpha=0)


def test_concurrent_observations_are_all_counted() -> None:
    tracker = LatencyTracker(alpha=1.0)

    def feed(i: int) -> None:
        for _ in range(200):
            tracker.observe(f"m{i}", float(i))

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.snapshot() == {f"m{i}": float(i) for i in range(8)}
