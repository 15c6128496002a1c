.PHONY: setup test demo bench

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

demo:
	bash scripts/setup.sh
	HF_HUB_OFFLINE=1 .venv/bin/agentwheel demo --out runs/demo $(if $(wildcard runs/demo/state.json),--resume,)

bench:
	bash scripts/setup.sh
	.venv/bin/python -m pip install -q -e ".[bench]"
	.venv/bin/python bench/bench_env.py
	.venv/bin/python bench/bench_grpo_vs_trl.py
