"""Shared fixtures live in tests/_fixtures/ (one module per real part)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["_fixtures.tiny_models", "_fixtures.katan"]
