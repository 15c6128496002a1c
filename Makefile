.PHONY: setup test demo bench

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

demo:
	bash scripts/setup.sh
	HF_HUB_OFFLINE=1 .venv/bin/agentwheel eval --tasks fixtures --policy hf:default --out runs/eval-default

bench:
	bash scripts/setup.sh
	.venv/bin/python bench/bench_env.py
