"""A real redis-server per test module: the public ``redis_server`` fixture.

In CI (``CI`` set) a missing ``redis-server`` fails the tests instead of skipping
them (``LLMROUTER_REQUIRE_REDIS``): the setup script installs it there, so its
absence is a broken setup.
"""

from __future__ import annotations

import os

from llmrouter.testing.fixtures import redis_server

__all__ = ["redis_server"]

if os.environ.get("CI"):
    os.environ.setdefault("LLMROUTER_REQUIRE_REDIS", "1")
