"""Tokens per minute in one process: the weighted GCRA and `TokenRateLimiter`."""

from __future__ import annotations

import pickle
import threading
import time

import pytest

from llmrouter.resilience import TokenRateLimiter
from llmrouter.resilience._token_limits import gcra


def test_a_weighted_take_moves_the_time_by_its_tokens() -> None:
    assert gcra(None, 10.0, 0.1, 600, cost=600) == (70.0, 0.0)  # the whole minute at once
    tat, wait = gcra(70.0, 10.0, 0.1, 600, cost=1)  # then nothing: one token in 0.1 s
    assert tat == 70.0 and wait == pytest.approx(0.1)
    assert gcra(70.0, 40.0, 0.1, 600, cost=300) == (100.0, 0.0)  # half came back in 30 s


def test_a_full_minute_goes_at_once_then_room_comes_back_continuously() -> None:
    limiter = TokenRateLimiter(6_000)  # 100 tokens a second
    assert limiter.try_take(6_000) == 0.0
    wait = limiter.try_take(20)
    assert 0.15 < wait <= 0.2
    time.sleep(wait + 0.02)
    assert limiter.try_take(20) == 0.0


def test_settling_charges_or_gives_back_the_difference() -> None:
    limiter = TokenRateLimiter(1_000)
    assert limiter.try_take(900) == 0.0
    limiter.adjust(-400)  # used 500, not 900
    assert limiter.try_take(500) == 0.0
    limiter.adjust(+300)  # the next one used 300 more than estimated: now over
    assert limiter.try_take(1) > 17  # 300 tokens overdrawn take 18 s to come back
    limiter.adjust(-10_000)  # giving back more than was taken cannot bank tokens
    assert limiter.try_take(1_000) == 0.0 and limiter.try_take(1) > 0


def test_more_than_a_minute_never_fits() -> None:
    limiter = TokenRateLimiter(100)
    assert limiter.try_take(101) == float("inf")
    assert limiter.try_take(100) == 0.0  # and took nothing


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100"])
def test_a_limit_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ValueError, match="positive int"):
        TokenRateLimiter(bad)  # type: ignore[arg-type]


def test_threads_never_take_more_than_the_minute() -> None:
    limiter = TokenRateLimiter(60_000)
    taken: list[int] = []

    def spend() -> None:
        for _ in range(1_000):  # 8 x 1,000 x 13 = 104,000 asked for
            if limiter.try_take(13) == 0.0:
                taken.append(13)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 60,000 at once plus what came back while the threads ran (1,000 a second)
    assert 60_000 - 13 < sum(taken) <= 60_000 + 2_000


async def test_the_async_take_is_the_same_count() -> None:
    limiter = TokenRateLimiter(100)
    assert await limiter.atry_take(100) == 0.0
    assert await limiter.atry_take(10) > 0


def test_a_pickled_limiter_starts_with_a_full_minute() -> None:
    limiter = TokenRateLimiter(100)
    limiter.try_take(100)
    copy = pickle.loads(pickle.dumps(limiter))
    assert copy.tokens_per_minute == 100 and copy.try_take(100) == 0.0
    assert repr(copy) == "TokenRateLimiter(tokens_per_minute=100)"
