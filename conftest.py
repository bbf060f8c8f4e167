"""Repository-wide pytest hooks: notebooks that read ``../shared/data`` are skipped on a
machine without it."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1] / "shared" / "data"
NEEDS_SHARED = {"learned_routing.ipynb"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=f"the shared routing data is not at {SHARED}")
    for item in items:
        if item.path.name in NEEDS_SHARED:
            item.add_marker(skip)
