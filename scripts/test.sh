#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), then lints, checks the import layers, type-checks and
# runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check agentwheel tests bench scripts
.venv/bin/ruff format --check agentwheel tests bench scripts
.venv/bin/lint-imports
.venv/bin/mypy agentwheel
.venv/bin/python -m pytest "$@"
