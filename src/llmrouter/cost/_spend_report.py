"""What a cost router spent, read back from its ledger: by day and model, and as a plot.

Shared by ``llmrouter report`` and the server's playground.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import defaultdict
from typing import Any


def ledger_rows(router: Any) -> list[dict[str, Any]]:
    """The ledger rows of a `CostAwareRouter` (its ``spend_db``, its ``state``'s ledger,
    or the default ledger)."""
    from llmrouter.state import BaseLedger, open_state
    from llmrouter.state._sqlite_ledger import SpendLedger

    db = getattr(router, "spend_db", None)
    state = getattr(router, "state", None)
    if isinstance(db, BaseLedger):
        ledger = db
    elif db is None and state is not None:
        ledger = db = open_state(state).ledger()  # shared: not ours to close
    else:
        ledger = SpendLedger(db)
    try:
        return ledger.rows(scope=router.router_name)
    finally:
        if ledger is not db:
            ledger.close()


def spend_by_day(rows: list[dict[str, Any]], since: float) -> dict[str, dict[str, float]]:
    """Settled USD per day (``YYYY-MM-DD``, UTC) per model, from ledger rows at or after ``since``.

    Examples:
        >>> rows = [{"state": "settled", "at": 86400.0, "usd": 0.5, "model": "a"},
        ...         {"state": "reserved", "at": 86400.0, "usd": 9.0, "model": "a"}]
        >>> spend_by_day(rows, since=0)
        {'1970-01-02': {'a': 0.5}}
    """
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        if row["state"] != "settled" or row["at"] < since:
            continue
        day = dt.datetime.fromtimestamp(row["at"], tz=dt.timezone.utc).strftime("%Y-%m-%d")
        out[day][row["model"] or "?"] += row["usd"]
    return {day: dict(models) for day, models in sorted(out.items())}


def plot_spend(name: str, by_day: dict[str, dict[str, float]]) -> bytes:
    """A stacked bar chart of spend per day and model, as PNG bytes (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({m for spent in by_day.values() for m in spent})
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = [0.0] * len(by_day)
    for model in models:
        values = [spent.get(model, 0.0) for spent in by_day.values()]
        ax.bar(list(by_day), values, bottom=bottom, label=model)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("USD")
    ax.set_title(f"{name}: spend by day")
    if models:
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()
