#!/usr/bin/env bash
# Set up .venv and run the offline demo (two tiny local models built on the fly;
# a remote endpoint joins when OPENAI_BASE_URL and OPENAI_API_KEY are set).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/llmrouter demo "$@"
