#!/usr/bin/env bash
# Create .venv (if missing) and install llmrouter into it.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
# The CPU build of torch first: a bare `torch` requirement in a fresh venv would
# pull a multi-GB CUDA build. Our own requirement stays a range (torch>=2.4).
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
target="."
[ -n "$extras" ] && target=".[$extras]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
# Browser tests (the server's playground) drive Debian's Chromium; install it where
# missing and the machine allows (CI runs as root). Without it those tests skip.
if [[ ",$extras," == *",dev,"* ]] && ! command -v chromium >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
        || echo "setup: could not install chromium; the browser tests will skip" >&2
fi
