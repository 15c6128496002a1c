"""`agentwheel eval` measures what a run's held-out eval measured: the same defaults, and
`--like <run dir>` for a run's own settings."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.cli.eval_like import EvalFlags, eval_choices
from agentwheel.eval.evaluate import TRACES, read_traces
from agentwheel.settings.config_file import apply_overrides
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.train.schedule import run_schedule
from tests.train.conftest import require_bundled_gguf

TINY = Path(__file__).parents[2] / "agentwheel" / "configs" / "tiny.yaml"
# The tiny run without RL rounds, with held-out settings that are nobody's defaults.
RUN = [
    "rounds=[]",
    "eval.max_new_tokens=6",
    "runner.max_agent_turns=3",
    "runner.max_episode_tokens=3000",
    "runner.batch_size=5",
    "seed=3",
    "model.template_kwargs={enable_thinking: false}",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    import yaml

    require_bundled_gguf()
    raw = apply_overrides(yaml.safe_load(TINY.read_text()), RUN)
    out = tmp_path_factory.mktemp("run")
    run_schedule(ScheduleConfig.model_validate(raw), out, log=lambda _: None)
    return out


def test_eval_defaults_are_the_schedules_held_out_settings():
    choices = eval_choices(EvalFlags(), None)
    schedule = ScheduleConfig.model_validate({"data": {"held_out_workflows": ["x"]}})
    assert (choices.k, choices.params) == (schedule.eval.k, schedule.eval.sampling(schedule.seed))
    assert choices.runner == schedule.runner.runner_config()
    assert (choices.runner.max_agent_turns, choices.runner.max_episode_tokens) == (8, 4096)
    assert choices.params.max_new_tokens == 128 and choices.params.temperature == 0.0
    assert eval_choices(EvalFlags(k=4), None).params.temperature == 0.7
    assert choices.local.max_batch_size == choices.runner.batch_size == 32


def test_like_takes_the_runs_settings_and_flags_still_win(tiny_run):
    like = eval_choices(EvalFlags(), tiny_run)
    assert (like.params.max_new_tokens, like.params.temperature, like.params.seed) == (6, 0.0, 3)
    runner = like.runner
    assert (runner.max_agent_turns, runner.max_episode_tokens, runner.batch_size) == (3, 3000, 5)
    assert like.tasks == str(tiny_run / "data" / "held_out" / "tasks.jsonl")
    assert like.local.template_kwargs == {"enable_thinking": False} and like.dtype == "float32"
    # The run's cap on rows a generate call, unless --batch-size asks for a whole call.
    assert like.local.max_batch_size == 8
    assert eval_choices(EvalFlags(batch_size=40), tiny_run).local.max_batch_size == 40
    given = eval_choices(EvalFlags(max_new_tokens=9, max_turns=1, tasks="fixtures"), tiny_run)
    assert (given.params.max_new_tokens, given.runner.max_agent_turns) == (9, 1)
    assert given.tasks == "fixtures" and given.runner.max_episode_tokens == 3000


def _episodes(traces: Path) -> dict[tuple[str, int], tuple]:
    """What the agent did in each episode, and whether it passed."""
    return {
        (t.task_id, t.trial): (
            t.passed,
            t.termination,
            [(m.role, m.content, [c.model_dump() for c in m.tool_calls]) for m in t.messages],
        )
        for t in read_traces(traces).done
    }


def _pass1_by_task(traces: Path) -> dict[str, float]:
    trials: dict[str, list[bool]] = defaultdict(list)
    for t in read_traces(traces).done:
        trials[t.task_id].append(t.passed)
    return {task: sum(v) / len(v) for task, v in trials.items()}


def _eval(out: Path, *args: str) -> Path:
    result = CliRunner().invoke(app, ["eval", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return out / TRACES


def test_eval_like_on_a_runs_checkpoint_repeats_its_held_out_eval(tiny_run, tmp_path):
    policy = f"hf:{tiny_run / 'checkpoints' / 'sft' / 'model'}"
    again = _eval(tmp_path / "again", "--like", str(tiny_run), "--policy", policy)
    held_out = tiny_run / "evals" / "sft" / TRACES
    assert _pass1_by_task(again) == _pass1_by_task(held_out)
    assert len(_pass1_by_task(again)) == 4
    # Not only the verdicts (a random-weight model passes nothing): every episode is the
    # one the run's eval had.
    assert _episodes(again) == _episodes(held_out)
    # Which the plain defaults would not have given: the run's turns were shorter.
    tasks = str(tiny_run / "data" / "held_out" / "tasks.jsonl")
    plain = _eval(tmp_path / "plain", "--tasks", tasks, "--policy", policy)
    assert _episodes(plain) != _episodes(held_out)


def test_like_keeps_the_runs_cap_on_rows_a_generate_call(tiny_run, tmp_path):
    """A GPU config bounds a call's keys/values with model.max_batch_size below its
    runner.batch_size; an eval like that run must not generate the whole batch at once."""
    import shutil

    import yaml

    from agentwheel.core.run_layout import RunLayout

    source, copy = RunLayout(tiny_run), RunLayout(tmp_path)
    raw = yaml.safe_load(source.config.read_text())
    raw["model"]["max_batch_size"], raw["runner"]["batch_size"] = 4, 16
    copy.config.write_text(yaml.safe_dump(raw))
    copy.held_out_tasks.parent.mkdir(parents=True)
    shutil.copy(source.held_out_tasks, copy.held_out_tasks)
    like = eval_choices(EvalFlags(), tmp_path)
    assert (like.local.max_batch_size, like.runner.batch_size) == (4, 16)
