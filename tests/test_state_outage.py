"""Outages: one warning per outage, a back-off before asking again, counts for metrics."""

from __future__ import annotations

import logging
import time

import pytest

from llmrouter.state import state_errors
from llmrouter.state._outage import RETRY_S, Outages


def test_one_warning_per_outage_and_a_note_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outages = Outages("test-backend", "redis://x")
    with caplog.at_level(logging.WARNING, logger="llmrouter"):
        outages.failed("budgets", ConnectionError("refused"), "budgets refuse calls")
        outages.failed("budgets", ConnectionError("refused"), "budgets refuse calls")
        assert outages.down("budgets") and not outages.down("breakers")
        outages.succeeded("budgets")
        outages.succeeded("budgets")
    messages = [r.message for r in caplog.records]
    assert messages == [
        "shared state redis://x did not answer for budgets (ConnectionError: refused); "
        "budgets refuse calls until it is back",
        "shared state redis://x answers again for budgets",
    ]
    assert state_errors()[("test-backend", "budgets")] == 2


def test_after_a_failure_the_backend_is_left_alone_for_a_moment() -> None:
    outages = Outages("test-skip", "redis://y")
    assert not outages.skip("breakers")
    outages.failed("budgets", ConnectionError("refused"), "...")
    assert outages.skip("breakers")  # one server: any concern's failure counts
    assert state_errors()[("test-skip", "breakers")] == 1  # a skipped call is counted
    time.sleep(RETRY_S)
    assert not outages.skip("breakers")  # time to ask again
