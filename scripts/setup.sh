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
# Real servers for the tests, from Debian's packages where missing and the machine
# allows (CI runs as root): Chromium drives the server's playground in a browser,
# redis-server holds shared state. Without them those tests skip (outside CI).
need=()
if [[ ",$extras," == *",dev,"* ]]; then
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
fi
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q "${need[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >/dev/null 2>&1; } \
        || echo "setup: could not install ${need[*]}; the tests that need them will skip" >&2
fi
