#!/usr/bin/env bash
# Set up .venv with the dev extras, then lint, type-check and run the whole test
# suite (unit, integration against real parts, LangChain standard suites, notebooks).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check src tests examples benchmarks
.venv/bin/ruff format --check src tests examples benchmarks
.venv/bin/mypy
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
exec .venv/bin/pytest --nbmake -p no:cacheprovider "$@"
