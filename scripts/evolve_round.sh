#!/usr/bin/env bash
# One measured agentic evolve round (bench/results/flywheel_history.md): synthesize parents from
# the bundled workflows, evaluate a policy on them, evolve one round from that report with
# the same policy (no band, so every evolved task is measured), then check the evolved
# tasks with the scripted oracle, hack and refuse policies.
#   scripts/evolve_round.sh POLICY OUT [SEED] [TASKS_PER_WORKFLOW]
# e.g. scripts/evolve_round.sh hf:runs/demo/checkpoints/sft/model /tmp/round 11 12
set -euo pipefail
policy=${1:?policy spec, e.g. hf:runs/demo/checkpoints/sft/model}
out=${2:?output directory}
seed=${3:-11}
per_workflow=${4:-12}
cd "$(dirname "$0")/.."
aw=.venv/bin/agentwheel
model_args=(--dtype bfloat16 --max-turns 6 --max-new-tokens 64 --batch-size 40)
mkdir -p "$out"
$aw synth agentic --workflows bundled --expander procedural \
  --tasks-per-workflow "$per_workflow" --seed "$seed" --out "$out/parents"
$aw eval --tasks "$out/parents/tasks.jsonl" --policy "$policy" -k 1 "${model_args[@]}" \
  --out "$out/eval_parents"
$aw evolve agentic --report "$out/eval_parents" --policy "$policy" --no-band --samples 1 \
  --temperature 0 --tasks-per-workflow "$per_workflow" "${model_args[@]}" --out "$out/evolved"
for scripted in oracle hack refuse; do
  $aw eval --tasks "$out/evolved/tasks.jsonl" --policy "$scripted" --out "$out/${scripted}_evolved"
done
$aw eval --tasks "$out/parents/tasks.jsonl" --policy refuse --out "$out/refuse_parents"
