.PHONY: setup test demo bench verl-env verl-check verl-bench

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

# verl scale-out (agentwheel.integrations.verl): its own virtualenv, .venv-verl.
verl-env:
	bash scripts/setup_verl.sh

# CPU checks: verl's dataset loads our export; verl's rollout worker runs our agent loop
# against a stand-in server (tiny model) and equals our runner id for id; then the loop
# on a local Ray cluster of 2 workers vs our runner (bench/results/verl_loop.json).
verl-check: verl-env
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false nice -n 19 \
		.venv-verl/bin/python -m pytest -q -p no:cacheprovider tests/integrations tests/export
	$(MAKE) verl-bench

verl-bench: verl-env
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false nice -n 19 \
		.venv-verl/bin/python bench/bench_verl_loop.py --episodes 42 --workers 2
