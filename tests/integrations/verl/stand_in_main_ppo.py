"""A stand-in for `python -m verl.trainer.main_ppo` in the CPU tests of the verl back-end.

verl's trainer needs GPUs (vLLM rollouts, FSDP); this process does what the schedule's
verl back-end relies on verl for, from the same hydra overrides, and nothing more:

- reads the round's train parquet (every row must be for our agent loop) and the model
  at `actor_rollout_ref.model.path`;
- "trains" `trainer.total_training_steps` steps: step s adds 0.001 x s to every
  floating-point weight (so the result is checkable), writing verl's file-logger line
  per step to $VERL_FILE_LOGGER_PATH;
- saves `global_step_<s>/actor/huggingface` every `trainer.save_freq` steps and
  `latest_checkpointed_iteration.txt`, as verl does; with `trainer.resume_mode=auto` it
  starts after the latest saved step;
- STAND_IN_VERL_KILL_AT=<s> SIGKILLs itself when it reaches step s (after the checkpoint
  of the step before).

The real trainer is checked by scripts/verl_gpu_check.sh when an accelerator is lent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pyarrow.parquet as pq
from safetensors.torch import load_file, save_file

DELTA = 0.001


def parse(argv: list[str]) -> dict[str, str]:
    return dict(arg.lstrip("+").split("=", 1) for arg in argv)


def weights(model_dir: Path) -> dict:
    tensors: dict = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(file))
    if not tensors:
        raise SystemExit(f"no weights in {model_dir}")
    return tensors


def save(tensors: dict, init: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for file in init.iterdir():
        if file.is_file() and file.suffix != ".safetensors":
            shutil.copy2(file, target / file.name)
    save_file({k: v.contiguous() for k, v in tensors.items()}, target / "model.safetensors")


def main(argv: list[str]) -> None:
    args = parse(argv)
    rows = pq.read_table(args["data.train_files"]).to_pylist()
    if not rows or any(row["agent_name"] != "agentwheel_agent" for row in rows):
        raise SystemExit("train rows are not for agentwheel_agent")
    init = Path(args["actor_rollout_ref.model.path"])
    out = Path(args["trainer.default_local_dir"])
    steps, save_freq = int(args["trainer.total_training_steps"]), int(args["trainer.save_freq"])
    if "hf_model" not in args["actor_rollout_ref.actor.checkpoint.save_contents"]:
        raise SystemExit("hf_model is not among save_contents")
    latest = out / "latest_checkpointed_iteration.txt"
    start = (
        int(latest.read_text()) if latest.exists() and args["trainer.resume_mode"] == "auto" else 0
    )
    tensors = weights(
        init if start == 0 else out / f"global_step_{start}" / "actor" / "huggingface"
    )
    print(f"stand-in verl: {len(rows)} train rows, steps {start + 1}..{steps}", flush=True)
    kill_at = int(os.environ.get("STAND_IN_VERL_KILL_AT", "0"))
    with open(os.environ["VERL_FILE_LOGGER_PATH"], "w", encoding="utf-8") as log:
        for step in range(start + 1, steps + 1):
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            tensors = {
                k: v + DELTA * step if v.is_floating_point() else v for k, v in tensors.items()
            }
            data = {
                "critic/score/mean": 0.1 * step,
                "actor/entropy": 1.0 / step,
                "agentwheel/passed": 0.1 * step,
                "timing_s/gen": 0.5,
            }
            log.write(json.dumps({"step": step, "data": data}) + "\n")
            log.flush()
            if step % save_freq == 0 or step == steps:
                save(tensors, init, out / f"global_step_{step}" / "actor" / "huggingface")
                latest.write_text(str(step))


if __name__ == "__main__":
    main(sys.argv[1:])
