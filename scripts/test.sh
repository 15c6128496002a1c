#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), then lints, type-checks and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check agentwheel tests bench
.venv/bin/ruff format --check agentwheel tests bench
.venv/bin/mypy agentwheel
.venv/bin/python -m pytest "$@"
