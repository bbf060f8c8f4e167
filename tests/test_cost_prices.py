"""Local model prices from hardware cost and throughput."""

from __future__ import annotations

import pytest

from llmrouter.cost._prices import compute_prices


def test_compute_prices_from_hardware_cost() -> None:
    assert compute_prices(3.6, output_tokens_per_second=100) == {
        "input_cost": 0.0,
        "output_cost": 10.0,
    }
    assert compute_prices(3.6, 100, input_tokens_per_second=1000)["input_cost"] == 1.0
    with pytest.raises(ValueError, match="output_tokens_per_second"):
        compute_prices(1.0, 0)
