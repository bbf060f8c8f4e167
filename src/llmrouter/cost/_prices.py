"""Prices of local models: USD per million tokens from what the hardware costs."""

from __future__ import annotations

__all__ = ["compute_prices"]


def compute_prices(
    usd_per_hour: float,
    output_tokens_per_second: float,
    input_tokens_per_second: float | None = None,
) -> dict[str, float]:
    """Prices (USD per million tokens) of a local model from what its hardware costs.

    Local models are free by default; to price one, give the machine's cost per
    hour and the measured throughput. Prompt processing is much faster than
    generation, so input is free unless ``input_tokens_per_second`` is given.

    Examples:
        >>> from llmrouter.cost._prices import compute_prices
        >>> compute_prices(usd_per_hour=1.8, output_tokens_per_second=50)
        {'input_cost': 0.0, 'output_cost': 10.0}
        >>> # models.huggingface_pipeline(path, **compute_prices(1.8, 50, 2000))
    """
    if usd_per_hour < 0 or output_tokens_per_second <= 0:
        raise ValueError("usd_per_hour must be >= 0 and output_tokens_per_second > 0")
    per_second = usd_per_hour / 3600

    def per_million(rate: float) -> float:
        return round(per_second / rate * 1_000_000, 12)

    return {
        "input_cost": per_million(input_tokens_per_second) if input_tokens_per_second else 0.0,
        "output_cost": per_million(output_tokens_per_second),
    }
