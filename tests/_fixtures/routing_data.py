"""A small routing data set with an obvious answer: which model is right depends on the topic."""

from __future__ import annotations

import csv
from pathlib import Path

from llmrouter.learn import OutcomeData

MATH = [f"What is {a} times {b}? Show the arithmetic." for a in range(3, 13) for b in (7, 9, 11)]
HISTORY = [
    f"In which year did the {event} happen, and who led it?"
    for event in (
        "French Revolution",
        "Battle of Hastings",
        "fall of Constantinople",
        "Meiji Restoration",
        "Glorious Revolution",
        "Boston Tea Party",
        "storming of the Bastille",
        "Norman conquest",
        "Russian Revolution",
        "Battle of Waterloo",
        "signing of Magna Carta",
        "Reformation",
        "unification of Italy",
        "unification of Germany",
        "Haitian Revolution",
        "American Civil War",
        "Thirty Years' War",
        "Hundred Years' War",
        "Opium War",
        "Taiping Rebellion",
        "Spanish Armada",
        "Congress of Vienna",
        "Peace of Westphalia",
        "Battle of Lepanto",
        "Crimean War",
        "Boxer Rebellion",
        "Xinhai Revolution",
        "Battle of Tours",
        "Siege of Vienna",
        "Treaty of Versailles",
    )
]


def routing_data() -> OutcomeData:
    """``mathbot`` answers arithmetic, ``histbot`` history (and a sixth of the arithmetic)."""
    rows = [{"prompt": p, "mathbot": True, "histbot": i % 6 == 0} for i, p in enumerate(MATH)]
    rows += [{"prompt": p, "mathbot": False, "histbot": True} for p in HISTORY]
    return OutcomeData.from_rows(rows, source="toy.csv")


def write_csv(path: Path, *, costs: bool = False) -> Path:
    """The same rows as a CSV file (with ``MODEL|cost`` columns when ``costs``)."""
    data = routing_data()
    with path.open("w", newline="", encoding="utf-8") as handle:
        columns = ["prompt", *data.models] + ([f"{m}|cost" for m in data.models] if costs else [])
        writer = csv.writer(handle)
        writer.writerow(columns)
        for prompt, row in zip(data.prompts, data.outcomes, strict=True):
            extra = [0.001, 0.01] if costs else []
            writer.writerow([prompt, *(bool(v) for v in row), *extra])
    return path
