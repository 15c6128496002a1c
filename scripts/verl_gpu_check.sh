#!/usr/bin/env bash
# A few verl GRPO steps of Qwen3-1.7B on one GPU with agentwheel's agent loop, tasks and
# reward: the check that needs an accelerator (the CPU checks are `make verl-check`).
#
#   MODEL=/models/Qwen3-1.7B bash scripts/verl_gpu_check.sh
#
# Then the schedule on verl: one round of `agentwheel train --config verl-qwen3-1.7b`,
# scaled to one GPU (evolve -> band -> verl steps -> our held-out eval of verl's weights).
#
# Needs .venv-verl with a CUDA torch and vLLM (pip install -e ".[verl,vllm]"; verl's v1
# trainer may also want its `verl-core` extra). Passes when verl finishes STEPS steps,
# logging agentwheel/* reward components, and writes a checkpoint under $OUT.
# Not yet run on a GPU: no accelerator was lent when it was written.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv-verl/bin/python}
MODEL=${MODEL:-Qwen/Qwen3-1.7B}
OUT=${OUT:-runs/verl-gpu-check}
STEPS=${STEPS:-3}
mkdir -p "$OUT"
"$PY" -m agentwheel export fixtures --format verl --split train --out "$OUT/train.parquet"
"$PY" -m agentwheel export fixtures --format verl --split val --out "$OUT/val.parquet"
# The paper's settings, scaled to one GPU: 8 tasks x 4 rollouts a step instead of 64 x 16.
command=$("$PY" -m agentwheel.integrations.verl.launch --preset qwen3-1.7b --model "$MODEL" \
  --train "$OUT/train.parquet" --val "$OUT/val.parquet" --out "$OUT/checkpoints" \
  --steps "$STEPS" --nodes 1 --gpus-per-node 1 -- \
  data.train_batch_size=8 actor_rollout_ref.rollout.n=4 \
  actor_rollout_ref.actor.ppo_mini_batch_size=8 \
  actor_rollout_ref.rollout.response_length=2048 data.max_response_length=2048 \
  algorithm.filter_groups.max_num_gen_batches=4 \
  trainer.save_freq="$STEPS" trainer.test_freq="$STEPS" trainer.val_before_train=false)
echo "$command"
eval "$command" 2>&1 | tee "$OUT/verl.log"
grep -q "agentwheel/passed" "$OUT/verl.log"
echo "verl GPU check passed: $STEPS steps, log in $OUT/verl.log"

# The schedule with verl as its trainer back-end, one small round on this GPU.
"$PY" -m agentwheel train --config verl-qwen3-1.7b --out "$OUT/schedule" \
  --set model.spec="hf:$MODEL" --set data.tasks_per_workflow=2 --set data.held_out_tasks=8 \
  --set data.held_out_seen_tasks=4 --set sft.max_steps=4 --set eval.k=1 \
  --set "rounds=[{kind: agentic, steps: $STEPS, batch_groups: 8, group_size: 4, max_attempts: 2, evolve_tasks_per_workflow: 1, band_samples: 2, probe_tasks: 8}]" \
  --set trainer.verl.gpus_per_node=1 --set trainer.verl.python="$PY" \
  --set 'trainer.verl.overrides=[actor_rollout_ref.rollout.response_length=2048, data.max_response_length=2048]'
test -d "$OUT/schedule/checkpoints/round-1"
grep -q '"trainer": "verl"' "$OUT/schedule/metrics.jsonl"
echo "schedule on verl passed: round 1 trained by verl and evaluated, report in $OUT/schedule/report.md"
