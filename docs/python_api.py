import tempfile
from pathlib import Path

import agentwheel as aw

out = Path(tempfile.mkdtemp(prefix="agentwheel-"))
aw.synth_agentic(out / "tasks", tasks_per_workflow=4)  # the bundled workflows → tasks
tasks = aw.load_tasks(out / "tasks").tasks
for name in ("oracle", "cautious"):
    policy = aw.load_policy(name, aw.SamplingParams())
    summary = aw.run_eval(tasks, policy, aw.load_user("scripted"), 1, out / name, aw.RunnerConfig())
    print(f"{name}: pass^1 = {summary['pass_hat_k']['1']:.2f} on {len(tasks)} tasks")
